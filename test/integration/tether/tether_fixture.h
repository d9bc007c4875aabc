#pragma once
// The tether end to end, the fixture: the cloud is the test API server in
// its own network namespace (peer a, 192.0.2.2), enforcing mTLS and the
// shipped RBAC; the node is a namespace where tetherd's event loop runs the
// Tether and a real firewall backend (nftables unless a test says). What the
// control plane says must reach the kernel, and what the kernel does is
// checked with real connections from peer a (192.0.2.2) and peer b
// (198.51.100.2) to the node's ports.

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/system_clock.h"
#include "agent/app/node_health.h"
#include "agent/app/tether.h"
#include "firewall/desired_state.h"
#include "test/integration/kube/kube_fixture.h"
#include "test/support/netns.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"

namespace tetherd::test {

namespace json = boost::json;
using namespace std::chrono_literals;

inline const std::string kEdgeNodes = kube::collection_path(kube::kEdgeNodes, kNamespace);
inline const std::string kNodeA = kube::object_path(kube::kEdgeNodes, kNamespace, "node-a");
inline const std::string kNodeB = kube::object_path(kube::kEdgeNodes, kNamespace, "node-b");
inline const std::string kLeaseA = kube::object_path(kube::kLeases, kNamespace, "tetherd-node-a");
inline constexpr const char* kCloud = "192.0.2.2/32";
inline constexpr const char* kStranger = "198.51.100.2/32";

class TetherKernel : public testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces and nft tables";
    topo_ = std::make_unique<Topology>();
    topo_->listen_on({6443, 4143, 4191});
    {
      // The cloud's API server lives in peer a's namespace.
      InNetns in(topo_->a);
      ApiServerOptions options;
      options.identity = ca_.issue(
          {.common_name = "kube-apiserver", .ip_addresses = {"192.0.2.2"}, .client_auth = false});
      options.client_ca_pem = ca_.cert_pem();
      options.listen_address = "192.0.2.2";
      server_ = std::make_unique<ApiServer>(std::move(options));
    }
    for (auto& rule : shipped_rules())
      server_->allow(std::move(rule));

