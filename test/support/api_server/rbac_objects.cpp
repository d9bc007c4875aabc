#include "test/support/api_server/rbac_objects.h"

#include <map>
#include <mutex>
#include <string>

#include <boost/json/array.hpp>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

constexpr std::string_view kRbacGroup = "rbac.authorization.k8s.io";

std::vector<json::object> all_of(const Store& store, std::string_view resource) {
  const ResourceType* type = find_type(kRbacGroup, "v1", resource);
  Expected<ListResult> listed = store.list(WatchFilter{type, "", {}, true}, std::nullopt);
  return listed.ok() ? std::move(listed.value().items) : std::vector<json::object>{};
}

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string{};
}

json::object object_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_object() ? value->get_object() : json::object{};
}

std::vector<std::string> strings_at(const json::object& object, std::string_view key) {
  std::vector<std::string> out;
  const json::value* value = object.if_contains(key);
  if (value == nullptr || !value->is_array()) return out;
  for (const json::value& item : value->get_array())
    if (item.is_string()) out.emplace_back(item.get_string());
  return out;
}

std::vector<AccessRule> role_rules(const json::object& role) {
  std::vector<AccessRule> out;
  const json::value* rules = role.if_contains("rules");
  if (rules == nullptr || !rules->is_array()) return out;
  for (const json::value& item : rules->get_array()) {
    if (!item.is_object()) continue;
    const json::object& rule = item.get_object();
    std::vector<std::string> verbs = strings_at(rule, "verbs");
    std::vector<std::string> names = strings_at(rule, "resourceNames");
    for (const std::string& group : strings_at(rule, "apiGroups"))
      for (const std::string& resource : strings_at(rule, "resources")) {
        AccessRule access;
        access.group = group;
        access.resource = resource;
        access.verbs.insert(verbs.begin(), verbs.end());
        access.names.insert(names.begin(), names.end());
        out.push_back(std::move(access));
      }
  }
  return out;
}

}  // namespace

bool is_rbac_type(const ResourceType& type) {
  return type.group == kRbacGroup;
}

std::vector<AccessRule> rules_from_rbac_objects(const Store& store) {
  std::map<std::string, std::vector<AccessRule>> roles;  // "Kind/namespace/name"
  for (const json::object& role : all_of(store, "clusterroles"))
    roles["ClusterRole//" + string_at(object_at(role, "metadata"), "name")] = role_rules(role);
  for (const json::object& role : all_of(store, "roles")) {
    json::object metadata = object_at(role, "metadata");
    roles["Role/" + string_at(metadata, "namespace") + "/" + string_at(metadata, "name")] =
        role_rules(role);
  }
  std::vector<AccessRule> out;
  for (std::string_view resource : {"rolebindings", "clusterrolebindings"}) {
    const bool cluster = resource == "clusterrolebindings";
    for (const json::object& binding : all_of(store, resource)) {
      const std::string namespace_ = string_at(object_at(binding, "metadata"), "namespace");
      json::object ref = object_at(binding, "roleRef");
      const std::string kind = string_at(ref, "kind");
      // A ClusterRoleBinding may refer to ClusterRoles alone.
      if (kind != "ClusterRole" && (kind != "Role" || cluster)) continue;
      auto role = roles.find(kind + "/" + (kind == "Role" ? namespace_ : "") + "/" +
                             string_at(ref, "name"));
      if (role == roles.end()) continue;
      const json::value* subjects = binding.if_contains("subjects");
      if (subjects == nullptr || !subjects->is_array()) continue;
      for (const json::value& item : subjects->get_array()) {
        if (!item.is_object()) continue;
        const json::object& subject = item.get_object();
        const std::string subject_kind = string_at(subject, "kind");
        const std::string name = string_at(subject, "name");
        for (AccessRule rule : role->second) {
          rule.namespace_ = cluster ? "*" : namespace_;
          if (subject_kind == "Group")
            rule.users_in_group = name;
          else if (subject_kind == "ServiceAccount")
            rule.user = "system:serviceaccount:" + string_at(subject, "namespace") + ":" + name;
          else if (subject_kind == "User")
            rule.user = name;
          else
            continue;
          out.push_back(std::move(rule));
        }
      }
    }
  }
  return out;
}

void sync_rbac(const Store& store, Authorizer& authorizer) {
  static std::mutex serial;
  std::lock_guard lock(serial);
  authorizer.set_derived(rules_from_rbac_objects(store));
}

}  // namespace tetherd::test::apiserver
