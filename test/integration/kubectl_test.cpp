// The README's admin commands, run by a real client: Debian's kubectl 1.20
// (package kubernetes-client, fetched by scripts/install-deps into
// /var/cache/tetherd-test/kubernetes-client; TETHERD_KUBECTL names another)
// against the test API server over mTLS. It proves the server speaks enough
// Kubernetes for a standard client: discovery and /openapi/v2, apply (create,
// then nothing to patch), Tables with the CRD's printer columns, merge
// patches, the CSR approval, RBAC applied through the API and enforced,
// TokenRequest and a ServiceAccount token, SelfSubjectAccessReview
// (`kubectl auth can-i`), the pods of a node by field and label selector, and
// evictions within a PodDisruptionBudget. Skips without kubectl, fails
// without it when CI is set.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/csr.h"
#include "agent/core/node_csr.h"
#include "test/support/api_server/api_server.h"
#include "test/support/child_process.h"
#include "test/support/test_pki.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr char kEdgeNodes[] = "/apis/tetherd.io/v1alpha1/namespaces/tetherd-system/edgenodes";
constexpr char kCsrs[] = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

std::string kubectl_path() {
  if (const char* path = std::getenv("TETHERD_KUBECTL"); path != nullptr && *path != '\0')
    return path;
  return TETHERD_KUBECTL_DEFAULT;
}

struct Ran {
  int code;
  std::string out, err;
};

// The whitespace-separated words of `line`.
std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string word; in >> word;)
    out.push_back(word);
  return out;
}

std::vector<std::string> lines(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

class KubectlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kubectl_ = kubectl_path();
    if (!std::filesystem::exists(kubectl_)) {
      if (std::getenv("CI") != nullptr)
        FAIL() << kubectl_ << " is missing (Debian's kubernetes-client, unpacked by "
               << "scripts/install-deps)";
      GTEST_SKIP() << kubectl_ << " is missing (Debian's kubernetes-client; scripts/install-deps "
                   << "unpacks it)";
    }
    char pattern[] = "/tmp/tetherd-kubectl-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    write("ca.pem", ca_.cert_pem());
    ApiServerOptions options;
    options.identity = ca_.issue({.common_name = "kube-apiserver",
                                  .dns_names = {"localhost"},
                                  .ip_addresses = {"127.0.0.1"}});
    options.client_ca_pem = ca_.cert_pem();
    options.csr_signer = ca_;
    // Certificates optional, so that a ServiceAccount token alone authenticates.
    options.anonymous = true;
    server_ = std::make_unique<ApiServer>(options);
    admin_ = kubeconfig("admin", ca_.issue({.common_name = "tetherd-admin",
                                            .organizations = {"system:masters"},
                                            .server_auth = false}));
    node_ = kubeconfig("node", ca_.issue({.common_name = "tetherd:edge-1",
                                          .organizations = {"tetherd:nodes"},
                                          .server_auth = false}));
    stranger_ =
        kubeconfig("stranger", ca_.issue({.common_name = "stranger", .server_auth = false}));
  }

  void TearDown() override {
    server_.reset();
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  std::string kubeconfig(const std::string& name, const IssuedCert& cert) {
    const std::string crt = write(name + ".crt", cert.cert_pem);
    const std::string key = write(name + ".key", cert.key_pem);
    return kubeconfig_with(name, "    client-certificate: " + crt + "\n    client-key: " + key);
  }

  std::string kubeconfig_with(const std::string& name, const std::string& user) {
    return write(name + ".kubeconfig",
                 "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n"
                 "    server: " +
                     server_->url() + "\n    certificate-authority: " + dir_ +
                     "/ca.pem\nusers:\n- name: " + name + "\n  user:\n" + user +
                     "\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: " + name +
                     "\ncurrent-context: test\n");
  }

  // kubectl with `config`, as an admin runs it, with a deadline.
  Ran kubectl(const std::string& config, std::vector<std::string> args) {
    std::vector<std::string> argv{kubectl_,        "--kubeconfig",      config, "--cache-dir",
                                  dir_ + "/cache", "--request-timeout", "10s"};
    argv.insert(argv.end(), args.begin(), args.end());
    const std::string out = dir_ + "/run" + std::to_string(++runs_);
    std::filesystem::create_directory(out);
    ChildProcess child(argv, out, ChildOptions{.env = {{"HOME", dir_}}});
    const int code = child.wait(60s);
    return Ran{code, child.out(), child.err()};
  }

  Ran apply() {
    return kubectl(admin_,
                   {"apply", "-f", std::string(TETHERD_SOURCE_DIR) + "/packaging/kubernetes/"});
  }

  TestCa ca_;
  std::string kubectl_, dir_, admin_, node_, stranger_;
  std::unique_ptr<ApiServer> server_;
  int runs_ = 0;
};

