#pragma once
// RBAC manifests (Roles and RoleBindings, as kubectl would apply them) read
// into the test API server's rules. The client tests run with exactly the
// RBAC tetherd ships (packaging/kubernetes/nodes-rbac.yaml and
// bootstrap.yaml), so a verb tetherd needs and the Role lacks fails a test;
// the demo's stand-in cloud is given the same files.

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "agent/config/small_file.h"
#include "test/support/api_server/api_server.h"

namespace tetherd::test {

inline std::string shipped_manifest(const std::string& name) {
  auto text = read_small_file(std::string(TETHERD_SOURCE_DIR) + "/packaging/kubernetes/" + name,
                              1 << 20, "packaging/kubernetes/" + name);
  if (!text) throw std::runtime_error(text.error().message);
  return std::move(*text);
}

// The rules of the Roles and ClusterRoles in `text` (YAML, documents
// separated by ---), for the subjects of the RoleBindings and
// ClusterRoleBindings that refer to them in the same text: a User, a Group
// or a ServiceAccount (user system:serviceaccount:NS:NAME). A RoleBinding
// grants in its namespace; a ClusterRoleBinding everywhere, cluster-scoped
// resources included. Other kinds are skipped. Throws YAML::Exception on
// bad YAML, std::runtime_error on a binding to a role not in `text`.
inline std::vector<AccessRule> rules_from_rbac_manifest(const std::string& text) {
  std::map<std::string, std::vector<AccessRule>> roles;  // "Kind/name" -> rules
  std::vector<YAML::Node> bindings;
  for (const auto& doc : YAML::LoadAll(text)) {
    const auto kind = doc["kind"].as<std::string>();
    if (kind == "RoleBinding" || kind == "ClusterRoleBinding") bindings.push_back(doc);
    if (kind != "Role" && kind != "ClusterRole") continue;
    auto& into = roles[kind + "/" + doc["metadata"]["name"].as<std::string>()];
    for (const auto& rule : doc["rules"]) {
      for (const auto& group : rule["apiGroups"]) {
        for (const auto& resource : rule["resources"]) {
          AccessRule r;
          r.group = group.as<std::string>();
          r.resource = resource.as<std::string>();
          for (const auto& verb : rule["verbs"])
            r.verbs.insert(verb.as<std::string>());
          if (rule["resourceNames"])
            for (const auto& name : rule["resourceNames"])
              r.names.insert(name.as<std::string>());
          into.push_back(std::move(r));
        }
      }
    }
  }
  std::vector<AccessRule> rules;
  for (const auto& binding : bindings) {
    const std::string role = binding["roleRef"]["kind"].as<std::string>() + "/" +
                             binding["roleRef"]["name"].as<std::string>();
    auto found = roles.find(role);
    if (found == roles.end())
      throw std::runtime_error("a binding to " + role + ", not in the text");
    const bool cluster = binding["kind"].as<std::string>() == "ClusterRoleBinding";
    const std::string ns = cluster ? "*" : binding["metadata"]["namespace"].as<std::string>();
    for (const auto& subject : binding["subjects"]) {
      const auto kind = subject["kind"].as<std::string>();
      const auto name = subject["name"].as<std::string>();
      for (AccessRule r : found->second) {
        r.namespace_ = ns;
        if (kind == "Group")
          r.users_in_group = name;
        else if (kind == "ServiceAccount")
          r.user = "system:serviceaccount:" + subject["namespace"].as<std::string>() + ":" + name;
        else
          r.user = name;
        rules.push_back(std::move(r));
      }
    }
  }
  return rules;
}

// The group every node's certificate names (O=), which the shipped RBAC binds.
inline constexpr char kNodesGroup[] = "tetherd:nodes";

// What an admin applies once per cluster for the nodes (nodes-rbac.yaml)
// and for enrolling them (bootstrap.yaml).
inline std::vector<AccessRule> shipped_rules() {
  auto rules = rules_from_rbac_manifest(shipped_manifest("nodes-rbac.yaml"));
  auto bootstrap = rules_from_rbac_manifest(shipped_manifest("bootstrap.yaml"));
  rules.insert(rules.end(), bootstrap.begin(), bootstrap.end());
  return rules;
}

}  // namespace tetherd::test
