// The status tetherd writes, checked against the shipped CRD's schema as a
// real API server would check it (the test API server does not): every
// field declared, every enum value allowed, every string within its
// maxLength. A condition type or a certificate role added to the code and
// not to the CRD would make every status write a 422 on a real cluster.

#include <string>

#include <boost/json.hpp>
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "agent/core/node_status.h"

namespace tetherd {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

YAML::Node status_schema() {
  const YAML::Node crd =
      YAML::LoadFile(TETHERD_SOURCE_DIR "/packaging/kubernetes/edgenode-crd.yaml");
  for (const YAML::Node& version : crd["spec"]["versions"]) {
    if (version["storage"].as<bool>())
      return version["schema"]["openAPIV3Schema"]["properties"]["status"];
  }
  return {};
}

// What a structural schema refuses in `value`, as "path: why" lines.
void check(const json::value& value, const YAML::Node& schema, const std::string& path,
           std::vector<std::string>& problems) {
  const std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
  if (type == "object") {
    if (!value.is_object()) return problems.push_back(path + ": not an object");
    for (const auto& [key, v] : value.get_object()) {
      const YAML::Node property = schema["properties"][std::string(key)];
      if (!property) {
        problems.push_back(path + "." + std::string(key) + ": not in the schema (pruned)");
        continue;
      }
      check(v, property, path + "." + std::string(key), problems);
    }
  } else if (type == "array") {
    if (!value.is_array()) return problems.push_back(path + ": not an array");
    std::size_t i = 0;
    for (const json::value& item : value.get_array())
      check(item, schema["items"], path + "[" + std::to_string(i++) + "]", problems);
  } else if (type == "string") {
    if (!value.is_string()) return problems.push_back(path + ": not a string");
    const std::string s(value.get_string());
    if (schema["maxLength"] && s.size() > schema["maxLength"].as<std::size_t>())
      problems.push_back(path + ": longer than maxLength");
    if (schema["enum"]) {
      bool allowed = false;
      for (const YAML::Node& e : schema["enum"])
        allowed = allowed || e.as<std::string>() == s;
      if (!allowed) problems.push_back(path + ": \"" + s + "\" is not in the enum");
    }
  } else if (type == "integer") {
    if (!value.is_int64() && !value.is_uint64()) problems.push_back(path + ": not an integer");
  }
}

// Everything tetherd can put in a status at once: every condition type,
// every certificate role, the node's vitals and the mesh.
TEST(EdgeNodeCrd, EveryStatusTetherdWritesFitsTheSchema) {
  const WallTime t = WallTime(std::chrono::seconds(1'764'806'400));
  NodeStatus s;
  s.observed_generation = 3;
  s.agent_version = "0.1.0";
  s.firewall_sources = 2;
  s.firewall_backend = "nftables";
  s.refused_recently = RefusedRecently{"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", {4143, 4191}, t};
  for (std::string_view type : condition_type::kAll) {
    if (type != condition_type::kReady)
      s.conditions.set(type, ConditionStatus::kFalse, "Why", "a message", t);
  }
  for (const char* role : {"issuer", "trustAnchor", "client"})
    s.certificates.push_back({"name", role, "CN=x", t});
  NodeVitals v;
  v.load1 = v.load5 = v.load15 = "0.52";
  v.disk = {{"/var/lib/rancher", 1, 2}};
  v.last_resume = t;
  s.node = v;
  s.linkerd = MeshSummary{12, 3, 1, std::string(64, 'a'), 2};
  const json::object status = status_object(s);
  ASSERT_TRUE(status.contains("linkerd"));
  ASSERT_TRUE(status.at("firewall").as_object().contains("refusedRecently"));
  ASSERT_EQ(status.at("conditions").as_array().size(), condition_type::kAll.size());

  const YAML::Node schema = status_schema();
  ASSERT_TRUE(schema) << "no storage version with a status schema";
  std::vector<std::string> problems;
  check(status, schema, "status", problems);
  EXPECT_TRUE(problems.empty()) << [&] {
    std::string all;
    for (const auto& p : problems)
      all += p + "\n";
    return all;
  }();
}

// The check itself refuses what a server would.
TEST(EdgeNodeCrd, TheCheckRefusesWhatIsNotDeclared) {
  std::vector<std::string> problems;
  check(json::parse(R"({"conditions": [{"type": "DiskPressure"}], "extra": 1})"), status_schema(),
        "status", problems);
  EXPECT_EQ(problems, (std::vector<std::string>{
                          "status.conditions[0].type: \"DiskPressure\" is not in the enum",
                          "status.extra: not in the schema (pruned)"}));
}

}  // namespace
}  // namespace tetherd
