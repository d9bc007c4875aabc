// The meshed proxies on a node, found and healed (issue 22): the test API
// server as k3s (pods, budgets, the Eviction API), stand-in proxies
// serving their admin page on real sockets, and the wall clock simulated
// (a suspend of days is a step of it).

#include "agent/app/mesh_watch.h"

#include <boost/json.hpp>

#include "test/integration/kube/kube_fixture.h"
#include "test/support/fake_proxy.h"
#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr char kNode[] = "edge-1";

class Mesh : public KubeTest {
 protected:
  // Everything of tetherd's runs on this test's thread, on its own loop.
  Mesh() {
    auto made = kube::HttpsClient::create(mio_.get_executor(), admin_kubeconfig());
    if (!made) ADD_FAILURE() << made.error().message;
    if (made) k3s_ = std::shared_ptr<kube::HttpsClient>(std::move(*made));
  }
  ~Mesh() override {
    mesh_.reset();
    k3s_.reset();
    mio_.run_for(100ms);  // what they left behind (closing sockets) ends
  }

  // A meshed pod on this node whose proxy is `proxy`; `labels` say its
  // role; without `controller` it is bare.
  void pod(const std::string& ns, const std::string& name, const FakeProxy& proxy,
           json::object labels = {}, const std::string& controller = "ReplicaSet",
           const std::string& node = kNode, const std::string& trust_root = "") {
    labels["linkerd.io/control-plane-ns"] = "linkerd";
    json::object metadata{{"name", name}, {"namespace", ns}, {"labels", labels}};
    if (!trust_root.empty())
      metadata["annotations"] = json::object{{"linkerd.io/trust-root-sha256", trust_root}};
    if (!controller.empty()) {
      metadata["ownerReferences"] = json::array{json::object{{"apiVersion", "apps/v1"},
                                                             {"kind", controller},
                                                             {"name", name + "-rs"},
                                                             {"uid", "rs-" + name},
                                                             {"controller", true}}};
    }
    json::object spec{
        {"nodeName", node},
        {"containers",
         json::array{
             json::object{{"name", "app"}},
             json::object{{"name", "linkerd-proxy"},
                          {"ports", json::array{json::object{{"name", "linkerd-admin"},
                                                             {"containerPort", proxy.port()}}}}}}}};
    server_->create(
        "/api/v1/namespaces/" + ns + "/pods",
        {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", metadata}, {"spec", spec}});
    server_->patch_status(
        "/api/v1/namespaces/" + ns + "/pods/" + name,
        {{"phase", "Running"},
         {"podIP", "127.0.0.1"},
         {"conditions", json::array{json::object{{"type", "Ready"}, {"status", "True"}}}}});
  }
  // A budget over pods labelled app=`app` allowing `allowed` disruptions.
  void budget(const std::string& ns, const std::string& app, int allowed) {
    const std::string path = "/apis/policy/v1/namespaces/" + ns + "/poddisruptionbudgets";
    if (!server_->get(path + "/" + app)) {
      server_->create(
          path, {{"apiVersion", "policy/v1"},
                 {"kind", "PodDisruptionBudget"},
                 {"metadata", {{"name", app}, {"namespace", ns}}},
                 {"spec", {{"minAvailable", 1}, {"selector", {{"matchLabels", {{"app", app}}}}}}}});
    }
    server_->patch_status(path + "/" + app, {{"observedGeneration", 1},
                                             {"disruptionsAllowed", allowed},
                                             {"currentHealthy", 1 + allowed},
                                             {"desiredHealthy", 1},
                                             {"expectedPods", 1 + allowed}});
  }

  void watch(bool heal, MeshTiming timing = {}) {
    timing.read_deadline = 1s;
    mesh_ = std::make_unique<MeshWatch>(
        mio_.get_executor(), clock_, log_, conditions_, kNode, heal,
        [this] { return issuer_valid_; }, timing);
    mesh_->set_k3s(k3s_);
  }
  // One pass, in real time (the network's), at most kDeadline.
  void pass() {
    bool done = false;
    boost::asio::co_spawn(mio_, mesh_->pass(), [&](std::exception_ptr e) {
      done = true;
      if (e) std::rethrow_exception(e);
    });
    const auto until = std::chrono::steady_clock::now() + kDeadline;
    while (!done && std::chrono::steady_clock::now() < until) {
      mio_.restart();
      mio_.run_for(5ms);
    }
    for (const auto& r : log_.records)
      trace_ += r.event + ": " + r.message + "\n";
    ASSERT_TRUE(done) << "the pass did not end; reads " << mesh_->stats().reads << "\n" << trace_;
  }
  const Condition* healthy() const { return conditions_.find(condition_type::kMeshHealthy); }
  WallTime now() const { return clock_.wall(); }

  boost::asio::io_context mio_;
  std::string trace_;  // the journal so far, for failure messages
  SimClock clock_{std::chrono::system_clock::now()};
  NodeConditions conditions_{clock_, 1};
  RecordingLog log_;
  std::shared_ptr<kube::HttpsClient> k3s_;
  std::unique_ptr<MeshWatch> mesh_;
  bool issuer_valid_ = true;
  FakeProxy identity_, destination_, web_, bare_, elsewhere_;
};

// Report only (the default): found, said everywhere, nothing evicted.
TEST_F(Mesh, ExpiredProxiesAreFoundAndReported) {
  identity_.serve(FakeProxy::page(now() + 20h));
  web_.serve(FakeProxy::page(now() - 72h));
  bare_.serve(FakeProxy::page(now() - 72h));
  elsewhere_.serve(FakeProxy::page(now() - 72h));
  pod("linkerd", "linkerd-identity-1", identity_,
      {{"linkerd.io/control-plane-component", "identity"}});
  pod("shop", "web-1", web_, {{"app", "web"}});
  pod("shop", "bare", bare_, {}, /*controller=*/"");
  pod("shop", "elsewhere", elsewhere_, {}, "ReplicaSet", "edge-2");
  watch(/*heal=*/false);
  pass();

  ASSERT_TRUE(mesh_->report()) << trace_;
  const MeshReport& r = *mesh_->report();
  EXPECT_EQ(r.meshed, 3u) << "another node's pod is not this node's";
  EXPECT_EQ(r.expired, 2u);
  EXPECT_EQ(r.expired_pods, (std::vector<std::string>{"shop/bare", "shop/web-1"}));
  ASSERT_NE(healthy(), nullptr);
  EXPECT_EQ(healthy()->status, ConditionStatus::kFalse);
  EXPECT_EQ(healthy()->reason, "ProxiesExpired");
  EXPECT_EQ(healthy()->message,
            "2 of 3 meshed proxies on this node hold an expired certificate and cannot renew it: "
            "shop/bare, shop/web-1");
  EXPECT_EQ(log_.with_event("mesh-proxies-expired").size(), 1u);
  EXPECT_EQ(elsewhere_.requests(), 0u);
  EXPECT_TRUE(server_->evictions().empty()) << "report only";

  // Steady state: the valid proxy is not read again; the expired are.
  const std::size_t identity_reads = identity_.requests();
  pass();
  EXPECT_EQ(identity_.requests(), identity_reads);
  EXPECT_EQ(log_.with_event("mesh-proxies-expired").size(), 1u) << "a line per change";
  // A resume: everything is read again.
  clock_.suspend(1h);
  mesh_->resumed(now());
  pass();
  EXPECT_EQ(identity_.requests(), identity_reads + 1);
}

// A seven-day sleep: every proxy expired. Healed in order: identity, then
// the rest of the control plane, then workloads; a budget's 429 waits for
// a later pass; a bare pod is reported, never evicted; nothing twice.
TEST_F(Mesh, AWeekAsleepIsHealedInOrderHonouringBudgets) {
  pod("linkerd", "linkerd-identity-1", identity_,
      {{"linkerd.io/control-plane-component", "identity"}});
  pod("linkerd", "linkerd-destination-1", destination_,
      {{"linkerd.io/control-plane-component", "destination"}});
  pod("shop", "web-1", web_, {{"app", "web"}});
  pod("shop", "bare", bare_, {}, /*controller=*/"");
  budget("shop", "web", 0);
  for (FakeProxy* p : {&identity_, &destination_, &web_, &bare_})
    p->serve(FakeProxy::page(now() + 20h));
  watch(/*heal=*/true);
  pass();
  EXPECT_EQ(healthy()->status, ConditionStatus::kTrue);

  clock_.suspend(7 * 24h);
  mesh_->resumed(now());
  // The issuer first: while it is not valid, nothing is evicted.
  issuer_valid_ = false;
  pass();
  EXPECT_EQ(healthy()->status, ConditionStatus::kFalse);
  EXPECT_TRUE(server_->evictions().empty());
  EXPECT_EQ(log_.with_event("mesh-heal-waiting").size(), 1u);

  // Identity alone, in this pass.
  issuer_valid_ = true;
  pass();
  EXPECT_EQ(server_->evictions(), (std::vector<std::string>{"linkerd/linkerd-identity-1"}));
  ASSERT_EQ(log_.with_event("mesh-proxy-evicted").size(), 1u);
  EXPECT_NE(log_.with_event("mesh-proxy-evicted")[0].message.find(
                "evicted linkerd/linkerd-identity-1 (identity, ReplicaSet/linkerd-identity-1-rs): "
                "its proxy's identity certificate expired "),
            std::string::npos)
      << log_.with_event("mesh-proxy-evicted")[0].message;
  // Its replacement comes up, its proxy still without a certificate (the
  // gauge at 0): not expired, and the next tier waits for it.
  identity_.serve("control_identity_cert_expiration_timestamp_seconds 0\n");
  pod("linkerd", "linkerd-identity-2", identity_,
      {{"linkerd.io/control-plane-component", "identity"}});
  clock_.step_wall(1min);
  pass();
  EXPECT_EQ(server_->evictions().size(), 1u) << "destination waits for identity's replacement";
  EXPECT_EQ(mesh_->report()->expired, 3u) << "the starting proxy is not counted expired";
  identity_.serve(FakeProxy::page(now() + 24h));
  pass();
  EXPECT_EQ(server_->evictions().back(), "linkerd/linkerd-destination-1");

  // Then the workloads, after the destination settles (no replacement of
  // it on this node: its time is enough): web's budget allows none now,
  // refused; the bare pod only said.
  clock_.step_wall(1min);
  pass();
  EXPECT_EQ(server_->evictions().size(), 2u);
  EXPECT_EQ(mesh_->stats().evictions_refused, 1u);
  EXPECT_EQ(log_.with_event("mesh-proxy-not-evicted").size(), 1u);
  EXPECT_EQ(log_.with_event("mesh-eviction-refused").size(), 1u);
  // Still refused on the next pass: counted, said once.
  pass();
  EXPECT_EQ(mesh_->stats().evictions_refused, 2u);
  EXPECT_EQ(log_.with_event("mesh-eviction-refused").size(), 1u);

  // The budget allows one now: web goes; the bare pod stays.
  budget("shop", "web", 1);
  pass();
  EXPECT_EQ(server_->evictions().back(), "shop/web-1");
  EXPECT_EQ(server_->evictions().size(), 3u);
  EXPECT_FALSE(server_->get("/api/v1/namespaces/shop/pods/web-1"));
  EXPECT_TRUE(server_->get("/api/v1/namespaces/shop/pods/bare"));
  EXPECT_EQ(log_.with_event("mesh-proxy-not-evicted").size(), 1u) << "said once";

  // Its controller makes it anew under the same name (a StatefulSet's way),
  // and its proxy is still expired: not evicted again within 10 minutes.
  pod("shop", "web-1", web_, {{"app", "web"}});
  budget("shop", "web", 1);
  pass();
  EXPECT_EQ(server_->evictions().size(), 3u);
  clock_.step_wall(11min);
  pass();
  EXPECT_EQ(server_->evictions().size(), 4u);
}

// Only what a controller makes anew, as it was: a Job's pod (an eviction
// counts against its backoff) is reported like a bare one.
TEST_F(Mesh, AJobsPodIsNotEvicted) {
  web_.serve(FakeProxy::page(now() - 72h));
  pod("batch", "report-x7", web_, {}, "Job");
  watch(/*heal=*/true);
  pass();
  ASSERT_EQ(mesh_->report()->expired, 1u);
  EXPECT_TRUE(server_->evictions().empty());
  ASSERT_EQ(log_.with_event("mesh-proxy-not-evicted").size(), 1u);
  EXPECT_NE(log_.with_event("mesh-proxy-not-evicted")[0].message.find("is a Job/report-x7-rs's"),
            std::string::npos)
      << log_.with_event("mesh-proxy-not-evicted")[0].message;
}

// What a proxy says that cannot be believed, or nothing at all, changes
// nothing and says why.
TEST_F(Mesh, ProxiesThatHangOrLieAreUnreadableNotExpired) {
  identity_.hang();
  web_.serve("control_identity_cert_expiration_timestamp_seconds NaN\n");
  bare_.serve("forbidden", 403);
  destination_.serve("control_identity_cert_expiration_timestamp_seconds 0\n");  // starting
  pod("linkerd", "linkerd-identity-1", identity_,
      {{"linkerd.io/control-plane-component", "identity"}});
  pod("shop", "web-1", web_);
  pod("shop", "bare", bare_);
  pod("shop", "starting", destination_);
  watch(/*heal=*/true);
  pass();
  const MeshReport& r = *mesh_->report();
  EXPECT_EQ(r.unreadable, 4u);
  EXPECT_EQ(r.expired, 0u);
  EXPECT_EQ(healthy()->status, ConditionStatus::kUnknown);
  EXPECT_EQ(healthy()->reason, "ProxiesUnreadable");
  EXPECT_NE(healthy()->message.find("4 could not be read"), std::string::npos)
      << healthy()->message;
  EXPECT_TRUE(server_->evictions().empty());
}

// A big page is left as soon as the identity lines are read.
TEST_F(Mesh, APageIsReadOnlyAsFarAsItsIdentityLines) {
  web_.serve(FakeProxy::page(now() + 20h, 1, 0, 1 << 20) +
             std::string(3 << 20, '#'));  // 4 MiB in all
  pod("shop", "web-1", web_);
  MeshTiming t;
  t.max_page_bytes = 2 << 20;
  watch(false, t);
  pass();
  EXPECT_EQ(mesh_->report()->valid, 1u) << healthy()->message;
}

// A new trust bundle from the cloud: exactly the pods whose proxies
// started with another are rolled, in waves (identity's tier first, then a
// few workloads per pass), each once.
TEST_F(Mesh, ABundleChangeRollsExactlyTheStalePodsInWaves) {
  const std::string old_hash(64, 'a'), new_hash(64, 'b');
  std::vector<std::unique_ptr<FakeProxy>> proxies;
  auto proxy = [&] {
    proxies.push_back(std::make_unique<FakeProxy>());
    proxies.back()->serve(FakeProxy::page(now() + 20h));
    return std::cref(*proxies.back());
  };
  pod("linkerd", "linkerd-identity-1", proxy(),
      {{"linkerd.io/control-plane-component", "identity"}}, "ReplicaSet", kNode, old_hash);
  for (int i = 1; i <= 5; ++i)
    pod("shop", "web-" + std::to_string(i), proxy(), {}, "ReplicaSet", kNode, old_hash);
  pod("shop", "current", proxy(), {}, "ReplicaSet", kNode, new_hash);
  pod("shop", "unannotated", proxy());
  pod("shop", "bare-stale", proxy(), {}, /*controller=*/"", kNode, old_hash);
  MeshTiming t;
  t.evictions_at_once = 2;
  watch(/*heal=*/false, t);
  // The pods were made before the bundle came into force.
  clock_.step_wall(1h);
  mesh_->set_trust_bundle(new_hash, now(), /*roll=*/true);

  pass();
  EXPECT_EQ(mesh_->report()->stale_bundle, 7u) << trace_;
  EXPECT_EQ(mesh_->report()->bundle_sha256, new_hash);
  EXPECT_EQ(server_->evictions(), (std::vector<std::string>{"linkerd/linkerd-identity-1"}));
  ASSERT_EQ(log_.with_event("mesh-bundle-stale").size(), 1u);
  EXPECT_NE(log_.with_event("mesh-bundle-stale")[0].message.find("rolling them in waves"),
            std::string::npos);

  // Identity's tier has no pod here now: the workloads wait `tier_settle`.
  pass();
  EXPECT_EQ(server_->evictions().size(), 1u);
  std::size_t passes = 0;
  while (server_->evictions().size() < 6 && passes++ < 10) {
    clock_.step_wall(t.tier_settle);
    const std::size_t before = server_->evictions().size();
    pass();
    EXPECT_LE(server_->evictions().size() - before, 2u) << "a wave is at most evictions_at_once";
  }
  std::vector<std::string> evicted = server_->evictions();
  std::sort(evicted.begin(), evicted.end());
  EXPECT_EQ(evicted,
            (std::vector<std::string>{"linkerd/linkerd-identity-1", "shop/web-1", "shop/web-2",
                                      "shop/web-3", "shop/web-4", "shop/web-5"}));
  // Nothing more: the current, the unannotated and the bare pod stay.
  clock_.step_wall(t.eviction_spacing);
  pass();
  EXPECT_EQ(server_->evictions().size(), 6u);
  EXPECT_EQ(mesh_->report()->stale_bundle, 1u) << "the bare pod is counted, never rolled";
}

// Pods made after the bundle changed but stamped with another hash (the
// injector's linkerd-config lags): said once, never rolled. And without a
// bundle from the cloud, stale pods are counted, not rolled.
TEST_F(Mesh, StalePodsMadeSinceTheChangeOrWithoutACloudBundleAreNotRolled) {
  const std::string old_hash(64, 'a'), new_hash(64, 'b');
  web_.serve(FakeProxy::page(now() + 20h));
  destination_.serve(FakeProxy::page(now() + 20h));
  watch(/*heal=*/true);
  mesh_->set_trust_bundle(new_hash, now(), /*roll=*/true);  // in force from now
  pod("shop", "web-new", web_, {}, "ReplicaSet", kNode, old_hash);
  pass();
  EXPECT_EQ(mesh_->report()->stale_bundle, 1u);
  EXPECT_TRUE(server_->evictions().empty());
  pass();
  EXPECT_EQ(log_.with_event("mesh-injector-stale-bundle").size(), 1u) << trace_;

  mesh_->set_trust_bundle(old_hash + "c", now(), /*roll=*/false);
  clock_.step_wall(1h);
  pod("shop", "web-old", destination_, {}, "ReplicaSet", kNode, old_hash);
  pass();
  EXPECT_EQ(mesh_->report()->stale_bundle, 2u);
  EXPECT_TRUE(server_->evictions().empty());
  EXPECT_NE(log_.with_event("mesh-bundle-stale").back().message.find("counted, not rolled"),
            std::string::npos);
}

// However often passes come, at most evictions_per_minute in any minute.
TEST_F(Mesh, EvictionsAreBoundedPerMinute) {
  std::vector<std::unique_ptr<FakeProxy>> proxies;
  for (int i = 1; i <= 5; ++i) {
    proxies.push_back(std::make_unique<FakeProxy>());
    proxies.back()->serve(FakeProxy::page(now() - 72h));
    pod("shop", "web-" + std::to_string(i), *proxies.back());
  }
  MeshTiming t;
  t.evictions_per_minute = 3;
  watch(/*heal=*/true, t);
  pass();
  EXPECT_EQ(server_->evictions().size(), 3u);
  pass();  // at once again: the minute is not over
  EXPECT_EQ(server_->evictions().size(), 3u);
  EXPECT_EQ(mesh_->stats().evictions_paced, 4u) << "the other two, on each pass";
  clock_.advance(61s);
  pass();
  EXPECT_EQ(server_->evictions().size(), 5u);
}

}  // namespace
}  // namespace tetherd::test
