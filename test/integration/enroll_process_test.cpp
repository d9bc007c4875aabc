// The real `tetherctl enroll` against the test API server as the cloud: a
// bootstrap ServiceAccount token under the shipped RBAC, the CA pinned by
// its public key's hash (found in the server's TLS chain or in
// kube-public/cluster-info, read anonymously) or given as a file, a CSR the
// test approves or denies as an admin would, and the server's
// kube-apiserver-client signer. Every exit code the README lists.

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/x509.h"
#include "agent/app/node_credentials.h"
#include "agent/config/config_loader.h"
#include "agent/config/kubeconfig.h"
#include "agent/config/kubeconfig_writer.h"
#include "agent/core/base64.h"
#include "agent/core/kube_time.h"
#include "agent/kube/kube_client.h"
#include "test/support/api_server/api_server.h"
#include "test/support/child_process.h"
#include "test/support/notify_socket.h"
#include "test/support/rbac_manifest.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr auto kDeadline = 20s;
constexpr char kCsrs[] = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
constexpr char kBootstrapUser[] = "system:serviceaccount:tetherd-system:tetherd-bootstrap";

struct ServerSetup {
  bool ca_in_chain = true;
  bool cluster_info = false;  // kubeadm's anonymous kube-public/cluster-info
  bool signer = true;
};

class Enroll : public ::testing::Test {
 protected:
  void start_server(const ServerSetup& setup = {}) {
    test::ApiServerOptions options;
    options.identity = ca_.issue({.common_name = "kube-apiserver",
                                  .dns_names = {"localhost"},
                                  .ip_addresses = {"127.0.0.1"},
                                  .client_auth = false});
    options.wrong_host = ca_.issue(
        {.common_name = "elsewhere", .dns_names = {"elsewhere.example"}, .client_auth = false});
    options.client_ca_pem = ca_.cert_pem();
    options.tokens = {{"bootstrap-token", kBootstrapUser}, {"nobody-token", "nobody"}};
    options.anonymous = true;
    if (setup.ca_in_chain) options.extra_chain_pem = ca_.cert_pem();
    if (setup.signer) options.csr_signer = ca_;
    server_ = std::make_unique<test::ApiServer>(std::move(options));
    for (auto& rule : test::shipped_rules())
      server_->allow(std::move(rule));
    if (setup.cluster_info) {
      test::AccessRule anyone{"", {"get"}, "", "configmaps", "kube-public", {"cluster-info"}, {}};
      anyone.users_in_group = "system:unauthenticated";
      server_->allow(anyone);
      const std::string kubeconfig =
          "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n"
          "    certificate-authority-data: " +
          encode_base64(ca_.cert_pem()) + "\n    server: " + server_->url() + "\n  name: \"\"\n";
      server_->create("/api/v1/namespaces/kube-public/configmaps",
                      {{"apiVersion", "v1"},
                       {"kind", "ConfigMap"},
                       {"metadata", {{"name", "cluster-info"}, {"namespace", "kube-public"}}},
                       {"data", {{"kubeconfig", kubeconfig}}}});
    }
    write(token_, "bootstrap-token\n", 0600);
    write(tmp_.file("cloud-ca.crt"), ca_.cert_pem(), 0644);
    std::filesystem::create_directories(etc_);
    write(config_,
          "# tetherd on edge-1\nnode: {name: edge-1}\nfirewall: {backend: none}\n"
          "health: {linkerdGateway: \"\"}\nmetrics: {listen: \"\"}\nstate: {dir: " +
              tmp_.file("state") + "}\n",
          0644);
  }

  static void write(const std::string& path, const std::string& text, mode_t mode) {
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
  }
  static std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static mode_t mode_of(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 07777;
  }

  std::string pin() const { return "sha256:" + spki(ca_.cert_pem()); }
  static std::string spki(const std::string& pem) {
    return x509::describe(x509::parse_certificates(pem, "ca")->front()).spki_sha256;
  }

