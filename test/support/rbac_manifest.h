#pragma once
// RBAC manifests (Roles and RoleBindings, as kubectl would apply them) read
// into the test API server's rules. The client tests run with exactly the
// RBAC tetherd ships (packaging/kubernetes/node-rbac.yaml), so a verb
// tetherd needs and the Role lacks fails a test; the demo's stand-in cloud
// is given the same file.

#include <regex>
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

// The Roles' rules in `text` (YAML, documents separated by ---), each bound
// to the user of the RoleBinding in the same text (one binding, one User
// subject: the shape node-rbac.yaml has). Throws YAML::Exception on bad YAML.
inline std::vector<AccessRule> rules_from_rbac_manifest(const std::string& text) {
  std::string user;
  std::vector<AccessRule> rules;
  for (const auto& doc : YAML::LoadAll(text)) {
    const auto kind = doc["kind"].as<std::string>();
    const auto ns = doc["metadata"]["namespace"].as<std::string>();
    if (kind == "RoleBinding") {
      for (const auto& subject : doc["subjects"])
        user = subject["name"].as<std::string>();
      continue;
    }
    if (kind != "Role") continue;
    for (const auto& rule : doc["rules"]) {
      for (const auto& group : rule["apiGroups"]) {
        for (const auto& resource : rule["resources"]) {
          AccessRule r;
          r.group = group.as<std::string>();
          r.resource = resource.as<std::string>();
          r.namespace_ = ns;
          for (const auto& verb : rule["verbs"])
            r.verbs.insert(verb.as<std::string>());
          if (rule["resourceNames"])
            for (const auto& name : rule["resourceNames"])
              r.names.insert(name.as<std::string>());
          rules.push_back(std::move(r));
        }
      }
    }
  }
  for (auto& r : rules)
    r.user = user;
  return rules;
}

// The shipped Role's rules for `node`, bound to the RoleBinding's user.
inline std::vector<AccessRule> shipped_node_rules(const std::string& node) {
  return rules_from_rbac_manifest(
      std::regex_replace(shipped_manifest("node-rbac.yaml"), std::regex("NODE"), node));
}

}  // namespace tetherd::test
