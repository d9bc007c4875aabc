#include "test/support/api_server/resources.h"

#include <array>
#include <vector>

namespace tetherd::test::apiserver {
namespace {

constexpr std::array<ResourceType, 20> kResourceTypes{{
    // group, version, resource, kind, status subresource, built-in, namespaced,
    // create keeps status, approval subresource, singular, short names[, create
    // only, token subresource, eviction subresource, field labels]
    {"", "v1", "namespaces", "Namespace", true, true, false, false, false, "namespace", "ns"},
    {"", "v1", "secrets", "Secret", false, true, true, false, false, "secret", ""},
    {"", "v1", "configmaps", "ConfigMap", false, true, true, false, false, "configmap", "cm"},
    {"", "v1", "events", "Event", false, true, true, false, false, "event", "ev"},
    {"", "v1", "nodes", "Node", true, true, false, true, false, "node", "no"},
    {"", "v1", "pods", "Pod", true, true, true, false, false, "pod", "po", false, false, true,
     "spec.nodeName status.phase"},
    {"", "v1", "serviceaccounts", "ServiceAccount", false, true, true, false, false,
     "serviceaccount", "sa", false, true},
    {"tetherd.io", "v1alpha1", "edgenodes", "EdgeNode", true, false, true, false, false, "edgenode",
     "en"},
    {"coordination.k8s.io", "v1", "leases", "Lease", false, true, true, false, false, "lease", ""},
    {"apps", "v1", "deployments", "Deployment", true, true, true, false, false, "deployment",
     "deploy"},
    {"policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true, true, false, false,
     "poddisruptionbudget", "pdb"},
    {"certificates.k8s.io", "v1", "certificatesigningrequests", "CertificateSigningRequest", true,
     true, false, false, true, "certificatesigningrequest", "csr"},
    {"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", true,
     true, false, false, false, "customresourcedefinition", "crd crds"},
    {"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, true,
     false, false, false, "clusterrolebinding", ""},
    {"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, true, false, false,
     false, "clusterrole", ""},
    {"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", false, true, true, false,
     false, "rolebinding", ""},
    {"rbac.authorization.k8s.io", "v1", "roles", "Role", false, true, true, false, false, "role",
     ""},
    {"admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
     "ValidatingAdmissionPolicy", true, true, false, false, false, "validatingadmissionpolicy", ""},
    {"admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
     "ValidatingAdmissionPolicyBinding", false, true, false, false, false,
     "validatingadmissionpolicybinding", ""},
    {"authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", false,
     true, false, false, false, "selfsubjectaccessreview", "", true},
}};

}  // namespace

std::span<const ResourceType> resource_types() {
  return kResourceTypes;
}

const ResourceType* find_type(std::string_view group, std::string_view version,
                              std::string_view resource) {
  for (const ResourceType& type : kResourceTypes)
    if (type.group == group && type.version == version && type.resource == resource) return &type;
  return nullptr;
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string ResourceType::api_version() const {
  return group.empty() ? std::string(version) : std::string(group) + "/" + std::string(version);
}

std::string ResourceType::group_resource() const {
  return group.empty() ? std::string(resource) : std::string(resource) + "." + std::string(group);
}

std::string ResourceType::group_kind() const {
  return group.empty() ? std::string(kind) : std::string(kind) + "." + std::string(group);
}

bool ResourceType::has_field_label(std::string_view field) const {
  for (std::string_view rest = field_labels; !rest.empty();) {
    std::size_t space = rest.find(' ');
    if (rest.substr(0, space) == field) return true;
    rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
  }
  return false;
}

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  std::size_t question = target.find('?');
  if (question == std::string_view::npos) return {target, {}};
  return {target.substr(0, question), target.substr(question + 1)};
}

QueryParams parse_query(std::string_view query) {
  QueryParams params;
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (pair.empty()) continue;
    std::size_t equals = pair.find('=');
    std::string key = percent_decode(pair.substr(0, equals), true);
    std::string value = equals == std::string_view::npos
                            ? std::string{}
                            : percent_decode(pair.substr(equals + 1), true);
    params.emplace(std::move(key), std::move(value));
  }
  return params;
}

