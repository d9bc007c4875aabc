#pragma once
// RBAC objects written through the API (Roles, ClusterRoles, RoleBindings,
// ClusterRoleBindings of rbac.authorization.k8s.io/v1, as `kubectl apply`
// sends them) turned into the Authorizer's AccessRules, as kube-apiserver's
// RBAC authorizer reads them: a RoleBinding grants its Role's (or a
// ClusterRole's) rules in its namespace, a ClusterRoleBinding grants its
// ClusterRole's everywhere, cluster-scoped resources included; subjects are
// Users, Groups and ServiceAccounts (user system:serviceaccount:NS:NAME); a
// binding to a role that does not exist grants nothing. After every write to
// one of them the rules are computed again from the stored objects
// (replacing the ones computed before; the rules given with allow() stay).
//
// What it leaves out: aggregated ClusterRoles (aggregationRule), the
// escalation check (a user may write a role granting more than it has),
// nonResourceURLs rules, and the default roles (system:discovery and the
// like: discovery is open to every authenticated user here).

#include <vector>

#include "test/support/api_server/api_server.h"
#include "test/support/api_server/authorization.h"
#include "test/support/api_server/store.h"

namespace tetherd::test::apiserver {

bool is_rbac_type(const ResourceType& type);

// The rules the stored RBAC objects grant.
std::vector<AccessRule> rules_from_rbac_objects(const Store& store);

// Computes them and gives them to `authorizer` (serialized: the last call
// sees every write before it).
void sync_rbac(const Store& store, Authorizer& authorizer);

}  // namespace tetherd::test::apiserver
