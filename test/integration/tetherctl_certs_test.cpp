// The real tetherctl binary's `certs check` and `certs rotate`, against the
// test API server standing in for the local k3s (mTLS, a kubeconfig on
// disk as k3s writes one) and a linkerd PKI made here.

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/x509.h"
#include "agent/core/base64.h"
#include "agent/core/kube_time.h"
#include "agent/core/linkerd_objects.h"
#include "agent/kube/kube_client.h"
#include "test/support/api_server/api_server.h"
#include "test/support/child_process.h"
#include "test/support/linkerd_pki.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const std::string kSecret = kube::object_path(kube::kSecrets, "linkerd", kIssuerSecretName);

class TetherctlCerts : public ::testing::Test {
 protected:
  TetherctlCerts() {
    test::ApiServerOptions options;
    options.identity = ca_.issue({.common_name = "k3s",
                                  .dns_names = {"localhost"},
                                  .ip_addresses = {"127.0.0.1"},
                                  .client_auth = false});
    options.client_ca_pem = ca_.cert_pem();
    server_ = std::make_unique<test::ApiServer>(std::move(options));
    const auto admin = ca_.issue(
        {.common_name = "system:admin", .organizations = {"system:masters"}, .server_auth = false});
    write(tmp_.file("ca.crt"), ca_.cert_pem(), 0644);
    write(tmp_.file("admin.crt"), admin.cert_pem, 0644);
    write(tmp_.file("admin.key"), admin.key_pem, 0600);
    write(tmp_.file("k3s.yaml"),
          "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n"
          "    certificate-authority: ca.crt\n    server: " +
              server_->url() +
              "\ncontexts:\n- name: default\n  context: {cluster: default, user: default}\n"
              "current-context: default\nusers:\n- name: default\n  user:\n"
              "    client-certificate: admin.crt\n    client-key: admin.key\n",
          0600);
    write(tmp_.file("anchor.key"), anchor_.key_pem, 0600);
    write(config_,
          "node: {name: node-a}\nfirewall: {backend: none}\nstate: {dir: " + tmp_.file("state") +
              "}\ncluster: {kubeconfig: " + tmp_.file("k3s.yaml") +
              "}\nlinkerd: {trustAnchorKey: " + tmp_.file("anchor.key") + "}\n",
          0644);
    server_->create(kube::collection_path(kube::kConfigMaps, "linkerd"),
                    json::object{{"metadata", {{"name", kTrustRootsConfigMapName}}},
                                 {"data", {{kTrustRootsKey, anchor_.cert_pem}}}});
    server_->create(kube::collection_path(kube::kDeployments, "linkerd"),
                    json::object{{"metadata", {{"name", "linkerd-identity"}}},
                                 {"spec", {{"template", {{"metadata", json::object{}}}}}}});
  }

  static void write(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }

  void install_issuer(Duration from, Duration to) {
    const auto now = std::chrono::system_clock::now();
    issuer_ = test::make_linkerd_issuer(anchor_, {now + from, now + to});
    server_->create(kube::collection_path(kube::kSecrets, "linkerd"),
                    json::object{{"metadata", {{"name", kIssuerSecretName}}},
                                 {"type", "kubernetes.io/tls"},
                                 {"data",
                                  {{"tls.crt", encode_base64(issuer_.cert_pem)},
                                   {"tls.key", encode_base64(issuer_.key_pem)},
                                   {"ca.crt", encode_base64(anchor_.cert_pem)}}}});
  }

  std::unique_ptr<test::ChildProcess> start(std::vector<std::string> args) {
    const std::string dir = tmp_.file("ctl" + std::to_string(runs_++));
    std::filesystem::create_directories(dir);
    std::vector<std::string> argv{TETHERCTL_BINARY, "-c", config_};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<test::ChildProcess>(argv, dir);
  }

  struct Run {
    int code;
    std::string out, err;
  };
  // Waits (20 s at most) for tetherctl's write of the Secret to be taken.
  bool secret_written() {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    auto written = [&] {
      for (const auto& r : server_->requests())
        if (r.method == "PUT" && r.status == 200) return true;
      return false;
    };
    while (!written() && std::chrono::steady_clock::now() < deadline)
      server_->wait_for_requests(server_->requests().size() + 1, 1s);
    return written();
  }

  // linkerd's identity controller, once it loaded a new issuer.
  void identity_controller_says_updated() {
    server_->create(
        kube::collection_path(kube::kEvents, "linkerd"),
        json::object{{"metadata", {{"name", "identity.1"}}},
                     {"reason", "IssuerUpdated"},
                     {"lastTimestamp", format_kube_time(std::chrono::system_clock::now())}});
  }

  Run ctl(std::vector<std::string> args) {
    auto p = start(std::move(args));
    const int code = p->wait(20s);
    return {code, p->out(), p->err()};
  }