TEST_F(KubectlTest, AppliesTheShippedManifestsAndASecondApplyChangesNothing) {
  Ran first = apply();
  ASSERT_EQ(first.code, 0) << first.out << first.err;
  for (const char* created :
       {"serviceaccount/tetherd-bootstrap created",
        "clusterrole.rbac.authorization.k8s.io/tetherd-bootstrap created",
        "clusterrolebinding.rbac.authorization.k8s.io/tetherd-bootstrap created",
        "customresourcedefinition.apiextensions.k8s.io/edgenodes.tetherd.io created",
        "namespace/tetherd-system created",
        "validatingadmissionpolicy.admissionregistration.k8s.io/tetherd-node-own-objects created",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/tetherd-client-csrs-only "
        "created",
        "role.rbac.authorization.k8s.io/tetherd-nodes created",
        "rolebinding.rbac.authorization.k8s.io/tetherd-nodes created",
        "clusterrole.rbac.authorization.k8s.io/tetherd-node-csr created",
        "clusterrolebinding.rbac.authorization.k8s.io/tetherd-node-csr created"})
    EXPECT_NE(first.out.find(created), std::string::npos) << created << "\n" << first.out;
  EXPECT_EQ(first.err, "");
  const auto crd =
      server_->get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/edgenodes.tetherd.io");
  ASSERT_TRUE(crd);
  EXPECT_TRUE(crd->at("metadata")
                  .at("annotations")
                  .as_object()
                  .contains("kubectl.kubernetes.io/last-applied-configuration"));
  EXPECT_TRUE(
      server_->get("/apis/rbac.authorization.k8s.io/v1/namespaces/tetherd-system/roles/"
                   "tetherd-nodes"));

  const std::uint64_t version = server_->resource_version();
  const std::size_t asked = server_->requests().size();
  Ran second = apply();
  ASSERT_EQ(second.code, 0) << second.out << second.err;
  const auto said = lines(second.out);
  EXPECT_EQ(said.size(), 13u) << second.out;
  for (const std::string& line : said)
    EXPECT_TRUE(line.ends_with(" unchanged")) << line;
  EXPECT_EQ(server_->resource_version(), version) << "the second apply wrote something";
  // Nothing but reads and discovery the second time.
  const auto requests = server_->requests();
  for (std::size_t i = asked; i < requests.size(); ++i)
    EXPECT_EQ(requests[i].method, "GET") << requests[i].target;
}

