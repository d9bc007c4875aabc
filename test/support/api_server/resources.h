#pragma once
// The resources the test API server serves, and how URL paths and query
// strings name them: the objects, their subresources, and the discovery
// paths (/api, /apis, /api/v1, /apis/G/V, /openapi/v2).

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace tetherd::test::apiserver {

struct ResourceType {
  std::string_view group;  // "" is the core group
  std::string_view version;
  std::string_view resource;  // plural, as in the URL
  std::string_view kind;
  bool status_subresource;
  // Lists of built-in types carry items without kind and apiVersion (custom
  // resources keep them), as kube-apiserver's JSON does.
  bool builtin;
  // Cluster-scoped types (nodes) have no namespace: /api/v1/nodes/NAME.
  bool namespaced;
  // Whether a create keeps the body's status. Most types with a status
  // subresource drop it; nodes keep it, because the kubelet registers its
  // node with its status in one create.
  bool create_keeps_status;
  // CertificateSigningRequests' /approval: the conditions alone.
  bool approval_subresource;
  // As discovery names it: "edgenode"; short names separated by spaces ("en").
  std::string_view singular;
  std::string_view short_names;
  // Only create is served (SelfSubjectAccessReview): nothing is stored.
  bool create_only = false;
  // ServiceAccounts' /token: TokenRequest (authentication.k8s.io/v1).
  bool token_subresource = false;
  // Pods' /eviction: a policy/v1 Eviction (eviction.h).
  bool eviction_subresource = false;
  // The fields a fieldSelector may name besides metadata.name and
  // metadata.namespace, separated by spaces ("spec.nodeName status.phase").
  std::string_view field_labels;

  std::string api_version() const;     // "tetherd.io/v1alpha1", "v1"
  std::string group_resource() const;  // "edgenodes.tetherd.io", "secrets"
  std::string group_kind() const;      // "EdgeNode.tetherd.io", "Secret"
  bool has_field_label(std::string_view field) const;
};

enum class PathKind {
  kUnknown,
  kReadyz,
  kLivez,
  kVersion,
  kCollection,
  kObject,
  kStatus,
  kApproval,
  kToken,         // serviceaccounts/NAME/token
  kEviction,      // pods/NAME/eviction
  kApiVersions,   // /api
  kApiGroups,     // /apis
  kGroupVersion,  // /api/v1, /apis/G/V of a group-version served
  kOpenApi,       // /openapi/v2
};

struct ResourcePath {
  PathKind kind = PathKind::kUnknown;
  const ResourceType* type = nullptr;
  std::string namespace_;  // "" for a cluster-scoped type
  // A namespaced type's kCollection without a namespace (/api/v1/pods): list
  // and watch across namespaces.
  bool all_namespaces = false;
  std::string name;
  std::string group, version;  // kGroupVersion's
};

// Every type served, in discovery's order.
std::span<const ResourceType> resource_types();
const ResourceType* find_type(std::string_view group, std::string_view version,
                              std::string_view resource);

// `path` without the query; segments are percent-decoded.
ResourcePath parse_path(std::string_view path);

// Splits "path?query".
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

// As Go's url.ParseQuery: '+' is a space, %XX decoded, the first value of a
// repeated key wins.
using QueryParams = std::map<std::string, std::string, std::less<>>;
QueryParams parse_query(std::string_view query);

std::string percent_decode(std::string_view text, bool plus_is_space);

}  // namespace tetherd::test::apiserver
