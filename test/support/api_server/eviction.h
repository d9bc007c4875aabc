#pragma once
// The eviction subresource, POST /api/v1/namespaces/NS/pods/NAME/eviction
// with a policy/v1 Eviction, as kube-apiserver's
// pkg/registry/core/pod/storage/eviction.go serves it over the Store:
// - the Eviction's metadata.name must be the URL's (400), the pod must
//   exist (404);
// - a pod in phase Succeeded, Failed or Pending, or already deleting
//   (metadata.deletionTimestamp), is deleted whatever the budgets say;
// - otherwise the PodDisruptionBudgets of its namespace whose spec.selector
//   (matchLabels, matchExpressions; none, empty or invalid: no pod) takes
//   in the pod's labels decide: none, the pod is deleted; more than one, a
//   500; one, its status: observedGeneration behind metadata.generation, a
//   429 (the budget "is still being processed", Retry-After 10);
//   disruptionsAllowed negative, a 403; more than 2000 disruptedPods, a 403;
//   disruptionsAllowed 0, a 429 (the budget "needs N healthy pods and has M
//   currently", from desiredHealthy and currentHealthy); else
//   disruptionsAllowed goes down by one and disruptedPods[NAME] is now, a
//   status write (a new resourceVersion, a watch event; retried on a
//   conflict), and the pod is deleted. A pod that is not Ready is deleted
//   without taking from a budget that has its desiredHealthy (above 0) or
//   whose spec.unhealthyPodEvictionPolicy is AlwaysAllow;
// - the answer: 201 and a Success Status.
// No disruption controller recomputes budgets, nor does a controller
// recreate pods: tests do that through the store.
//
// What it leaves out: policy/v1beta1 Evictions, the Eviction's
// deleteOptions (preconditions, grace period, dryRun), graceful deletion
// (the pod goes at once), the DisruptionAllowed condition a budget gets
// when its last disruption is taken, and the resourceVersion precondition
// kube-apiserver puts on the deletion of a pod it lets go without a budget.

#include <string>

#include <boost/json/object.hpp>

#include "test/support/api_server/resources.h"
#include "test/support/api_server/rest_api.h"
#include "test/support/api_server/store.h"

namespace tetherd::test::apiserver {

// `eviction`: the request's body, decoded as a policy/v1 Eviction.
Response evict(Store& store, const ResourceType& pods, const std::string& namespace_,
               const std::string& name, const boost::json::object& eviction);

}  // namespace tetherd::test::apiserver