  std::unique_ptr<test::ChildProcess> enroll(std::vector<std::string> extra = {},
                                             bool with_ca = true) {
    std::vector<std::string> argv{TETHERCTL_BINARY, "-c",           config_,        "enroll",
                                  "--server",       server_->url(), "--token-file", token_};
    if (with_ca) {
      argv.push_back("--ca-cert-hash");
      argv.push_back(pin());
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    const std::string dir = tmp_.file("run" + std::to_string(++runs_));
    std::filesystem::create_directories(dir);
    return std::make_unique<test::ChildProcess>(argv, dir);
  }

  // tetherd itself on the test's configuration; null when it did not get ready.
  std::unique_ptr<test::ChildProcess> start_daemon(test::NotifySocket& notify) {
    auto daemon = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{TETHERD_BINARY, "--config", config_}, tmp_.path(),
        test::ChildOptions{
            .env = {{"NOTIFY_SOCKET", notify.path()}, {"RUNTIME_DIRECTORY", tmp_.file("run")}}});
    if (!notify.wait_for("READY=1", kDeadline)) {
      ADD_FAILURE() << daemon->err();
      return nullptr;
    }
    return daemon;
  }

  // The CSR's name, from the approve line enroll prints.
  static std::string csr_name(const test::ChildProcess& p) {
    if (!p.out_shows("kubectl certificate approve ", kDeadline)) return {};
    const std::string out = p.out();
    const auto at = out.find("kubectl certificate approve ") + 28;
    return out.substr(at, out.find('\n', at) - at);
  }

  // As `kubectl certificate approve|deny` does: the condition, PUT on /approval.
  unsigned decide(const std::string& name, const std::string& type) {
    auto object = server_->get(std::string(kCsrs) + "/" + name);
    if (!object) return 0;
    (*object)["status"] =
        json::object{{"conditions", json::array{json::object{{"type", type},
                                                             {"status", "True"},
                                                             {"reason", "KubectlApprove"},
                                                             {"message", "checked by the test"}}}}};
    Kubeconfig admin;
    admin.path = "admin";
    admin.context = "admin";
    admin.server = server_->url();
    admin.ca_pem = ca_.cert_pem();
    const auto cert = ca_.issue(
        {.common_name = "admin", .organizations = {"system:masters"}, .server_auth = false});
    admin.client_cert_pem = cert.cert_pem;
    admin.client_key_pem = cert.key_pem;
    boost::asio::io_context io;
    auto http = kube::HttpsClient::create(io.get_executor(), admin);
    if (!http) return 0;
    kube::KubeClient kube(**http);
    unsigned status = 0;
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          auto r = co_await kube.update(std::string(kCsrs) + "/" + name + "/approval", *object);
          status = r ? 200 : r.error().code;
        },
        boost::asio::detached);
    io.run();
    return status;
  }

  std::size_t requests_by(const std::string& user, const std::string& method = {}) const {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      n += r.user == user && (method.empty() || r.method == method);
    return n;
  }

  test::TestCa ca_{"cloud cluster CA"};
  std::unique_ptr<test::ApiServer> server_;
  test::TempDir tmp_;
  const std::string etc_ = tmp_.file("etc");
  const std::string config_ = etc_ + "/tetherd.yaml";
  const std::string token_ = tmp_.file("bootstrap.token");
  const std::string kubeconfig_ = etc_ + "/controlplane.kubeconfig";
  int runs_ = 0;
};

