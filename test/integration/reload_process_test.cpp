// `systemctl reload` on the real binary: every section of tetherd.yaml
// changed alone, then together, then a bad file, against the test API
// server (which says which client certificate each request used), real
// sockets, a real state directory; and firewall.backend handed over on the
// real kernel.

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/core/base64.h"
#include "agent/core/linkerd_objects.h"
#include "agent/kube/kube_client.h"
#include "test/support/api_server/api_server.h"
#include "test/support/child_process.h"
#include "test/support/linkerd_pki.h"
#include "test/support/loopback_http.h"
#include "test/support/netns.h"
#include "test/support/notify_socket.h"
#include "test/support/rbac_manifest.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"
#include "test/support/ufw_sandbox.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using tcp = boost::asio::ip::tcp;

constexpr auto kDeadline = 20s;
constexpr const char* kEdgeNodes = "/apis/tetherd.io/v1alpha1/namespaces/tetherd-system/edgenodes";

void write_file(const std::string& path, const std::string& text, mode_t mode = 0644) {
  std::ofstream(path, std::ios::trunc) << text;
  chmod(path.c_str(), mode);
}

using test::free_port;

// The body served there; nullopt when nothing listens.
std::optional<std::string> get(std::uint16_t port, const std::string& target) {
  auto res = test::http_get(port, target);
  if (!res) return std::nullopt;
  return res->body();
}

// What a shell command prints on stdout ("" when it fails).
std::string out_of(const std::string& command) {
  std::string out;
  if (FILE* f = popen(command.c_str(), "r")) {
    char buffer[4096];
    for (std::size_t n; (n = fread(buffer, 1, sizeof buffer, f)) > 0;)
      out.append(buffer, n);
    pclose(f);
  }
  return out;
}

// A certificate's serial number in hex, as the test API server records it.
std::string serial_of(const std::string& pem) {
  std::string out;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
      char* hex = BN_bn2hex(bn);
      out = hex;
      OPENSSL_free(hex);
      BN_free(bn);
    }
    X509_free(cert);
  }
  BIO_free(bio);
  return out;
}

double metric(std::uint16_t port, const std::string& name) {
  auto page = get(port, "/metrics");
  if (!page) return -1;
  const auto at = page->find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(page->substr(at + name.size() + 2));
}

class ReloadProcess : public ::testing::Test {
 protected:
  ReloadProcess() {
    std::filesystem::create_directories(tmp_.file("run"));
    std::filesystem::create_directories(tmp_.file("s1"));
    test::ApiServerOptions options;
    options.identity = ca_.issue({.common_name = "kube-apiserver",
                                  .dns_names = {"localhost"},
                                  .ip_addresses = {"127.0.0.1"},
                                  .client_auth = false});
    options.client_ca_pem = ca_.cert_pem();
    server_ = std::make_unique<test::ApiServer>(std::move(options));
    for (auto& rule : test::shipped_rules())
      server_->allow(std::move(rule));
    write_file(tmp_.file("ca.crt"), ca_.cert_pem());
    kubeconfig("a", "tetherd:node-a");
    kubeconfig("b", "tetherd:node-b");
    // A saved state, which a new state.dir must carry.
    write_file(tmp_.file("s1/desired-firewall.json"),
               "{\"version\":1,\"sources\":[\"198.51.100.0/24\"],\"ports\":[]}\n", 0600);
  }