    config_.node_name = "node-a";
    config_.control_plane.emplace();
    config_.state.dir = state_dir_.path();
    config_.firewall.verdict = firewall::Verdict::kReject;  // a refusal is seen at once
    config_.firewall.max_sources = 16;
    // The event loop lives in the node's namespace, as tetherd in the host's.
    thread_ = std::thread([this] {
      InNetns in(topo_->node);
      io_.run();
    });
  }

  void TearDown() override {
    if (!topo_) return;
    if (health_) {
      on_io([this] { health_->stop(); });
      EXPECT_TRUE(eventually([this] { return health_->finished(); })) << "health did not stop";
      on_io([this] { health_.reset(); });
    }
    if (tether_) {
      on_io([this] { tether_->stop(); });
      EXPECT_TRUE(eventually([this] { return tether_->finished(); })) << "the tether did not stop";
      on_io([this] { tether_.reset(); });
    }
    work_.reset();
    thread_.join();
  }

  Kubeconfig kubeconfig(const TestCa& issuer, std::chrono::hours lifetime = 24h) const {
    Kubeconfig k;
    k.path = "test-kubeconfig";
    k.server = server_->url();
    k.ca_pem = ca_.cert_pem();
    const auto cert = issuer.issue({.common_name = "tetherd:node-a",
                                    .organizations = {"tetherd:nodes"},
                                    .not_before_offset = lifetime < 0h ? lifetime * 2 : 0h,
                                    .lifetime = lifetime < 0h ? -lifetime : lifetime,
                                    .server_auth = false});
    k.client_cert_pem = cert.cert_pem;
    k.client_key_pem = cert.key_pem;
    return k;
  }

  // The daemon's start, in its order: the firewall first (fail closed,
  // offline first), then the session.
  void start(std::optional<Kubeconfig> k = std::nullopt) {
    const Kubeconfig kc = k ? *k : kubeconfig(ca_);
    on_io([&] {
      keeper_ = std::make_unique<FirewallKeeper>(
          log_, StateDir(state_dir_.path()), make_backend_,
          std::vector<boost::asio::ip::address>{boost::asio::ip::make_address("192.0.2.1"),
                                                boost::asio::ip::make_address("198.51.100.1")},
          io_.get_executor(), FirewallKeeper::Worker::kThread);
      auto started = keeper_->start(config_.firewall);
      ASSERT_TRUE(started) << started.error().message;
      auto http = kube::HttpsClient::create(io_.get_executor(), kc);
      ASSERT_TRUE(http) << http.error().message;
      TetherTiming timing;
      // Short waits: these tests are about what happens, not how long.
      timing.retry = kube::default_retry_context(clock_, {.base = 100ms, .cap = 1s});
      timing.retry->random = [] { return 0.5; };
      tether_ = std::make_unique<Tether>(io_, clock_, log_, *keeper_, conditions_, std::move(*http),
                                         config_, std::move(timing));
      auto objects = kube::HttpsClient::create(io_.get_executor(), kc);
      ASSERT_TRUE(objects) << objects.error().message;
      tether_->follow_objects_with(std::move(*objects));
      tether_->on_change([this] { poke(); });
      tether_->start();
    });
  }

  // Runs `f` on the event loop, where the tether's objects live.
  template <class F>
  auto on_io(F f) -> decltype(f()) {
    using T = decltype(f());
    std::packaged_task<T()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

  // Whether `check`, run on the event loop, comes true within the deadline.
  // It is tried again whenever the tether reports a change, and at least
  // every 50 ms for what it cannot report (the kernel, the server).
  bool eventually(std::function<bool()> check, std::chrono::milliseconds deadline = kDeadline) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!on_io(check)) {
      std::unique_lock lock(mutex_);
      if (changes_.wait_until(lock, std::min(until, std::chrono::steady_clock::now() + 50ms)) ==
              std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= until)
        return false;
    }
    return true;
  }
  void poke() { changes_.notify_all(); }
  // What the server was asked, for a failure's message.
  std::string requests() const {
    std::string r;
    for (const auto& q : server_->requests())
      r += q.method + " " + q.target + " " + std::to_string(q.status) + "\n";
    return r;
  }

  Outcome from(const std::string& ns, std::uint16_t port = 6443) {
    return topo_->connect_from(ns, ns == topo_->a ? "192.0.2.1" : "198.51.100.1", port);
  }
  bool cloud_allowed() { return from(topo_->a) == Outcome::kConnected; }
  bool stranger_allowed() { return from(topo_->b) == Outcome::kConnected; }

  void set_sources(json::array sources) {
    auto node = *server_->get(kNodeA);
    node["spec"] = {{"firewall", {{"allowedSources", std::move(sources)}}}};
    server_->update(kNodeA, node);
  }
  std::optional<json::object> condition(const std::string& type) const {
    auto node = server_->get(kNodeA);
    if (!node || !node->contains("status")) return std::nullopt;
    const auto* conditions = node->at("status").as_object().if_contains("conditions");
    if (!conditions) return std::nullopt;
    for (const auto& c : conditions->as_array())
      if (c.at("type").as_string() == type) return c.as_object();
    return std::nullopt;
  }
  bool condition_is(const std::string& type, const std::string& status, const std::string& reason) {
    auto c = condition(type);
    return c && c->at("status").as_string() == status && c->at("reason").as_string() == reason;
  }
  // The local view (what tetherctl and STATUS= show): also when the
  // control plane cannot be written to.
  bool local_condition_is(std::string_view type, ConditionStatus status, std::string_view reason) {
    const Condition* c = conditions_.find(type);
    return c && c->status == status && c->reason == reason;
  }

  // The backend for the keeper (firewall.backend as tetherd makes it).
  FirewallKeeper::BackendFactory make_backend_ = [](const FirewallConfig& c) {
    return make_firewall_backend(c);
  };
  TestCa ca_{"cloud CA"};
  std::unique_ptr<Topology> topo_;
  std::unique_ptr<ApiServer> server_;
  TempDir state_dir_;
  Config config_;
  SystemClock clock_;
  RecordingLog log_;                                             // touched on the event loop only
  NodeConditions conditions_{clock_, config_.health.threshold};  // likewise
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{
      io_.get_executor()};
  std::thread thread_;
  std::unique_ptr<FirewallKeeper> keeper_;
  std::unique_ptr<Tether> tether_;
  std::unique_ptr<NodeHealth> health_;
  std::mutex mutex_;
  std::condition_variable changes_;
};

}  // namespace tetherd::test