TEST_F(Enroll, PinnedCaFromTheChainApprovedWrittenAndSwitchedOn) {
  start_server();
  auto p = enroll({"--expiration", "48h"});
  const std::string name = csr_name(*p);
  ASSERT_TRUE(name.starts_with("tetherd-edge-1-")) << p->out() << p->err();
  const auto csr = server_->get(std::string(kCsrs) + "/" + name);
  ASSERT_TRUE(csr);
  EXPECT_EQ(csr->at("spec").at("username").as_string(), kBootstrapUser);
  EXPECT_EQ(csr->at("spec").at("expirationSeconds").as_int64(), 48 * 3600);
  EXPECT_EQ(csr->at("spec").at("signerName").as_string(), "kubernetes.io/kube-apiserver-client");
  EXPECT_EQ(mode_of(etc_ + "/node.key.next"), 0600u);
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_EQ(p->wait(kDeadline), 0) << p->out() << p->err();
  EXPECT_NE(p->out().find("enrolled: certificate"), std::string::npos) << p->out();

  // The files: the key private, the kubeconfig as the parser reads it.
  EXPECT_EQ(mode_of(etc_ + "/node.key"), 0600u);
  EXPECT_EQ(mode_of(kubeconfig_), 0600u);
  EXPECT_FALSE(std::filesystem::exists(etc_ + "/node.key.next"));
  EXPECT_FALSE(std::filesystem::exists(etc_ + "/node.csr.next"));
  auto k = load_kubeconfig(kubeconfig_);
  ASSERT_TRUE(k) << k.error().message;
  EXPECT_EQ(k->server, server_->url());
  const auto cert = x509::describe(x509::parse_certificates(k->client_cert_pem, "c")->front());
  EXPECT_EQ(cert.subject_cn, "tetherd:edge-1");
  EXPECT_EQ(cert.subject, "CN=tetherd:edge-1,O=tetherd:nodes");
  // As kube-controller-manager's signer: backdated 5 minutes, for clock skew.
  EXPECT_EQ(cert.not_after - cert.not_before, 48h + 5min);
  // The control plane switched on, the rest of the file as it was.
  const std::string config = read(config_);
  EXPECT_TRUE(config.starts_with("# tetherd on edge-1\n")) << config;
  auto loaded = load_config_file(config_, {"edge-1"});
  ASSERT_TRUE(std::holds_alternative<Config>(loaded)) << config;
  ASSERT_TRUE(std::get<Config>(loaded).control_plane);
  EXPECT_EQ(std::get<Config>(loaded).control_plane->kubeconfig, kubeconfig_);
  // The token went only to the verified server, and nothing secret is printed.
  EXPECT_EQ(p->out().find("bootstrap-token"), std::string::npos);
  EXPECT_EQ(p->err().find("bootstrap-token"), std::string::npos);

  // Again: nothing to do, nothing asked, nothing written.
  const auto requests = server_->requests().size();
  const auto written = std::filesystem::last_write_time(etc_ + "/node.crt");
  auto again = enroll();
  ASSERT_EQ(again->wait(kDeadline), 0) << again->err();
  EXPECT_NE(again->out().find("enrolled already"), std::string::npos) << again->out();
  EXPECT_EQ(server_->requests().size(), requests);
  EXPECT_EQ(std::filesystem::last_write_time(etc_ + "/node.crt"), written);
  EXPECT_EQ(read(config_), config);
}

TEST_F(Enroll, PinnedCaFromClusterInfoWhenTheChainHasOnlyTheServersCertificate) {
  start_server({.ca_in_chain = false, .cluster_info = true});
  auto p = enroll();
  const std::string name = csr_name(*p);
  ASSERT_FALSE(name.empty()) << p->err();
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_EQ(p->wait(kDeadline), 0) << p->out() << p->err();
  EXPECT_EQ(requests_by("system:anonymous"), 1u);
}

TEST_F(Enroll, AWrongPinSendsTheTokenNowhere) {
  start_server({.ca_in_chain = true, .cluster_info = true});
  test::TestCa other("another CA");
  auto p = enroll({"--ca-cert-hash", "sha256:" + spki(other.cert_pem())}, false);
  EXPECT_EQ(p->wait(kDeadline), 3) << p->err();
  EXPECT_NE(p->err().find("does not match --ca-cert-hash"), std::string::npos) << p->err();
  EXPECT_NE(p->err().find(pin()), std::string::npos) << "says which CA key the server has";
  EXPECT_EQ(requests_by(kBootstrapUser), 0u);
  EXPECT_FALSE(std::filesystem::exists(kubeconfig_));
}

TEST_F(Enroll, NoCaToCheckThePinAgainstSaysToGiveTheFile) {
  start_server({.ca_in_chain = false, .cluster_info = false});
  auto p = enroll();
  EXPECT_EQ(p->wait(kDeadline), 3) << p->err();
  EXPECT_NE(p->err().find("give the CA with --ca-file"), std::string::npos) << p->err();
  EXPECT_EQ(requests_by(kBootstrapUser), 0u);
}

TEST_F(Enroll, ACaFileAndAServerThatIsNotTheOneItVouchesFor) {
  start_server({.ca_in_chain = false});
  server_->misbehave({.what = test::Misbehaviour::kWrongHostCert, .times = 10});
  auto p = enroll({"--ca-file", tmp_.file("cloud-ca.crt")}, false);
  EXPECT_EQ(p->wait(kDeadline), 3) << p->err();
  EXPECT_NE(p->err().find("not the one the CA"), std::string::npos) << p->err();
  EXPECT_EQ(requests_by(kBootstrapUser), 0u);
}