  // NAME.kubeconfig, naming NAME.crt and NAME.key for `user`. Returns the
  // certificate's serial.
  std::string kubeconfig(const std::string& name, const std::string& user,
                         const std::string& group = "tetherd:nodes") {
    const auto cert =
        ca_.issue({.common_name = user, .organizations = {group}, .server_auth = false});
    write_file(tmp_.file(name + ".crt"), cert.cert_pem);
    write_file(tmp_.file(name + ".key"), cert.key_pem, 0600);
    write_file(tmp_.file(name + ".kubeconfig"),
               "apiVersion: v1\nkind: Config\ncurrent-context: default\n"
               "clusters:\n- name: c\n  cluster:\n    server: " +
                   server_->url() + "\n    certificate-authority: " + tmp_.file("ca.crt") +
                   "\ncontexts:\n- name: default\n  context: {cluster: c, user: u}\n"
                   "users:\n- name: u\n  user:\n    client-certificate: " +
                   tmp_.file(name + ".crt") + "\n    client-key: " + tmp_.file(name + ".key") +
                   "\n");
    return serial_of(cert.cert_pem);
  }
  // A new certificate and key for `user` in NAME.crt and NAME.key: renamed
  // into place (as k3s and atomic writers do), or written in place.
  std::string renew(const std::string& name, const std::string& user, bool rename) {
    const auto cert =
        ca_.issue({.common_name = user, .organizations = {"tetherd:nodes"}, .server_auth = false});
    const std::string crt = tmp_.file(name + ".crt"), key = tmp_.file(name + ".key");
    if (rename) {
      write_file(key + ".new", cert.key_pem, 0600);
      write_file(crt + ".new", cert.cert_pem);
      std::filesystem::rename(key + ".new", key);
      std::filesystem::rename(crt + ".new", crt);
    } else {
      write_file(key, cert.key_pem, 0600);
      write_file(crt, cert.cert_pem);
    }
    return serial_of(cert.cert_pem);
  }

  struct Settings {
    std::string node = "node-a";
    std::string kubeconfig = "a";
    std::string heartbeat = "10s";
    std::string lease = "40s";
    std::string interval = "60s";
    std::uint16_t metrics = 0;
    std::string state = "s1";
    std::string cluster;  // empty: no cluster section
    std::string extra;
  };
  std::string yaml(const Settings& s) {
    return "node: {name: " + s.node +
           "}\ncontrolPlane: {kubeconfig: " + tmp_.file(s.kubeconfig + ".kubeconfig") +
           ", heartbeatInterval: " + s.heartbeat + ", leaseDuration: " + s.lease + "}\n" +
           (s.cluster.empty() ? "" : "cluster: {kubeconfig: " + s.cluster + "}\n") +
           "firewall: {backend: none}\nhealth: {interval: " + s.interval +
           ", linkerdGateway: \"\"}\nmetrics: {listen: \"" +
           (s.metrics ? "127.0.0.1:" + std::to_string(s.metrics) : "") +
           "\"}\nstate: {dir: " + tmp_.file(s.state) + "}\n" + s.extra;
  }

  // tetherd.yaml renamed into place, never seen half-written: tetherd
  // follows it (an admin's edit is taken as a reload is), and may read it
  // at any moment.
  void write_config(const std::string& text) {
    write_file(config_ + ".new", text);
    std::filesystem::rename(config_ + ".new", config_);
  }