TEST_F(KubectlTest, GetsEdgeNodesWithTheColumnsOfTheCrd) {
  ASSERT_EQ(apply().code, 0);
  server_->create(kEdgeNodes, json::object{{"apiVersion", "tetherd.io/v1alpha1"},
                                           {"kind", "EdgeNode"},
                                           {"metadata", json::object{{"name", "edge-1"}}}});
  server_->patch_status(
      std::string(kEdgeNodes) + "/edge-1",
      json::object{
          {"conditions", json::array{json::object{{"type", "Connected"},
                                                  {"status", "True"},
                                                  {"lastTransitionTime", "2026-01-01T00:00:00Z"}},
                                     json::object{{"type", "Ready"},
                                                  {"status", "True"},
                                                  {"lastTransitionTime", "2026-01-01T00:00:00Z"}}}},
          {"firewall", json::object{{"sources", 3}, {"backend", "nftables"}}},
          {"certificates", json::array{json::object{{"name", "linkerd-trust-anchor"},
                                                    {"notAfter", "2020-01-01T00:00:00Z"}},
                                       json::object{{"name", "linkerd-identity-issuer"},
                                                    {"notAfter", "2021-01-01T00:00:00Z"}}}}});

  Ran got = kubectl(admin_, {"-n", "tetherd-system", "get", "edgenodes"});
  ASSERT_EQ(got.code, 0) << got.out << got.err;
  const auto table = lines(got.out);
  ASSERT_EQ(table.size(), 2u) << got.out;
  EXPECT_EQ(words(table[0]),
            (std::vector<std::string>{"NAME", "READY", "SOURCES", "ISSUER-EXPIRES", "AGE"}));
  const auto row = words(table[1]);
  ASSERT_EQ(row.size(), 5u) << table[1];
  EXPECT_EQ(row[0], "edge-1");
  EXPECT_EQ(row[1], "True");
  EXPECT_EQ(row[2], "3");
  // The issuer's notAfter as written (a string column: a date column would
  // print "<invalid>" for a time in the future, as kube-apiserver does).
  EXPECT_EQ(row[3], "2021-01-01T00:00:00Z");
  EXPECT_TRUE(std::regex_match(row[4], std::regex("[0-9]+s"))) << row[4];

  // The short name, one object, and the custom resource's plain JSON.
  Ran one = kubectl(admin_, {"-n", "tetherd-system", "get", "en", "edge-1", "-o", "json"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_EQ(json::parse(one.out).at("status").at("firewall").at("sources"), 3);
}

TEST_F(KubectlTest, PatchesAnEdgeNodesSpec) {
  ASSERT_EQ(apply().code, 0);
  server_->create(kEdgeNodes,
                  json::object{{"metadata", json::object{{"name", "edge-1"}}},
                               {"spec", json::object{{"linkerd", json::object{{"rotate", "a"}}}}}});
  Ran patched =
      kubectl(admin_, {"-n", "tetherd-system", "patch", "edgenode", "edge-1", "--type", "merge",
                       "-p", R"({"spec":{"firewall":{"allowedSources":["203.0.113.10/32"]}}})"});
  ASSERT_EQ(patched.code, 0) << patched.out << patched.err;
  EXPECT_EQ(patched.out, "edgenode.tetherd.io/edge-1 patched\n");
  const auto stored = server_->get(std::string(kEdgeNodes) + "/edge-1");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->at("spec"),
            json::parse(R"({"linkerd":{"rotate":"a"},)"
                        R"("firewall":{"allowedSources":["203.0.113.10/32"]}})"));
  EXPECT_EQ(stored->at("metadata").at("generation"), 2);
}

TEST_F(KubectlTest, ApprovesANodesRequestAndTheSignerIssuesIt) {
  ASSERT_EQ(apply().code, 0);
  auto request = make_client_request("tetherd:edge-1", {"tetherd:nodes"});
  ASSERT_TRUE(request) << request.error().message;
  const std::string name = "tetherd-edge-1-20261203t120000z";
  const std::string file = write(
      "csr.json", json::serialize(csr_object("edge-1", name, request->csr_pem, std::nullopt)));
  // The node asks, as the applied RBAC lets it.
  Ran created = kubectl(node_, {"create", "-f", file});
  ASSERT_EQ(created.code, 0) << created.out << created.err;
  EXPECT_EQ(server_->get(std::string(kCsrs) + "/" + name)->at("spec").at("username"),
            "tetherd:edge-1");

  Ran approved = kubectl(admin_, {"certificate", "approve", name});
  ASSERT_EQ(approved.code, 0) << approved.out << approved.err;
  EXPECT_EQ(approved.out, "certificatesigningrequest.certificates.k8s.io/" + name + " approved\n");
  const auto csr = server_->get(std::string(kCsrs) + "/" + name);
  ASSERT_TRUE(csr);
  const json::object& status = csr->at("status").as_object();
  EXPECT_EQ(status.at("conditions").at(0).at("type"), "Approved");
  EXPECT_EQ(status.at("conditions").at(0).at("reason"), "KubectlApprove");
  ASSERT_TRUE(status.contains("certificate"));
  EXPECT_FALSE(status.at("certificate").as_string().empty());

  // The node reads its certificate, as tetherd does.
  Ran got = kubectl(node_, {"get", "csr", name, "-o", "jsonpath={.status.certificate}"});
  ASSERT_EQ(got.code, 0) << got.err;
  EXPECT_EQ(got.out, status.at("certificate").as_string());
}

TEST_F(KubectlTest, TheAppliedRbacIsEnforced) {
  const std::vector<std::string> list{"-n", "tetherd-system", "get", "edgenodes"};
  // Before the RBAC is applied, the node may do nothing.
  Ran before = kubectl(node_, list);
  EXPECT_NE(before.code, 0) << before.out;
  ASSERT_EQ(apply().code, 0);
  server_->create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "edge-1"}}}});

  Ran node = kubectl(node_, list);
  ASSERT_EQ(node.code, 0) << node.out << node.err;
  EXPECT_NE(node.out.find("edge-1"), std::string::npos) << node.out;
  Ran stranger = kubectl(stranger_, list);
  EXPECT_EQ(stranger.code, 1);
  EXPECT_EQ(stranger.err,
            "Error from server (Forbidden): edgenodes.tetherd.io is forbidden: User \"stranger\" "
            "cannot list resource \"edgenodes\" in API group \"tetherd.io\" in the namespace "
            "\"tetherd-system\"\n");
  // The node may not delete EdgeNodes (its Role has no delete).
  Ran deleted = kubectl(node_, {"-n", "tetherd-system", "delete", "edgenode", "edge-1"});
  EXPECT_NE(deleted.code, 0);
  EXPECT_NE(deleted.err.find("cannot delete resource \"edgenodes\""), std::string::npos)
      << deleted.err;

  // kubectl auth can-i asks with a SelfSubjectAccessReview.
  Ran can = kubectl(node_, {"auth", "can-i", "patch", "edgenodes/status", "-n", "tetherd-system"});
  EXPECT_EQ(can.code, 0) << can.err;
  EXPECT_EQ(can.out, "yes\n");
  Ran cannot = kubectl(stranger_, {"auth", "can-i", "list", "edgenodes", "-n", "tetherd-system"});
  EXPECT_EQ(cannot.code, 1);
  EXPECT_EQ(cannot.out, "no\n");

  // A role changed through the API changes what is allowed.
  Ran removed = kubectl(admin_, {"-n", "tetherd-system", "delete", "rolebinding", "tetherd-nodes"});
  ASSERT_EQ(removed.code, 0) << removed.err;
  EXPECT_NE(kubectl(node_, list).code, 0);
}