TEST_F(Enroll, TokensExpiredOrWithoutRightsAreRefusedClearly) {
  start_server();
  write(token_, "expired-token\n", 0600);
  auto expired = enroll();
  EXPECT_EQ(expired->wait(kDeadline), 4) << expired->err();
  EXPECT_NE(expired->err().find("401 Unauthorized"), std::string::npos) << expired->err();
  EXPECT_EQ(expired->err().find("expired-token"), std::string::npos) << "the token is not shown";

  write(token_, "nobody-token\n", 0600);
  auto nobody = enroll();
  EXPECT_EQ(nobody->wait(kDeadline), 4) << nobody->err();
  EXPECT_NE(nobody->err().find("bootstrap.yaml"), std::string::npos) << nobody->err();

  ::chmod(token_.c_str(), 0640);
  auto shared = enroll();
  EXPECT_EQ(shared->wait(kDeadline), 64) << shared->err();
  EXPECT_NE(shared->err().find("chmod 600"), std::string::npos) << shared->err();
}

TEST_F(Enroll, ADeniedRequestIsSaidAndForgotten) {
  start_server();
  auto p = enroll();
  const std::string name = csr_name(*p);
  ASSERT_FALSE(name.empty()) << p->err();
  ASSERT_EQ(decide(name, "Denied"), 200u);
  EXPECT_EQ(p->wait(kDeadline), 5) << p->err();
  EXPECT_NE(p->err().find(name + " was denied (KubectlApprove): checked by the test"),
            std::string::npos)
      << p->err();
  EXPECT_FALSE(std::filesystem::exists(etc_ + "/node.key.next"));
  EXPECT_FALSE(std::filesystem::exists(kubeconfig_));
}

TEST_F(Enroll, ATimedOutWaitResumesTheSameRequest) {
  start_server();
  auto first = enroll({"--wait", "1s"});
  const std::string name = csr_name(*first);
  EXPECT_EQ(first->wait(kDeadline), 6) << first->err();
  EXPECT_NE(first->err().find("run the same command again"), std::string::npos) << first->err();
  EXPECT_TRUE(std::filesystem::exists(etc_ + "/node.key.next"));

  auto second = enroll();
  ASSERT_TRUE(second->out_shows("resuming: waiting for " + name, kDeadline)) << second->out();
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_EQ(second->wait(kDeadline), 0) << second->err();
  EXPECT_EQ(requests_by(kBootstrapUser, "POST"), 1u) << "one request, not two";
}

// The credentials' lock held (by tetherd renewing the certificate, or a
// second enroll): this enroll writes and asks nothing, and says so.
TEST_F(Enroll, TheCredentialsLockHeldElsewhereIsWaitedFor) {
  start_server();
  std::filesystem::create_directories(etc_);
  auto held = std::make_unique<CredentialsLock>(etc_);
  ASSERT_TRUE(held->locked());
  auto p = enroll();
  EXPECT_EQ(p->wait(kDeadline), 2) << p->err();
  EXPECT_NE(p->err().find("tetherd renewing the node's certificate, is writing " + etc_ +
                          ": run the same command again in a moment"),
            std::string::npos)
      << p->err();
  EXPECT_EQ(requests_by(kBootstrapUser, "POST"), 0u);
  EXPECT_FALSE(std::filesystem::exists(etc_ + "/node.key.next"));
  held.reset();
  auto again = enroll();
  const std::string name = csr_name(*again);
  ASSERT_EQ(decide(name, "Approved"), 200u);
  EXPECT_EQ(again->wait(kDeadline), 0) << again->err();
}