  std::unique_ptr<test::ChildProcess> start(const Settings& s) {
    write_config(yaml(s));
    auto p = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{TETHERD_BINARY, "--config", config_}, tmp_.path(),
        test::ChildOptions{
            .env = {{"NOTIFY_SOCKET", notify_.path()}, {"RUNTIME_DIRECTORY", tmp_.file("run")}}});
    EXPECT_TRUE(notify_.wait_for("READY=1", kDeadline)) << p->err();
    return p;
  }

  // Writes the new file, sends SIGHUP, and waits for the reload's end
  // (its line is written before READY=1). Returns the line of the reload
  // that took the new file: one per reload, saying what changed and what
  // was done. status_: STATUS= then.
  //
  // tetherd also follows tetherd.yaml, and takes a change kQuiet (200 ms)
  // after the last event (FileWatch). An answer still due for the previous
  // write can come between this write and the SIGHUP: the file watch then
  // reloads first (a config-changed line, then that reload's own
  // RELOADING=1 ... READY=1), and the SIGHUP's reload reads the same
  // file again. Every reload is waited for: the SIGHUP's, and one more
  // for each config-changed line. The watch's can only come before the
  // SIGHUP's (after any reload tetherd holds the file as it is, and it is
  // not written again before this returns), so once more reloads ended
  // than config-changed lines were written, the SIGHUP's has.
  std::string reload(test::ChildProcess& p, const std::string& text) {
    const std::size_t before = reload_lines(p.err()).size();
    write_config(text);
    p.signal(SIGHUP);
    std::vector<std::string> lines;
    std::size_t reloads = 0, by_watch = 0;
    do {
      EXPECT_TRUE(notify_.wait_for("RELOADING=1", kDeadline)) << p.err();
      auto ready = notify_.wait_for("READY=1", kDeadline);
      if (!ready) {
        ADD_FAILURE() << "no READY=1 after reload " << reloads + 1 << "\n" << p.err();
        return std::string();
      }
      ++reloads;
      status_ = *ready;
      const auto all = reload_lines(p.err());
      lines.assign(all.begin() + static_cast<std::ptrdiff_t>(std::min(before, all.size())),
                   all.end());
      by_watch = static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [](auto& l) {
        return says(l, "TETHERD_EVENT=config-changed ");
      }));
    } while (reloads <= by_watch);
    // One line per reload, and one per reload the file watch started.
    EXPECT_EQ(lines.size(), reloads + by_watch) << p.err();
    std::vector<std::string> outcomes;
    for (const auto& l : lines)
      if (!says(l, "TETHERD_EVENT=config-changed ")) outcomes.push_back(l);
    // At most the file watch's came before the SIGHUP's, which then read
    // the file that one had: nothing changed, or, for what was refused
    // (the whole file, a port taken), the same refusal again.
    EXPECT_LE(by_watch, 1u) << p.err();
    if (outcomes.empty()) return std::string();
    if (outcomes.size() > 1) {
      const std::string& again = outcomes.back();
      EXPECT_TRUE(says(again, "configuration reloaded, nothing changed [") ||
                  again == outcomes.front())
          << "the SIGHUP's reload after the file watch's: " << again << "\n"
          << p.err();
    }
    return outcomes.front();
  }
  static std::vector<std::string> reload_lines(const std::string& err) {
    std::vector<std::string> out;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);)
      if (line.find("TETHERD_EVENT=config-") != std::string::npos) out.push_back(line);
    return out;
  }
  static bool says(const std::string& line, const std::string& part) {
    return line.find(part) != std::string::npos;
  }

  // Waits until `done` holds, at most `deadline`. What it looks at moves
  // with the daemon's requests (the server's store, its records), so it is
  // judged again at each request the server records (its condition
  // variable), and at least every 100 ms, when the notify socket is drained
  // as systemd would: a sender whose datagrams are not read blocks.
  template <class F>
  bool eventually(F done, std::chrono::milliseconds deadline = kDeadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    for (;;) {
      while (notify_.receive(std::chrono::milliseconds(0))) {
      }
      const std::size_t seen = server_->requests().size();
      if (done()) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      server_->wait_for_requests(seen + 1, std::min(left, std::chrono::milliseconds(100)));
    }
  }

  std::size_t requests_with(const std::string& serial) const {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      if (r.serial == serial) ++n;
    return n;
  }
  std::size_t requests_by(const std::string& user, const std::string& path_part = "") const {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      if (r.user == user && r.target.find(path_part) != std::string::npos) ++n;
    return n;
  }
  // Waits until `user` has made `more` requests on `path_part` beyond `from`.
  bool more_requests(const std::string& user, const std::string& path_part, std::size_t from,
                     std::size_t more) {
    return eventually([&] { return requests_by(user, path_part) >= from + more; });
  }
  std::optional<boost::json::object> edge_node(const std::string& name) const {
    return server_->get(std::string(kEdgeNodes) + "/" + name);
  }
  // The condition's status ("" when absent) in the EdgeNode as written.
  std::string condition(const std::string& node, const std::string& type) const {
    auto o = edge_node(node);
    if (!o || !o->contains("status")) return "";
    const auto* conditions = o->at("status").as_object().if_contains("conditions");
    if (!conditions) return "";
    for (const auto& c : conditions->as_array())
      if (c.at("type") == type.c_str()) return std::string(c.at("status").as_string());
    return "";
  }
  bool has_condition(const std::string& node, const std::string& type) const {
    return !condition(node, type).empty();
  }

  test::TempDir tmp_;
  test::TestCa ca_{"cloud CA"};
  std::unique_ptr<test::ApiServer> server_;
  std::string config_ = tmp_.file("tetherd.yaml");
  test::NotifySocket notify_{tmp_.file("notify")};
  std::string status_;
};