  test::TempDir tmp_;
  test::TestCa ca_{"k3s client CA"};
  std::unique_ptr<test::ApiServer> server_;
  test::PemPair anchor_ = test::make_linkerd_anchor(
      {std::chrono::system_clock::now() - 1h, std::chrono::system_clock::now() + 87600h});
  test::PemPair issuer_;
  std::string config_ = tmp_.file("tetherd.yaml");
  int runs_ = 0;
};

TEST_F(TetherctlCerts, CheckSaysValidInATableAndInJson) {
  install_issuer(-1h, 8760h);
  auto table = ctl({"certs", "check"});
  EXPECT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("issuer  CN=identity.linkerd.cluster.local"), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("anchor  CN=root.linkerd.cluster.local"), std::string::npos);
  EXPECT_NE(table.out.find("OK      IssuerValid: "), std::string::npos) << table.out;

  auto js = ctl({"certs", "check", "-o", "json"});
  ASSERT_EQ(js.code, 0) << js.err;
  const json::object o = json::parse(js.out).as_object();
  EXPECT_EQ(o.at("valid"), true);
  EXPECT_EQ(o.at("reason"), "IssuerValid");
  EXPECT_EQ(o.at("layout"), "tls.crt/tls.key");
  EXPECT_EQ(o.at("anchors").as_array().size(), 1u);
  EXPECT_EQ(o.at("issuer").at("keyType"), "ECDSA P-256");
}