TEST_F(KubectlTest, AServiceAccountTokenFromTokenRequestAuthenticates) {
  ASSERT_EQ(apply().code, 0);
  const std::string body = write(
      "token-request.json",
      R"({"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}})");
  Ran issued = kubectl(admin_, {"create", "--raw",
                                "/api/v1/namespaces/tetherd-system/serviceaccounts/"
                                "tetherd-bootstrap/token",
                                "-f", body});
  ASSERT_EQ(issued.code, 0) << issued.out << issued.err;
  const json::value answer = json::parse(issued.out);
  EXPECT_EQ(answer.at("kind"), "TokenRequest");
  const std::string token(answer.at("status").at("token").as_string());

  const std::string config = kubeconfig_with("bootstrap", "    token: " + token);
  // Authenticated, and allowed to read a request by name (none by this one).
  Ran got = kubectl(config, {"get", "csr", "tetherd-none"});
  EXPECT_EQ(got.code, 1) << got.err;
  EXPECT_NE(got.err.find("(NotFound)"), std::string::npos) << got.err;
  Ran forbidden = kubectl(config, {"-n", "tetherd-system", "get", "edgenodes"});
  EXPECT_EQ(forbidden.code, 1);
  EXPECT_NE(forbidden.err.find(
                "User \"system:serviceaccount:tetherd-system:tetherd-bootstrap\" cannot list"),
            std::string::npos)
      << forbidden.err;

  // No token for a ServiceAccount that does not exist.
  Ran missing = kubectl(
      admin_, {"create", "--raw", "/api/v1/namespaces/tetherd-system/serviceaccounts/nobody/token",
               "-f", body});
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.err.find("serviceaccounts \"nobody\" not found"), std::string::npos)
      << missing.err;
}