TEST_F(ReloadProcess, EachSectionAloneThenTogetherThenABadFile) {
  Settings s;
  s.metrics = free_port();
  auto p = start(s);
  ASSERT_TRUE(server_->wait_for_watch_starts(1, kDeadline)) << p->err();
  ASSERT_TRUE(more_requests("tetherd:node-a", "/leases/", 0, 1)) << p->err();

  {
    SCOPED_TRACE("controlPlane's intervals: the running session takes them");
    s.heartbeat = "1s";
    s.lease = "4s";
    const std::size_t watches = server_->watches_started();
    const std::size_t leases = requests_by("tetherd:node-a", "/leases/");
    const std::string line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line,
                     "<5>configuration reloaded: controlPlane: the running session takes "
                     "the new intervals [TETHERD_EVENT=config-reloaded"))
        << line;
    // A 10 s heartbeat could renew twice in 8 s at most (the one a
    // reload makes at once, and one more); 1 s renews three times and
    // more, and the Lease says 4 s.
    ASSERT_TRUE(
        eventually([&] { return requests_by("tetherd:node-a", "/leases/") >= leases + 3; }, 8s))
        << p->err();
    auto lease = server_->get(
        "/apis/coordination.k8s.io/v1/namespaces/"
        "tetherd-system/leases/tetherd-node-a");
    ASSERT_TRUE(lease);
    EXPECT_EQ(lease->at("spec").at("leaseDurationSeconds"), 4);
    EXPECT_EQ(server_->watches_started(), watches) << "the same session";
  }
  {
    SCOPED_TRACE("health.interval: the next round comes on the new one");
    const double rounds = metric(s.metrics, "tetherd_health_rounds_total");
    ASSERT_GE(rounds, 1);
    s.interval = "1s";
    const std::string line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line,
                     "configuration reloaded: controlPlane: the running session takes the "
                     "new intervals; health: new settings from the next round ["))
        << line << "\n(health.interval is the status cadence too)";
    EXPECT_TRUE(
        eventually([&] { return metric(s.metrics, "tetherd_health_rounds_total") >= rounds + 3; }));
  }
  {
    SCOPED_TRACE("metrics.listen: rebound; a port already taken keeps the old one");
    const std::uint16_t old_port = s.metrics;
    s.metrics = free_port();
    std::string line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line, "configuration reloaded: metrics.listen: now 127.0.0.1:" +
                               std::to_string(s.metrics) + " ["))
        << line;
    EXPECT_TRUE(get(s.metrics, "/metrics"));
    EXPECT_FALSE(get(old_port, "/metrics")) << "the old listener is closed";

    boost::asio::io_context io;
    tcp::acceptor taken(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
    Settings busy = s;
    busy.metrics = taken.local_endpoint().port();
    line = reload(*p, yaml(busy));
    EXPECT_TRUE(says(line, "configuration reloaded: metrics.listen: still 127.0.0.1:" +
                               std::to_string(s.metrics) + ": cannot listen on 127.0.0.1:" +
                               std::to_string(busy.metrics) + ": "))
        << line;
    EXPECT_TRUE(get(s.metrics, "/metrics")) << "the old listener still serves";
  }
  {
    SCOPED_TRACE("state.dir: the saved state comes along");
    s.state = "s2";
    const std::string line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line, "configuration reloaded: state.dir: now " + tmp_.file("s2") +
                               ", the saved state carried over ["))
        << line;
    std::ifstream saved(tmp_.file("s2/desired-firewall.json"));
    std::string text((std::istreambuf_iterator<char>(saved)), {});
    EXPECT_NE(text.find("198.51.100.0/24"), std::string::npos) << text;
    struct stat st {};
    ASSERT_EQ(stat(tmp_.file("s2").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
  }
  {
    SCOPED_TRACE(
        "node and controlPlane.kubeconfig: a new session, with "
        "node-b's certificate");
    s.node = "node-b";
    s.kubeconfig = "b";
    const std::string line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line,
                     "configuration reloaded: node: node-a is now node-b; controlPlane: a "
                     "new session with " +
                         server_->url() + " as node node-b ["))
        << line;
    ASSERT_TRUE(more_requests("tetherd:node-b", "/leases/tetherd-node-b", 0, 1)) << p->err();
    ASSERT_TRUE(eventually([&] { return edge_node("node-b").has_value(); }));
    // The old session is over: node-b renews three more times, node-a none.
    const std::size_t a = requests_by("tetherd:node-a");
    const std::size_t b = requests_by("tetherd:node-b", "/leases/");
    ASSERT_TRUE(more_requests("tetherd:node-b", "/leases/", b, 3));
    EXPECT_EQ(requests_by("tetherd:node-a"), a);
  }
  {
    SCOPED_TRACE("cluster: added before k3s is there, then removed");
    s.cluster = tmp_.file("k3s.yaml");
    std::string line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line, "configuration reloaded: cluster, linkerd: k3s's kubeconfig " +
                               s.cluster + " not usable yet, tried again every 10 s ["))
        << line;
    EXPECT_TRUE(eventually([&] { return has_condition("node-b", "K3sReady"); }));
    s.cluster.clear();
    line = reload(*p, yaml(s));
    EXPECT_TRUE(says(line, "configuration reloaded: cluster, linkerd: removed")) << line;
    EXPECT_TRUE(eventually([&] { return !has_condition("node-b", "K3sReady"); }))
        << "the condition goes with its section";
  }
  {
    SCOPED_TRACE("everything at once");
    Settings all;  // node-a, its kubeconfig, 10 s, 60 s, s1
    all.metrics = free_port();
    const std::size_t a = requests_by("tetherd:node-a", "/leases/");
    const std::string line = reload(*p, yaml(all));
    EXPECT_TRUE(says(line,
                     "configuration reloaded: node: node-b is now node-a; controlPlane: a "
                     "new session with " +
                         server_->url() +
                         " as node node-a; health: new settings from the next round; "
                         "metrics.listen: now 127.0.0.1:" +
                         std::to_string(all.metrics) + "; state.dir: now " + tmp_.file("s1") +
                         ", the saved state carried over ["))
        << line;
    EXPECT_TRUE(more_requests("tetherd:node-a", "/leases/", a, 1));
    EXPECT_TRUE(get(all.metrics, "/metrics"));
    s = all;
  }
  {
    SCOPED_TRACE("a bad file changes nothing");
    Settings bad = s;
    bad.node = "node-b";
    bad.extra = "firewall: {backend: pf}\n";
    const std::string line = reload(*p, yaml(bad));
    EXPECT_TRUE(says(line, "<3>new configuration rejected, keeping the old one: ")) << line;
    EXPECT_NE(status_.find("node node-a"), std::string::npos) << status_;
    EXPECT_TRUE(says(reload(*p, yaml(s)), "configuration reloaded, nothing changed"))
        << "the bad file changed nothing";
    EXPECT_TRUE(get(s.metrics, "/metrics"));
  }
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(kDeadline), 0) << p->err();
}

