#pragma once
// The node's heartbeat object: a coordination.k8s.io/v1 Lease named
// tetherd-<node>, shaped as kubelet's node leases are (holderIdentity,
// leaseDurationSeconds, renewTime as MicroTime). Pure: what to send, given
// what the server last said and `now`; the I/O is kube/lease_heartbeat.h.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

struct LeaseSpec {
  std::string name;
  std::string namespace_;
  std::string holder;  // holderIdentity: the node's name
  std::chrono::seconds duration{40};
};

// "tetherd-" + node: the name the shipped RBAC lets the node get and update.
std::string lease_name(std::string_view node);

// A Lease to create: we hold it from `now`.
boost::json::object new_lease(const LeaseSpec& spec, WallTime now);

// `current` (as the server returned it) renewed at `now`. Its metadata is
// kept as it is, resourceVersion above all: the PUT is refused with 409 if
// someone wrote the Lease since. When the holder changes, acquireTime
// becomes `now` and leaseTransitions counts one more, as client-go's
// leader election does. An error when `current` is not a Lease (it came
// from the network: a proxy or a wrong object must not crash us).
Result<boost::json::object> renewed_lease(boost::json::object current, const LeaseSpec& spec,
                                          WallTime now);

// How long the heartbeat waits after a renewal (`retry_after`: what a
// failed one's server asked for, if anything), `unit` a random number in
// [0, 1): the interval and up to 4% more, as kubelet's node lease
// controller (wait.JitterUntil with a factor of 0.04), so that nodes that
// came up together do not renew together for ever; after a 429 or 503, what
// the server asked for, at least the interval and at most the Lease's
// duration (by then the node is reported gone whatever we do, and one
// request to find out costs little), and then up to half as much again, as
// the session's retries (core/backoff.h), so that the two are not in step;
// never beyond the Lease's duration.
Duration lease_wait(Duration interval, Duration lease_duration, std::optional<Duration> retry_after,
                    double unit);

}  // namespace tetherd