ResourcePath parse_path(std::string_view path) {
  ResourcePath result;
  if (path == "/readyz") result.kind = PathKind::kReadyz;
  if (path == "/livez") result.kind = PathKind::kLivez;
  if (path == "/version") result.kind = PathKind::kVersion;
  if (path == "/api") result.kind = PathKind::kApiVersions;
  if (path == "/apis") result.kind = PathKind::kApiGroups;
  if (path == "/openapi/v2") result.kind = PathKind::kOpenApi;
  if (result.kind != PathKind::kUnknown || path.empty() || path.front() != '/') return result;

  std::vector<std::string> segments;
  std::string_view rest = path.substr(1);
  while (true) {
    std::size_t slash = rest.find('/');
    std::string segment = percent_decode(rest.substr(0, slash), false);
    if (segment.empty()) return result;  // "//" or a trailing slash
    segments.push_back(std::move(segment));
    if (slash == std::string_view::npos) break;
    rest = rest.substr(slash + 1);
  }

  // Core: api/v1/namespaces/NS/RES[/NAME[/SUBRESOURCE]], or api/v1/RES[/NAME[/SUBRESOURCE]]
  // for a cluster-scoped RES (and api/v1/RES, every namespace's, for a namespaced one); groups:
  // the same below apis/G/V.
  // A group-version: api/v1 or apis/G/V, when a type is served there.
  if ((segments.size() == 2 && segments[0] == "api") ||
      (segments.size() == 3 && segments[0] == "apis")) {
    const std::string group = segments.size() == 2 ? std::string{} : segments[1];
    for (const ResourceType& type : kResourceTypes)
      if (type.group == group && type.version == segments.back()) {
        result.kind = PathKind::kGroupVersion;
        result.group = group;
        result.version = segments.back();
      }
    return result;
  }
  const bool core = segments.size() >= 3 && segments[0] == "api";
  const bool grouped = segments.size() >= 4 && segments[0] == "apis";
  if (!core && !grouped) return result;
  const std::size_t first = core ? 2 : 3;  // the segment after the version
  const bool namespaced = segments[first] == "namespaces" && segments.size() >= first + 3;
  const std::size_t at = namespaced ? first + 2 : first;  // the resource
  const ResourceType* type = find_type(core ? "" : segments[1], segments[first - 1], segments[at]);
  if (type == nullptr) return result;
  std::size_t extra = segments.size() - (at + 1);
  // A namespaced type's collection without a namespace: every namespace's.
  const bool all_namespaces = type->namespaced && !namespaced && extra == 0;
  if (type->namespaced != namespaced && !all_namespaces) return result;
  if (extra > 2) return result;
  const bool status = extra == 2 && segments.back() == "status" && type->status_subresource;
  const bool approval = extra == 2 && segments.back() == "approval" && type->approval_subresource;
  const bool token = extra == 2 && segments.back() == "token" && type->token_subresource;
  const bool eviction = extra == 2 && segments.back() == "eviction" && type->eviction_subresource;
  if (extra == 2 && !status && !approval && !token && !eviction) return result;
  if (type->create_only && extra != 0) return result;
  result.type = type;
  if (namespaced) result.namespace_ = segments[first + 1];
  result.all_namespaces = all_namespaces;
  if (extra >= 1) result.name = segments[at + 1];
  result.kind = extra == 0   ? PathKind::kCollection
                : extra == 1 ? PathKind::kObject
                : status     ? PathKind::kStatus
                : approval   ? PathKind::kApproval
                : token      ? PathKind::kToken
                             : PathKind::kEviction;
  return result;
}

}  // namespace tetherd::test::apiserver