// A kubeconfig that cannot be used at start: tetherd runs without the
// control plane, and a reload once it is fixed starts the session.
TEST_F(ReloadProcess, AControlPlaneThatCouldNotStartStartsOnReload) {
  Settings s;
  s.kubeconfig = "missing";
  auto p = start(s);
  EXPECT_TRUE(
      p->err_shows("running without the control plane (fix it, then reload tetherd)", kDeadline))
      << p->err();
  s.kubeconfig = "a";
  const std::string line = reload(*p, yaml(s));
  EXPECT_TRUE(says(line, "configuration reloaded: controlPlane: a session with " + server_->url() +
                             " as node node-a"))
      << line;
  EXPECT_TRUE(server_->wait_for_watch_starts(1, kDeadline)) << p->err();
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(kDeadline), 0) << p->err();
}

// The node's client certificate renewed under a running tetherd, every way
// a file changes: each new one is used (the server says which certificate
// each request came with), a broken one is refused and the old one kept.
TEST_F(ReloadProcess, TheSessionsCredentialFilesAreFollowed) {
  const std::string first = kubeconfig("a", "tetherd:node-a");
  Settings s;
  s.heartbeat = "1s";
  s.interval = "1s";
  auto p = start(s);
  ASSERT_TRUE(eventually([&] { return requests_with(first) >= 2; })) << p->err();

  // Each new certificate: used within the deadline, and then the old one
  // is not (three renewals with the new one, none with the old).
  auto taken = [&](const std::string& old, const std::string& now) {
    // The old session's last requests may still be on their way at the
    // switch: counted once the new one has made three.
    if (!eventually([&] { return requests_with(now) >= 3; })) return false;
    const std::size_t before = requests_with(old);
    const std::size_t mark = requests_with(now);
    return eventually([&] { return requests_with(now) >= mark + 3; }) &&
           requests_with(old) == before;
  };
  // The same server: the new certificate is taken for new connections and
  // the watch is held (no new watch is opened for it).
  ASSERT_TRUE(server_->wait_for_watch_starts(1, kDeadline)) << p->err();
  const std::size_t watches = server_->watches_started();
  const std::string second = renew("a", "tetherd:node-a", /*rename=*/true);
  EXPECT_TRUE(taken(first, second)) << "renamed into place\n" << p->err();
  EXPECT_TRUE(p->err_shows("the control plane's credentials changed (" + tmp_.file("a.kubeconfig") +
                               "): new connections use them; the watch and the Lease go on",
                           kDeadline));
  EXPECT_EQ(server_->watches_started(), watches) << "the watch was held\n" << p->err();

  const std::string third = renew("a", "tetherd:node-a", /*rename=*/false);
  EXPECT_TRUE(taken(second, third)) << "written in place\n" << p->err();

  // Broken: the old credentials stay, and the node says why.
  write_file(tmp_.file("a.crt"), "-----BEGIN CERTIFICATE-----\nnot base64\n");
  EXPECT_TRUE(p->err_shows("controlPlane.kubeconfig changed and cannot be used: ", kDeadline))
      << p->err();
  EXPECT_TRUE(eventually([&] { return condition("node-a", "CredentialsValid") == "False"; }));
  const std::size_t mark = requests_with(third);
  EXPECT_TRUE(eventually([&] { return requests_with(third) >= mark + 2; }))
      << "the session goes on with the certificate in use";

  // Deleted, then restored: the restored one is used, the condition clears.
  std::filesystem::remove(tmp_.file("a.crt"));
  const std::string fourth = renew("a", "tetherd:node-a", /*rename=*/true);
  EXPECT_TRUE(taken(third, fourth)) << "restored\n" << p->err();
  EXPECT_TRUE(eventually([&] { return condition("node-a", "CredentialsValid") == "True"; }));
  EXPECT_TRUE(p->err_shows("controlPlane.kubeconfig is usable again", kDeadline));
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(kDeadline), 0) << p->err();
}

