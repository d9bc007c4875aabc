// The shipped manifests: the node's RBAC allows what tetherd does and no
// more (through the test API server, which enforces it as RBAC does), and
// the CRD says what DESIGN.md says.
#include <regex>
#include <set>

#include "agent/config/config.h"
#include "test/integration/kube/kube_fixture.h"

namespace tetherd::test {
namespace {

using kube::KubeClient;

const std::string kLeases = kube::collection_path(kube::kLeases, kNamespace);

boost::json::object lease(const std::string& name) {
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", {{"name", name}, {"namespace", kNamespace}}},
          {"spec", {{"holderIdentity", name}, {"leaseDurationSeconds", 40}}}};
}

TEST_F(KubeTest, TheShippedRbacAllowsWhatTetherdDoes) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  const auto mine = kube::object_path(kube::kEdgeNodes, kNamespace, "node-a");
  EXPECT_TRUE(run(kube.get(mine)));
  EXPECT_TRUE(
      run(kube.list(kube::collection_path(kube::kEdgeNodes, kNamespace), "metadata.name=node-a")));
  EXPECT_TRUE(run(kube.merge_patch(mine + "/status", {{"status", {{"agentVersion", "0.1.0"}}}})));
  // Its own EdgeNode, made again after an admin deleted it.
  server_->remove(mine);
  EXPECT_TRUE(run(kube.create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                              edge_node("node-a", {"192.0.2.0/24"}))));
  auto created = run(kube.create(kLeases, lease("tetherd-node-a")));
  ASSERT_TRUE(created) << describe(created.error());
  auto renewed = *created;
  renewed["spec"].as_object()["renewTime"] = "2026-11-21T10:00:00.000000Z";
  EXPECT_TRUE(
      run(kube.update(kube::object_path(kube::kLeases, kNamespace, "tetherd-node-a"), renewed)));
}

TEST_F(KubeTest, TheShippedRbacRefusesEverythingElse) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-b", {"203.0.113.0/24"}));
  const auto theirs = server_->create(kLeases, lease("tetherd-node-b"));
  server_->create("/api/v1/namespaces/tetherd-system/secrets",
                  {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", "cloud-credentials"}, {"namespace", kNamespace}}}});
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto forbidden = [&](kube::ApiResult<boost::json::object> r) {
    return !r && r.error().code == 403;
  };
  EXPECT_TRUE(forbidden(run(kube.get(kube::object_path(kube::kEdgeNodes, kNamespace, "node-b")))));
  EXPECT_TRUE(forbidden(run(kube.merge_patch(
      kube::object_path(kube::kEdgeNodes, kNamespace, "node-b", "status"), {{"status", {}}}))));
  EXPECT_TRUE(forbidden(
      run(kube.update(kube::object_path(kube::kLeases, kNamespace, "tetherd-node-b"), theirs))));
  EXPECT_TRUE(
      forbidden(run(kube.get("/api/v1/namespaces/tetherd-system/secrets/cloud-credentials"))));
  auto all = run(kube.list(kube::collection_path(kube::kEdgeNodes, kNamespace)));
  EXPECT_TRUE(!all && all.error().code == 403) << "no list of every node";
}

TEST(ShippedCrd, SaysWhatTheDesignSays) {
  const auto crd = YAML::Load(shipped_manifest("edgenode-crd.yaml"));
  EXPECT_EQ(crd["metadata"]["name"].as<std::string>(), "edgenodes.tetherd.io");
  EXPECT_EQ(crd["spec"]["scope"].as<std::string>(), "Namespaced");
  const auto version = crd["spec"]["versions"][0];
  EXPECT_EQ(version["name"].as<std::string>(), "v1alpha1");
  EXPECT_TRUE(version["subresources"]["status"].IsMap());
  std::vector<std::string> columns;
  for (const auto& c : version["additionalPrinterColumns"])
    columns.push_back(c["name"].as<std::string>());
  EXPECT_EQ(columns, (std::vector<std::string>{"Ready", "Sources", "Issuer-Expires", "Age"}));

  const auto sources = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
                              ["firewall"]["properties"]["allowedSources"];
  EXPECT_EQ(sources["maxItems"].as<std::uint32_t>(), FirewallConfig{}.max_sources)
      << "the API server refuses what tetherd would refuse anyway";
  const std::regex pattern(sources["items"]["pattern"].as<std::string>());
  const auto max_length = sources["items"]["maxLength"].as<std::size_t>();
  for (const std::string good : {"192.0.2.0/24", "198.51.100.7", "2001:db8::/32",
                                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
                                 "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128"}) {
    EXPECT_TRUE(std::regex_match(good, pattern)) << good;
    EXPECT_LE(good.size(), max_length) << good;
  }
  for (const std::string bad : {"", "192.0.2.0/24 ", "example.com", "192.0.2.0/24;drop", "0/0/0"})
    EXPECT_FALSE(std::regex_match(bad, pattern)) << bad;
}

TEST(ShippedAdmissionPolicy, FencesTheCreatesRbacCannot) {
  // RBAC lets a node create EdgeNodes and Leases of any name; the policy
  // (enforced by kube-apiserver, not by the test server) must cover exactly
  // those creates, for tetherd's users, in tetherd's namespace.
  const auto docs = YAML::LoadAll(shipped_manifest("node-admission.yaml"));
  ASSERT_EQ(docs.size(), 2u);
  const auto& policy = docs[0];
  const auto& binding = docs[1];
  EXPECT_EQ(policy["kind"].as<std::string>(), "ValidatingAdmissionPolicy");
  EXPECT_EQ(policy["spec"]["failurePolicy"].as<std::string>(), "Fail");
  std::set<std::string> covered;
  for (const auto& rule : policy["spec"]["matchConstraints"]["resourceRules"]) {
    EXPECT_EQ(rule["operations"][0].as<std::string>(), "CREATE");
    covered.insert(rule["apiGroups"][0].as<std::string>() + "/" +
                   rule["resources"][0].as<std::string>());
  }
  EXPECT_EQ(covered, (std::set<std::string>{"coordination.k8s.io/leases", "tetherd.io/edgenodes"}));
  const auto check = policy["spec"]["validations"][0]["expression"].as<std::string>();
  EXPECT_NE(check.find("'tetherd-' + variables.node"), std::string::npos) << check;
  EXPECT_EQ(binding["kind"].as<std::string>(), "ValidatingAdmissionPolicyBinding");
  EXPECT_EQ(binding["spec"]["policyName"].as<std::string>(),
            policy["metadata"]["name"].as<std::string>());
  EXPECT_EQ(binding["spec"]["validationActions"][0].as<std::string>(), "Deny");
  EXPECT_EQ(binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
                   ["kubernetes.io/metadata.name"]
                       .as<std::string>(),
            kNamespace);
}

}  // namespace
}  // namespace tetherd::test