TEST_F(Enroll, ARequestUnderWayIsNeverThrownAwayByAnotherSpelling) {
  start_server();
  auto first = enroll({"--wait", "1s"});
  const std::string name = csr_name(*first);
  ASSERT_EQ(first->wait(kDeadline), 6) << first->err();
  // The same server by another name: refused, the request kept.
  const std::string url = server_->url();
  const std::string other = "https://localhost:" + url.substr(url.rfind(':') + 1);
  std::vector<std::string> argv{TETHERCTL_BINARY, "-c",  config_,        "enroll",
                                "--server",       other, "--token-file", token_,
                                "--ca-cert-hash", pin()};
  test::ChildProcess second(argv, tmp_.path());
  EXPECT_EQ(second.wait(kDeadline), 64) << second.err();
  EXPECT_NE(second.err().find("a request is under way with " + url), std::string::npos)
      << second.err();
  EXPECT_TRUE(std::filesystem::exists(etc_ + "/node.key.next"));
  EXPECT_TRUE(std::filesystem::exists(etc_ + "/node.csr.next"));
  EXPECT_EQ(requests_by(kBootstrapUser, "POST"), 1u);
}

TEST_F(Enroll, ACertificateThatCannotBeWrittenKeepsTheRequest) {
  start_server();
  std::filesystem::create_directories(etc_ + "/node.crt");  // in the way
  auto p = enroll();
  const std::string name = csr_name(*p);
  ASSERT_EQ(decide(name, "Approved"), 200u);
  EXPECT_EQ(p->wait(kDeadline), 2) << p->err();
  EXPECT_NE(p->err().find("cannot write " + etc_ + "/node.crt"), std::string::npos) << p->err();
  EXPECT_TRUE(std::filesystem::exists(etc_ + "/node.csr.next"));
  // The disk fixed, the same command finishes the same request.
  std::filesystem::remove(etc_ + "/node.crt");
  auto again = enroll();
  ASSERT_EQ(again->wait(kDeadline), 0) << again->err();
  EXPECT_EQ(again->out().find("kubectl certificate approve"), std::string::npos)
      << "approved already: no approve line";
  EXPECT_EQ(requests_by(kBootstrapUser, "POST"), 1u);
}

TEST_F(Enroll, AKubeconfigItDidNotWriteIsNotReplacedWithoutForce) {
  start_server();
  write(kubeconfig_,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "
        "https://192.0.2.10:6443}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- "
        "name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
        0600);
  const std::string mine = read(kubeconfig_);
  auto p = enroll();
  EXPECT_EQ(p->wait(kDeadline), 64) << p->err();
  EXPECT_NE(p->err().find("--force"), std::string::npos) << p->err();
  EXPECT_EQ(read(kubeconfig_), mine);
  EXPECT_EQ(server_->requests().size(), 0u);

  auto forced = enroll({"--force"});
  const std::string name = csr_name(*forced);
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_EQ(forced->wait(kDeadline), 0) << forced->err();
  EXPECT_NE(read(kubeconfig_), mine);
}

TEST_F(Enroll, ARelativeConfigurationPathWorks) {
  start_server();
  const std::string relative = std::filesystem::relative(config_).string();
  ASSERT_FALSE(relative.starts_with("/"));
  std::vector<std::string> argv{TETHERCTL_BINARY, "-c",           relative,       "enroll",
                                "--server",       server_->url(), "--token-file", token_,
                                "--ca-cert-hash", pin()};
  test::ChildProcess p(argv, tmp_.path());
  const std::string name = csr_name(p);
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_EQ(p.wait(kDeadline), 0) << p.err();
  auto loaded = load_config_file(config_, {"edge-1"});
  ASSERT_TRUE(std::holds_alternative<Config>(loaded)) << read(config_);
  EXPECT_EQ(std::get<Config>(loaded).control_plane->kubeconfig, kubeconfig_);
}

TEST_F(Enroll, ACertificateThatIsNotTheOneAskedForIsRefused) {
  start_server({.signer = false});
  auto p = enroll();
  const std::string name = csr_name(*p);
  ASSERT_FALSE(name.empty()) << p->err();
  // A signer that issues for someone else.
  const auto wrong = ca_.issue(
      {.common_name = "tetherd:edge-2", .organizations = {"tetherd:nodes"}, .server_auth = false});
  server_->patch_status(
      std::string(kCsrs) + "/" + name,
      {{"conditions", json::array{json::object{
                          {"type", "Approved"}, {"status", "True"}, {"reason", "KubectlApprove"}}}},
       {"certificate", encode_base64(wrong.cert_pem)}});
  EXPECT_EQ(p->wait(kDeadline), 5) << p->err();
  EXPECT_NE(p->err().find("tetherd:edge-2"), std::string::npos) << p->err();
  EXPECT_FALSE(std::filesystem::exists(etc_ + "/node.crt"));
}