// k3s writes its kubeconfig after tetherd started, in a directory that did
// not exist then: it is taken when it appears, without waiting for a
// reload.
TEST_F(ReloadProcess, AK3sKubeconfigThatAppearsLateIsTaken) {
  Settings s;
  s.interval = "1s";
  s.cluster = tmp_.file("rancher/k3s/k3s.yaml");
  auto p = start(s);
  EXPECT_TRUE(p->err_shows("cannot use k3s's kubeconfig " + s.cluster, kDeadline)) << p->err();
  const std::string k3s = kubeconfig("k3s", "k3s-admin", "system:masters");
  std::filesystem::create_directories(tmp_.file("rancher/k3s"));
  std::filesystem::copy_file(tmp_.file("k3s.kubeconfig"), s.cluster);
  EXPECT_TRUE(p->err_shows("k3s's kubeconfig " + s.cluster + " is usable now", kDeadline))
      << p->err();
  EXPECT_TRUE(eventually([&] { return requests_with(k3s) >= 1; }))
      << "the K3sReady probe reaches k3s with its credentials";
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(kDeadline), 0) << p->err();
}

// linkerd.trustAnchorKey moved to another file by a reload: the new issuer
// rotation's first pass signs with that file's key, which is therefore not
// "another" key. It was judged from the old file's (the daemon's settings
// are the new file's only after the reload), so the daemon said
// anchor-key-changed and ran a second pass. A new key in the file later
// is another one, and is said.
TEST_F(ReloadProcess, ATrustAnchorKeyFileMovedByAReloadIsNotAnotherKey) {
  const auto now = std::chrono::system_clock::now();
  const test::PemPair a = test::make_linkerd_anchor({now - 1h, now + 87600h});
  const test::PemPair b = test::make_linkerd_anchor({now - 1h, now + 87600h});
  const test::PemPair c = test::make_linkerd_anchor({now - 1h, now + 87600h});
  write_file(tmp_.file("a.key"), a.key_pem, 0600);
  write_file(tmp_.file("b.key"), b.key_pem, 0600);
  const test::PemPair issuer = test::make_linkerd_issuer(a, {now - 1h, now + 8760h});
  server_->create(kube::collection_path(kube::kConfigMaps, "linkerd"),
                  boost::json::object{{"metadata", {{"name", kTrustRootsConfigMapName}}},
                                      {"data", {{kTrustRootsKey, a.cert_pem + b.cert_pem}}}});
  server_->create(kube::collection_path(kube::kSecrets, "linkerd"),
                  boost::json::object{{"metadata", {{"name", kIssuerSecretName}}},
                                      {"type", "kubernetes.io/tls"},
                                      {"data",
                                       {{"tls.crt", encode_base64(issuer.cert_pem)},
                                        {"tls.key", encode_base64(issuer.key_pem)},
                                        {"ca.crt", encode_base64(a.cert_pem)}}}});
  kubeconfig("k3s", "k3s-admin", "system:masters");
  Settings s;
  s.cluster = tmp_.file("k3s.kubeconfig");
  s.extra = "linkerd: {trustAnchorKey: " + tmp_.file("a.key") + "}\n";
  auto p = start(s);
  ASSERT_TRUE(p->err_shows("TETHERD_EVENT=certificates-valid", kDeadline)) << p->err();

  s.extra = "linkerd: {trustAnchorKey: " + tmp_.file("b.key") + "}\n";
  const std::string line = reload(*p, yaml(s));
  EXPECT_TRUE(says(line, "; linkerd's issuer in linkerd checked now [")) << line;
  // The reload's credential check (anchor_key()) has run when its line is
  // written: it would have said so by now.
  EXPECT_EQ(p->err().find("anchor-key-changed"), std::string::npos) << p->err();

  // The operator's next anchor: its key in the followed file.
  write_file(tmp_.file("b.key.new"), c.key_pem, 0600);
  std::filesystem::rename(tmp_.file("b.key.new"), tmp_.file("b.key"));
  EXPECT_TRUE(p->err_shows("TETHERD_EVENT=anchor-key-changed", kDeadline)) << p->err();
  p->signal(SIGTERM);
  EXPECT_EQ(p->wait(kDeadline), 0) << p->err();
}

