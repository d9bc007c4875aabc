// The shipped manifests: the node's RBAC allows what tetherd does and no
// more (through the test API server, which enforces it as RBAC does), and
// the CRD says what DESIGN.md says.
#include <map>
#include <regex>
#include <set>

#include "agent/adapters/csr.h"
#include "agent/config/config.h"
#include "agent/core/node_csr.h"
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
  server_->create("/api/v1/namespaces/tetherd-system/secrets",
                  {{"apiVersion", "v1"},
                   {"kind", "Secret"},
                   {"metadata", {{"name", "cloud-credentials"}, {"namespace", kNamespace}}}});
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto forbidden = [&](kube::ApiResult<boost::json::object> r) {
    return !r && r.error().code == 403;
  };
  EXPECT_TRUE(
      forbidden(run(kube.get("/api/v1/namespaces/tetherd-system/secrets/cloud-credentials"))));
  EXPECT_TRUE(forbidden(run(kube.get("/apis/tetherd.io/v1alpha1/namespaces/default/edgenodes/x"))))
      << "only tetherd's namespace";
  auto approved = run(kube.update(
      "/apis/certificates.k8s.io/v1/certificatesigningrequests/tetherd-node-a-x/approval",
      {{"metadata", {{"name", "tetherd-node-a-x"}, {"resourceVersion", "1"}}}}));
  EXPECT_TRUE(forbidden(approved)) << "a node cannot approve its own request: "
                                   << (approved ? "allowed" : describe(approved.error()));
  const auto node_b = kube::object_path(kube::kEdgeNodes, kNamespace, "node-b");
  // What RBAC cannot fence (another node's EdgeNode, by name) is
  // node-admission.yaml's, which kube-apiserver enforces and the test
  // server does not: a node reads every EdgeNode, as a kubelet every Node.
  EXPECT_TRUE(run(kube.get(node_b)));
}

class BootstrapRbacTest : public KubeTest {
 protected:
  BootstrapRbacTest()
      : KubeTest([](ApiServerOptions& o, const TestCa&) {
          o.tokens = {
              {"bootstrap-token", "system:serviceaccount:tetherd-system:tetherd-bootstrap"}};
        }) {}
};

TEST_F(BootstrapRbacTest, TheBootstrapTokenMayAskForACertificateAndNothingElse) {
  Kubeconfig k = kubeconfig();
  k.client_cert_pem.clear();
  k.client_key_pem.clear();
  k.token = "bootstrap-token";
  auto http = client(k);
  KubeClient kube(*http);
  const std::string csrs = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
  auto request = make_client_request("tetherd:node-a", {"tetherd:nodes"});
  ASSERT_TRUE(request);
  auto created = run(kube.create(
      csrs, csr_object("node-a", "tetherd-node-a-20261203-090000", request->csr_pem, {})));
  ASSERT_TRUE(created) << describe(created.error());
  EXPECT_EQ(boost::json::value_to<std::string>((*created).at("spec").at("username")),
            "system:serviceaccount:tetherd-system:tetherd-bootstrap");
  EXPECT_TRUE(run(kube.get(csrs + "/tetherd-node-a-20261203-090000")));

  auto forbidden = [&](const auto& r) { return !r && r.error().code == 403; };
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  EXPECT_TRUE(forbidden(run(kube.get(kube::object_path(kube::kEdgeNodes, kNamespace, "node-a")))));
  // Its request is read by name and watched (a field selector on the
  // name; RBAC cannot name a request before it is made, so watch is
  // granted whole); the requests are not listed, so list is not.
  EXPECT_TRUE(forbidden(run(kube.list(csrs, "metadata.name=tetherd-node-a-20261203-090000"))));
  EXPECT_TRUE(forbidden(run(kube.create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                                        edge_node("node-b", {"192.0.2.0/24"})))));
  EXPECT_TRUE(
      forbidden(run(kube.update(csrs + "/tetherd-node-a-20261203-090000/approval", *created))));
  k.token = "not-a-token";
  auto stranger = client(k);
  KubeClient nobody(*stranger);
  auto refused = run(nobody.get(csrs + "/tetherd-node-a-20261203-090000"));
  EXPECT_TRUE(!refused && refused.error().code == 401);
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

TEST(ShippedAdmissionPolicy, FencesWhatRbacCannot) {
  // RBAC lets any node write any EdgeNode and Lease, and the bootstrap
  // token ask for any certificate; the policies (enforced by kube-apiserver,
  // not by the test server) must cover exactly those writes.
  const auto docs = YAML::LoadAll(shipped_manifest("node-admission.yaml"));
  ASSERT_EQ(docs.size(), 4u);
  std::map<std::string, YAML::Node> policies, bindings;
  for (const auto& d : docs)
    (d["kind"].as<std::string>() == "ValidatingAdmissionPolicy"
         ? policies
         : bindings)[d["metadata"]["name"].as<std::string>()] = d;
  for (const auto& [name, binding] : bindings) {
    EXPECT_EQ(binding["spec"]["policyName"].as<std::string>(), name);
    EXPECT_EQ(binding["spec"]["validationActions"][0].as<std::string>(), "Deny");
    ASSERT_TRUE(policies.contains(name)) << name;
    EXPECT_EQ(policies[name]["spec"]["failurePolicy"].as<std::string>(), "Fail");
  }
  const auto& own = policies["tetherd-node-own-objects"];
  std::set<std::string> covered;
  for (const auto& rule : own["spec"]["matchConstraints"]["resourceRules"]) {
    std::set<std::string> ops;
    for (const auto& op : rule["operations"])
      ops.insert(op.as<std::string>());
    EXPECT_EQ(ops, (std::set<std::string>{"CREATE", "UPDATE", "DELETE"}));
    for (const auto& resource : rule["resources"])
      covered.insert(rule["apiGroups"][0].as<std::string>() + "/" + resource.as<std::string>());
  }
  EXPECT_EQ(covered, (std::set<std::string>{"coordination.k8s.io/leases", "tetherd.io/edgenodes",
                                            "tetherd.io/edgenodes/status"}));
  const auto check = own["spec"]["validations"][0]["expression"].as<std::string>();
  EXPECT_NE(check.find("'tetherd-' + variables.node"), std::string::npos) << check;
  EXPECT_EQ(bindings["tetherd-node-own-objects"]["spec"]["matchResources"]["namespaceSelector"]
                    ["matchLabels"]["kubernetes.io/metadata.name"]
                        .as<std::string>(),
            kNamespace);
  const auto csrs = policies["tetherd-client-csrs-only"]["spec"];
  EXPECT_EQ(csrs["matchConstraints"]["resourceRules"][0]["resources"][0].as<std::string>(),
            "certificatesigningrequests");
  const auto who = csrs["matchConditions"][0]["expression"].as<std::string>();
  EXPECT_NE(who.find("system:serviceaccount:tetherd-system:tetherd-bootstrap"), std::string::npos);
  const auto what = csrs["validations"][0]["expression"].as<std::string>();
  EXPECT_NE(what.find(std::string(kClientSignerName)), std::string::npos) << what;
}

}  // namespace
}  // namespace tetherd::test