TEST_F(KubectlTest, ListsTheMeshedPodsOfANodeAndEvictsThemWithinTheirBudget) {
  auto pod = [&](const std::string& namespace_, const std::string& name, const std::string& node,
                 bool meshed) {
    json::object labels{{"app", "web"}};
    if (meshed) labels["linkerd.io/control-plane-ns"] = "linkerd";
    const std::string pods = "/api/v1/namespaces/" + namespace_ + "/pods";
    server_->create(pods,
                    json::object{{"metadata", json::object{{"name", name}, {"labels", labels}}},
                                 {"spec", json::object{{"nodeName", node}}}});
    server_->patch_status(
        pods + "/" + name,
        json::object{{"phase", "Running"},
                     {"conditions", json::array{{{"type", "Ready"}, {"status", "True"}}}}});
  };
  pod("apps", "web-1", "edge-1", true);
  pod("apps", "web-2", "edge-2", true);
  pod("apps", "plain", "edge-1", false);
  pod("apps", "web-3", "edge-1", true);
  pod("linkerd", "identity", "edge-1", true);
  const std::vector<std::string> on_edge_1{"--field-selector", "spec.nodeName=edge-1", "-l",
                                           "linkerd.io/control-plane-ns"};

  std::vector<std::string> args{"-n", "apps", "get", "pods"};
  args.insert(args.end(), on_edge_1.begin(), on_edge_1.end());
  Ran listed = kubectl(admin_, args);
  ASSERT_EQ(listed.code, 0) << listed.out << listed.err;
  const auto table = lines(listed.out);
  ASSERT_EQ(table.size(), 3u) << listed.out;
  EXPECT_EQ(words(table[0]), (std::vector<std::string>{"NAME", "AGE"}));
  EXPECT_EQ(words(table[1]).at(0), "web-1");
  EXPECT_EQ(words(table[2]).at(0), "web-3");
  args = {"get", "pods", "--all-namespaces", "-o", "name"};
  args.insert(args.end(), on_edge_1.begin(), on_edge_1.end());
  Ran everywhere = kubectl(admin_, args);
  ASSERT_EQ(everywhere.code, 0) << everywhere.err;
  EXPECT_EQ(everywhere.out, "pod/web-1\npod/web-3\npod/identity\n");

  // A budget that allows one disruption, as the disruption controller left it.
  const std::string budgets = "/apis/policy/v1/namespaces/apps/poddisruptionbudgets";
  server_->create(budgets, json::object{{"metadata", json::object{{"name", "web"}}},
                                        {"spec", json::parse(R"({"minAvailable":2,)"
                                                             R"("selector":{"matchLabels":)"
                                                             R"({"app":"web"}}})")}});
  server_->patch_status(budgets + "/web", json::object{{"observedGeneration", 1},
                                                       {"disruptionsAllowed", 1},
                                                       {"currentHealthy", 3},
                                                       {"desiredHealthy", 2},
                                                       {"expectedPods", 3}});
  auto evict = [&](const std::string& name) {
    const std::string body =
        write(name + "-eviction.json",
              R"({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":")" + name +
                  R"(","namespace":"apps"}})");
    return kubectl(admin_, {"create", "--raw", "/api/v1/namespaces/apps/pods/" + name + "/eviction",
                            "-f", body});
  };
  Ran evicted = evict("web-1");
  ASSERT_EQ(evicted.code, 0) << evicted.out << evicted.err;
  EXPECT_EQ(evicted.out,
            R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201})");
  EXPECT_FALSE(server_->get("/api/v1/namespaces/apps/pods/web-1"));
  EXPECT_EQ(server_->evictions(), std::vector<std::string>{"apps/web-1"});
  Ran allowed = kubectl(
      admin_, {"-n", "apps", "get", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"});
  EXPECT_EQ(allowed.out, "0") << allowed.err;

  Ran refused = evict("web-3");
  EXPECT_EQ(refused.code, 1) << refused.out;
  EXPECT_EQ(refused.err,
            "Error from server (TooManyRequests): Cannot evict pod as it would violate the pod's "
            "disruption budget.\n");
  EXPECT_TRUE(server_->get("/api/v1/namespaces/apps/pods/web-3"));
  EXPECT_EQ(server_->evictions().size(), 1u);
}

}  // namespace
}  // namespace tetherd::test