TEST_F(TetherctlCerts, CheckExitsOneOnAnExpiredIssuerAndWritesNothing) {
  install_issuer(-8760h, -1h);
  auto r = ctl({"certs", "check"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("PROBLEM IssuerExpired: "), std::string::npos) << r.out;
  for (const auto& req : server_->requests())
    EXPECT_EQ(req.method, "GET") << req.target;
}

TEST_F(TetherctlCerts, RotateWritesANewIssuerAndWaitsForTheIdentityController) {
  install_issuer(-1h, 8760h);  // valid: only a forced rotation replaces it
  auto p = start({"certs", "rotate"});
  // Like linkerd's identity controller, once the Secret is written.
  ASSERT_TRUE(secret_written()) << p->err();
  identity_controller_says_updated();
  const int code = p->wait(20s);
  EXPECT_EQ(code, 0) << p->err();
  EXPECT_NE(p->out().find("rotated a new issuer, valid until "), std::string::npos) << p->out();
  EXPECT_NE(p->err().find("loaded the new issuer"), std::string::npos) << p->err();
  auto stored = decode_issuer_secret(*server_->get(kSecret));
  ASSERT_TRUE(stored.has_value());
  EXPECT_NE(stored->cert_pem, issuer_.cert_pem);
  auto certs = x509::parse_certificates(stored->cert_pem, "stored");
  auto anchors = x509::parse_certificates(anchor_.cert_pem, "anchor");
  ASSERT_TRUE(certs && anchors);
  EXPECT_TRUE(x509::verify_chain(certs->front(), *anchors).has_value());
}

// k3s takes the PUT and its answer is lost (cut mid-body): tetherctl looks
// again before saying it failed, finds the issuer it wrote, and waits for
// the identity controller as after a write answered.
// `certs rotate` (with `extra` arguments) whose PUT takes but whose answer
// is lost; the identity controller loads the new issuer once it is in.
class TetherctlCertsLostAnswer : public TetherctlCerts,
                                 public ::testing::WithParamInterface<bool> {};

TEST_P(TetherctlCertsLostAnswer, RotateLooksAgainAndFindsItsIssuer) {
  const bool as_json = GetParam();
  install_issuer(-1h, 8760h);
  server_->misbehave({.what = test::Misbehaviour::kDropMidStream,
                      .path_contains = "/secrets/" + std::string(kIssuerSecretName),
                      .method = "PUT"});
  auto p = start(as_json ? std::vector<std::string>{"certs", "rotate", "-o", "json"}
                         : std::vector<std::string>{"certs", "rotate"});
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  auto stored = [&] { return decode_issuer_secret(*server_->get(kSecret)); };
  while (stored()->cert_pem == issuer_.cert_pem && std::chrono::steady_clock::now() < deadline)
    server_->wait_for_requests(server_->requests().size() + 1, 1s);
  ASSERT_NE(stored()->cert_pem, issuer_.cert_pem) << "the PUT took";
  identity_controller_says_updated();
  const int code = p->wait(20s);
  EXPECT_EQ(code, 0) << p->out() << p->err();
  if (as_json) {
    // One document: the first pass, and the pass that looked again.
    boost::system::error_code ec;
    const auto doc = boost::json::parse(p->out(), ec);
    ASSERT_FALSE(ec) << p->out();
    const auto& first = doc.as_object();
    EXPECT_EQ(first.at("rotated"), false) << p->out();
    EXPECT_EQ(first.at("answerLost"), true) << p->out();
    const auto* again = first.if_contains("lookedAgain");
    ASSERT_TRUE(again && again->is_object()) << p->out();
    EXPECT_TRUE(again->as_object().contains("foundWritten")) << p->out();
    EXPECT_EQ(again->as_object().at("rotated"), false) << "found, not minted again";
  } else {
    EXPECT_NE(p->out().find("its answer was lost, but the new issuer is in the Secret"),
              std::string::npos)
        << p->out();
  }
  EXPECT_NE(p->err().find("loaded the new issuer"), std::string::npos) << p->err();
  std::size_t puts = 0;
  for (const auto& r : server_->requests())
    puts += r.method == "PUT";
  EXPECT_EQ(puts, 1u) << "nothing minted twice";
}

INSTANTIATE_TEST_SUITE_P(TableAndJson, TetherctlCertsLostAnswer, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Json" : "Table"; });

TEST_F(TetherctlCerts, RotateRefusesAnAnchorKeyOthersCanRead) {
  install_issuer(-8760h, -1h);
  ::chmod(tmp_.file("anchor.key").c_str(), 0644);
  auto r = ctl({"certs", "rotate"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not rotated: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chmod 600"), std::string::npos) << r.out;
  for (const auto& req : server_->requests())
    EXPECT_EQ(req.method, "GET") << req.target;
}

// A forced rotation mints with the node's clock: with a control plane in
// the configuration its Date is heard first, and a clock it says is two
// days ahead mints nothing (the daemon's rule, ClockWitness). A control
// plane out of reach is said, and the node's clock taken as it is.
TEST_F(TetherctlCerts, RotateMintsNothingWithAClockTheControlPlaneContradicts) {
  install_issuer(-1h, 8760h);
  test::ApiServerOptions options;
  options.identity = ca_.issue({.common_name = "cloud",
                                .dns_names = {"localhost"},
                                .ip_addresses = {"127.0.0.1"},
                                .client_auth = false});
  options.client_ca_pem = ca_.cert_pem();
  options.clock_offset = -48h;  // the cloud's clock two days behind the node's
  auto cloud = std::make_unique<test::ApiServer>(std::move(options));
  const auto node = ca_.issue(
      {.common_name = "tetherd:node-a", .organizations = {"tetherd:nodes"}, .server_auth = false});
  write(tmp_.file("node.crt"), node.cert_pem, 0644);
  write(tmp_.file("node.key"), node.key_pem, 0600);
  auto cloud_kubeconfig = [&](const std::string& url) {
    write(tmp_.file("cloud.yaml"),
          "apiVersion: v1\nkind: Config\nclusters:\n- name: cloud\n  cluster:\n"
          "    certificate-authority: ca.crt\n    server: " +
              url +
              "\ncontexts:\n- name: cloud\n  context: {cluster: cloud, user: node}\n"
              "current-context: cloud\nusers:\n- name: node\n  user:\n"
              "    client-certificate: node.crt\n    client-key: node.key\n",
          0600);
  };
  cloud_kubeconfig(cloud->url());
  write(config_,
        "node: {name: node-a}\nfirewall: {backend: none}\nstate: {dir: " + tmp_.file("state") +
            "}\ncontrolPlane: {kubeconfig: " + tmp_.file("cloud.yaml") +
            "}\ncluster: {kubeconfig: " + tmp_.file("k3s.yaml") +
            "}\nlinkerd: {trustAnchorKey: " + tmp_.file("anchor.key") + "}\n",
        0644);
  auto r = ctl({"certs", "rotate"});
  EXPECT_EQ(r.code, 1) << r.err;
  // A Date has whole seconds: 48h, or 48h1s.
  EXPECT_NE(r.out.find("is 48h"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" ahead of the control plane's"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no issuer is minted until they agree"), std::string::npos) << r.out;
  ASSERT_FALSE(cloud->requests().empty()) << "the control plane was asked";
  for (const auto& req : server_->requests())
    EXPECT_EQ(req.method, "GET") << req.target;

  // Out of reach: said, and the node's clock is all there is.
  cloud.reset();  // its port closed
  auto p = start({"certs", "rotate"});
  ASSERT_TRUE(p->err_shows("the control plane's clock was not heard", 20s)) << p->err();
  EXPECT_TRUE(secret_written()) << p->err();
  p->signal(SIGTERM);
  p->wait(20s);
}

TEST_F(TetherctlCerts, WithoutALinkerdSectionThereIsNothingToCheck) {
  write(config_, "node: {name: node-a}\nfirewall: {backend: none}\n", 0644);
  auto r = ctl({"certs", "check"});
  EXPECT_EQ(r.code, 78);
  EXPECT_NE(r.err.find("has no linkerd section"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tetherd