TEST_F(Enroll, ANodeNameThatCannotNameObjectsIsSaid) {
  start_server();
  write(config_, "node: {name: Edge_1}\nfirewall: {backend: none}\n", 0644);
  auto p = enroll();
  EXPECT_EQ(p->wait(kDeadline), 7) << p->err();
  EXPECT_NE(p->err().find("DNS-1123 subdomain"), std::string::npos) << p->err();
  EXPECT_EQ(server_->requests().size(), 0u);
}

TEST_F(Enroll, ARunningTetherdTakesTheNewControlPlaneWithoutARestart) {
  start_server();
  test::NotifySocket notify(tmp_.file("notify"));
  auto running = start_daemon(notify);
  ASSERT_TRUE(running) << "tetherd did not become ready";
  test::ChildProcess& daemon = *running;
  auto p = enroll();
  const std::string name = csr_name(*p);
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_EQ(p->wait(kDeadline), 0) << p->err();
  EXPECT_TRUE(daemon.err_shows("TETHERD_EVENT=config-reloaded", kDeadline)) << daemon.err();
  EXPECT_TRUE(daemon.err_shows("TETHERD_EVENT=controlplane-connected", kDeadline)) << daemon.err();
  EXPECT_GT(requests_by("tetherd:edge-1"), 0u);
}

TEST_F(Enroll, TheConfigurationFileIsTakenWhenWrittenWholeNeverHalfWritten) {
  start_server();
  test::NotifySocket notify(tmp_.file("notify"));
  auto running = start_daemon(notify);
  ASSERT_TRUE(running) << "tetherd did not become ready";
  test::ChildProcess& daemon = *running;
  std::string whole = read(config_);
  const std::string health = "health: {linkerdGateway: \"\"}";
  ASSERT_NE(whole.find(health), std::string::npos);
  whole.replace(whole.find(health), health.size(), "health: {interval: 45s, linkerdGateway: \"\"}");
  // Written in place, in two parts, the file open in between for longer
  // than the watch's coalescing (1 s at most): half a file is never read.
  {
    std::ofstream out(config_, std::ios::trunc);
    out << whole.substr(0, whole.size() / 2) << std::flush;
    EXPECT_FALSE(daemon.err_shows("TETHERD_EVENT=config-", 1500ms)) << daemon.err();
    out << whole.substr(whole.size() / 2);
  }
  EXPECT_TRUE(daemon.err_shows("TETHERD_EVENT=config-reloaded", kDeadline)) << daemon.err();
  EXPECT_NE(daemon.err().find("health: new settings"), std::string::npos) << daemon.err();
  // Emptied: kept as it was, and said.
  { std::ofstream truncate(config_, std::ios::trunc); }
  EXPECT_TRUE(daemon.err_shows("TETHERD_EVENT=config-ignored", kDeadline)) << daemon.err();
  EXPECT_EQ(daemon.err().find("config-rejected"), std::string::npos) << daemon.err();
}