// firewall.backend handed over on the real kernel: nftables, ufw, none and
// back, each new backend in force before the old one's rules go.
TEST(ReloadFirewall, TheBackendIsHandedOverWithoutARestart) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  if (!std::filesystem::exists("/usr/sbin/ufw")) GTEST_SKIP() << "ufw is not installed";
  test::TempDir tmp;
  const std::string netns = "tdho" + std::to_string(getpid());
  test::sh("ip netns add " + netns);
  struct Cleanup {
    std::string ns;
    ~Cleanup() { std::system(("ip netns del " + ns).c_str()); }
  } cleanup{netns};
  test::UfwSandbox ufw(netns, tmp);
  ASSERT_TRUE(ufw.ufw({"--force", "enable"}));
  std::filesystem::create_directories(tmp.file("state"));
  std::filesystem::create_directories(tmp.file("run"));
  write_file(tmp.file("state/desired-firewall.json"),
             "{\"version\":1,\"sources\":[\"198.51.100.0/24\"],\"ports\":[]}\n", 0600);
  const std::string config = tmp.file("tetherd.yaml");
  auto settings = [&](const std::string& backend) {
    return "node: {name: alpha}\nfirewall: {backend: " + backend +
           "}\nmetrics: {listen: \"\"}\nstate: {dir: " + tmp.file("state") + "}\n";
  };
  auto nft_table = [&] {
    return out_of("ip netns exec " + netns + " nft list table inet tetherd 2>/dev/null");
  };
  auto in_ufw = [&] {
    auto added = ufw.ufw({"show", "added"});
    return added && added->find("198.51.100.0/24") != std::string::npos;
  };
  write_file(config, settings("nftables"));
  test::NotifySocket notify(tmp.file("notify"));
  test::ChildProcess p(
      ufw.argv({TETHERD_BINARY, "--config", config}), tmp.path(),
      {.env = {{"NOTIFY_SOCKET", notify.path()}, {"RUNTIME_DIRECTORY", tmp.file("run")}}});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << p.err();
  ASSERT_NE(nft_table().find("198.51.100.0/24"), std::string::npos);

  auto reload_to = [&](const std::string& backend) {
    write_file(config, settings(backend));
    p.signal(SIGHUP);
    EXPECT_TRUE(notify.wait_for("RELOADING=1", kDeadline));
  };
  reload_to("ufw");
  ASSERT_TRUE(p.err_shows("firewall handed over from nftables to ufw", 60s)) << p.err();
  EXPECT_TRUE(in_ufw());
  EXPECT_EQ(nft_table(), "") << "the old backend's table is gone";
  EXPECT_TRUE(notify.wait_for("STATUS=standalone; node alpha; firewall ufw, 3 ports", kDeadline));

  reload_to("nftables");
  ASSERT_TRUE(p.err_shows("firewall handed over from ufw to nftables", 60s)) << p.err();
  EXPECT_NE(nft_table().find("198.51.100.0/24"), std::string::npos);
  EXPECT_FALSE(in_ufw());
  // The monitor follows: someone's flush is repaired at once again.
  test::sh("ip netns exec " + netns + " nft delete table inet tetherd");
  EXPECT_TRUE(p.err_shows("tetherd's rules had been removed by someone else", kDeadline))
      << p.err();

  reload_to("none");
  ASSERT_TRUE(p.err_shows("firewall handed over from nftables to none", kDeadline)) << p.err();
  EXPECT_EQ(nft_table(), "");
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(60s), 0) << p.err();
}

}  // namespace
}  // namespace tetherd