// The renewal in a running tetherd: a certificate at 83% of its life is
// renewed with a CSR the node makes, the admin approves it, and the new
// certificate is used by new connections while the watch and the Lease go
// on (no redial: no second watch; no Lease renewal later than a heartbeat
// and its slack).
TEST_F(Enroll, ARunningTetherdRenewsItsCertificateWithoutARedial) {
  start_server();
  const auto cert = ca_.issue({.common_name = "tetherd:edge-1",
                               .organizations = {"tetherd:nodes"},
                               .not_before_offset = -50s,
                               .lifetime = 60s,
                               .server_auth = false});
  write(etc_ + "/node.crt", cert.cert_pem, 0644);
  write(etc_ + "/node.key", cert.key_pem, 0600);
  write(kubeconfig_,
        render_kubeconfig({.server = server_->url(),
                           .ca_pem = ca_.cert_pem(),
                           .client_certificate = etc_ + "/node.crt",
                           .client_key = etc_ + "/node.key",
                           .user = "tetherd:edge-1"}),
        0600);
  std::ofstream(config_, std::ios::app) << "controlPlane: {kubeconfig: " << kubeconfig_
                                        << ", heartbeatInterval: 1s, leaseDuration: 5s}\n";
  const std::string first =
      x509::describe(x509::parse_certificates(cert.cert_pem, "")->front()).serial_hex;
  test::NotifySocket notify(tmp_.file("notify"));
  auto running = start_daemon(notify);
  ASSERT_TRUE(running) << "tetherd did not become ready";
  test::ChildProcess& daemon = *running;
  ASSERT_TRUE(server_->wait_for_watch_starts(1, kDeadline)) << daemon.err();

  ASSERT_TRUE(daemon.err_shows("kubectl certificate approve ", kDeadline)) << daemon.err();
  const std::string err = daemon.err();
  const auto at = err.find("kubectl certificate approve ") + 28;
  const std::string name =
      err.substr(at, err.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.", at) - at);
  ASSERT_TRUE(name.starts_with("tetherd-edge-1-")) << err;
  const auto renewal_started = std::chrono::steady_clock::now();
  // The EdgeNode's watches (the renewal watches its CSR too).
  auto edge_node_watches = [&] {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      n += r.watch && r.target.find("/edgenodes?") != std::string::npos;
    return n;
  };
  const std::size_t watches = edge_node_watches();
  ASSERT_EQ(decide(name, "Approved"), 200u);
  ASSERT_TRUE(daemon.err_shows("TETHERD_EVENT=credentials-renewed", kDeadline)) << daemon.err();
  ASSERT_TRUE(
      daemon.err_shows("new connections use them; the watch and the Lease go on", kDeadline))
      << daemon.err();
  const std::string second =
      x509::describe(x509::parse_certificates(read(etc_ + "/node.crt"), "")->front()).serial_hex;
  ASSERT_NE(second, first);
  // As the server records it: upper-case hex.
  auto upper = [](std::string hex) {
    for (char& c : hex)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return hex;
  };
  // Three Lease renewals with the new certificate.
  auto with = [&](const std::string& serial) {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      n += r.serial == upper(serial) && r.method == "PUT" &&
           r.target.find("/leases/") != std::string::npos;
    return n;
  };
  const auto until = std::chrono::steady_clock::now() + kDeadline;
  while (with(second) < 3 && std::chrono::steady_clock::now() < until)
    server_->wait_for_requests(server_->requests().size() + 1, 1s);
  EXPECT_GE(with(second), 3u) << daemon.err();
  EXPECT_EQ(edge_node_watches(), watches) << "the watch was held\n" << daemon.err();
  // No gap in the Lease around the renewal beyond a heartbeat (1 s) and
  // the slack of a loaded machine.
  std::optional<std::chrono::steady_clock::time_point> last;
  for (const auto& r : server_->requests()) {
    if (r.method != "PUT" || r.target.find("/leases/") == std::string::npos) continue;
    if (last && r.at > renewal_started) {
      EXPECT_LT(r.at - *last, 3s) << "a Lease gap at the renewal";
    }
    last = r.at;
  }
  EXPECT_EQ(mode_of(etc_ + "/node.key"), 0600u);
  EXPECT_FALSE(std::filesystem::exists(etc_ + "/node.key.next"));
  // The cloud is told: CredentialsValid, and the new expiry among the
  // certificates (role client), which the metrics and tetherctl show too.
  const std::string not_after = format_kube_time(
      x509::describe(x509::parse_certificates(read(etc_ + "/node.crt"), "")->front()).not_after);
  auto status = [&] {
    auto node =
        server_->get("/apis/tetherd.io/v1alpha1/namespaces/tetherd-system/edgenodes/edge-1");
    return node && node->contains("status") ? json::serialize(node->at("status")) : std::string();
  };
  const auto told = std::chrono::steady_clock::now() + kDeadline;
  while (status().find(not_after) == std::string::npos && std::chrono::steady_clock::now() < told)
    server_->wait_for_requests(server_->requests().size() + 1, 1s);
  const std::string written = status();
  EXPECT_NE(written.find("\"role\":\"client\""), std::string::npos) << written;
  EXPECT_NE(written.find(not_after), std::string::npos) << written;
  EXPECT_NE(written.find("\"reason\":\"CertificateValid\""), std::string::npos) << written;
  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(kDeadline), 0) << daemon.err();
}

}  // namespace
}  // namespace tetherd
