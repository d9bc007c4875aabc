// The meshed pods on a node and the verdict on their proxies: decoding a
// pod list as kube-apiserver returns it, when a proxy is read again, and
// what MeshHealthy says.

#include "agent/core/mesh.h"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const WallTime kNow = WallTime(std::chrono::seconds(1'764'806'400));

// A pod as linkerd's injector leaves it: the label, the linkerd-proxy
// container with its admin port, a controller, running on edge-1.
json::object pod(const std::string& ns, const std::string& name, json::object labels = {}) {
  json::object o = json::parse(R"({
      "metadata": {"uid": "u", "annotations": {"linkerd.io/trust-root-sha256": "abc"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": true}]},
      "spec": {"nodeName": "edge-1", "containers": [{"name": "app"},
        {"name": "linkerd-proxy", "ports": [{"name": "linkerd-admin", "containerPort": 4191}]}]},
      "status": {"phase": "Running", "podIP": "10.42.0.7"}})")
                       .as_object();
  labels["linkerd.io/control-plane-ns"] = "linkerd";
  json::object& metadata = o["metadata"].as_object();
  metadata["namespace"] = ns;
  metadata["name"] = name;
  metadata["labels"] = std::move(labels);
  return o;
}

TEST(MeshedPods, RolesInHealingOrder) {
  const auto pods = meshed_pods(
      {pod("shop", "web"),
       pod("linkerd-multicluster", "controller-cloud",
           {{"linkerd.io/extension", "multicluster"}, {"component", "controller"}}),
       pod("linkerd-multicluster", "linkerd-gateway-1",
           {{"linkerd.io/extension", "multicluster"}, {"app", "linkerd-gateway"}}),
       pod("linkerd", "linkerd-destination-1",
           {{"linkerd.io/control-plane-component", "destination"}}),
       pod("linkerd", "linkerd-identity-1", {{"linkerd.io/control-plane-component", "identity"}}),
       pod("linkerd", "linkerd-proxy-injector-1",
           {{"linkerd.io/control-plane-component", "proxy-injector"}}),
       pod("linkerd-viz", "tap", {{"linkerd.io/control-plane-component", "tap"}})},
      "edge-1", 100);
  std::vector<std::string> order;
  for (const MeshedPod& p : pods.pods)
    order.push_back(std::string(to_string(p.role)) + " " + p.key());
  EXPECT_EQ(order, (std::vector<std::string>{
                       "identity linkerd/linkerd-identity-1",
                       "destination linkerd/linkerd-destination-1",
                       "proxy-injector linkerd/linkerd-proxy-injector-1",
                       "control-plane linkerd-viz/tap",
                       "multicluster-gateway linkerd-multicluster/linkerd-gateway-1",
                       "service-mirror linkerd-multicluster/controller-cloud",
                       "workload shop/web",
                   }));
  EXPECT_EQ(pods.pods.back().controller, "ReplicaSet/rs");
  EXPECT_EQ(pods.pods.back().trust_root_sha256, "abc");
  EXPECT_EQ(pods.pods.back().admin_port, 4191);
  EXPECT_TRUE(pods.pods.back().running);
}

// What a server's selectors should have left out is left out here too.
TEST(MeshedPods, OnlyMeshedPodsOnThisNode) {
  json::object elsewhere = pod("shop", "elsewhere");
  elsewhere["spec"].as_object()["nodeName"] = "edge-2";
  json::object plain = pod("shop", "plain");
  plain["metadata"].as_object()["labels"].as_object().erase("linkerd.io/control-plane-ns");
  json::object no_proxy = pod("shop", "no-proxy");
  no_proxy["spec"].as_object()["containers"].as_array().pop_back();
  json::object host = pod("shop", "host");
  host["spec"].as_object()["hostNetwork"] = true;
  json::object no_ip = pod("shop", "no-ip");
  no_ip["status"].as_object().erase("podIP");
  json::object native = pod("shop", "native");  // the proxy as a native sidecar, another port
  json::array containers = native["spec"].as_object()["containers"].as_array();
  native["spec"].as_object()["initContainers"] = json::array{containers.back()};
  native["spec"].as_object()["initContainers"].as_array()[0].as_object()["ports"] =
      json::array{json::object{{"name", "linkerd-admin"}, {"containerPort", 14191}}};
  containers.pop_back();
  native["spec"].as_object()["containers"] = containers;
  json::object bare = pod("shop", "bare");
  bare["metadata"].as_object().erase("ownerReferences");
  json::object leaving = pod("shop", "leaving");
  leaving["metadata"].as_object()["deletionTimestamp"] = "2026-12-03T00:00:00Z";

  const auto pods =
      meshed_pods({elsewhere, plain, no_proxy, host, no_ip, native, bare, leaving}, "edge-1", 100);
  ASSERT_EQ(pods.pods.size(), 3u);
  EXPECT_EQ(pods.pods[0].key(), "shop/bare");
  EXPECT_EQ(pods.pods[0].controller, "");
  EXPECT_EQ(pods.pods[1].key(), "shop/leaving");
  EXPECT_FALSE(pods.pods[1].running);
  EXPECT_EQ(pods.pods[2].key(), "shop/native");
  EXPECT_EQ(pods.pods[2].admin_port, 14191);
}

TEST(MeshedPods, TheCapKeepsTheFirstInHealingOrder) {
  const auto pods =
      meshed_pods({pod("a", "w1"), pod("a", "w2"),
                   pod("linkerd", "id", {{"linkerd.io/control-plane-component", "identity"}})},
                  "edge-1", 2);
  ASSERT_EQ(pods.pods.size(), 2u);
  EXPECT_EQ(pods.pods[0].key(), "linkerd/id");
  EXPECT_EQ(pods.left_out, 1u);
}

ProxyReading reading(WallTime at, std::optional<WallTime> expires, std::uint64_t ok = 0,
                     std::uint64_t errors = 0) {
  ProxyIdentity id;
  id.expires = expires;
  id.refreshes_ok = ok;
  id.refresh_errors = errors;
  return ProxyReading{at, id, {}};
}

TEST(ProxyDue, SteadyStateReadsNothing) {
  const auto read = reading(kNow, kNow + 24h);
  EXPECT_TRUE(proxy_due(std::nullopt, kNow, std::nullopt, 1h)) << "never read";
  EXPECT_FALSE(proxy_due(read, kNow + 10min, std::nullopt, 1h));
  EXPECT_TRUE(proxy_due(read, kNow + 1h, std::nullopt, 1h)) << "the backstop";
  EXPECT_TRUE(proxy_due(read, kNow + 10min, kNow + 5min, 1h)) << "resumed since";
  EXPECT_FALSE(proxy_due(read, kNow + 10min, kNow - 5min, 1h)) << "resumed before it was read";
  EXPECT_TRUE(proxy_due(read, kNow - 1s, std::nullopt, 1h)) << "the clock stepped back";
  const auto short_lived = reading(kNow, kNow + 50min);
  EXPECT_FALSE(proxy_due(short_lived, kNow + 39min, std::nullopt, 1h));
  EXPECT_TRUE(proxy_due(short_lived, kNow + 40min, std::nullopt, 1h)) << "should have refreshed";
  EXPECT_TRUE(proxy_due(ProxyReading{kNow, std::nullopt, "refused"}, kNow + 1s, std::nullopt, 1h))
      << "unreadable: every pass";
  // A far expiry (a century) does not overflow the 80% point.
  EXPECT_FALSE(proxy_due(reading(kNow, kNow + 100 * 8760h), kNow + 10min, std::nullopt, 1h));
}

TEST(JudgeProxy, States) {
  MeshedPod p;
  p.running = true;
  EXPECT_EQ(judge_proxy(p, reading(kNow, kNow + 2h), std::nullopt, kNow).state, ProxyState::kValid);
  const auto expired = judge_proxy(p, reading(kNow, kNow - 72h), std::nullopt, kNow);
  EXPECT_EQ(expired.state, ProxyState::kExpired);
  EXPECT_EQ(expired.detail, "expired 72h ago");
  EXPECT_EQ(judge_proxy(p, ProxyReading{kNow, std::nullopt, "HTTP 403"}, std::nullopt, kNow).state,
            ProxyState::kUnreadable);
  // A proxy still waiting for its first certificate (the gauge at 0) is
  // not expired: it is never evicted for it.
  const auto starting = judge_proxy(p, reading(kNow, std::nullopt), std::nullopt, kNow);
  EXPECT_EQ(starting.state, ProxyState::kUnreadable);
  EXPECT_NE(starting.detail.find("no identity certificate yet"), std::string::npos);
  ProxyReading lying = reading(kNow, kNow + 2h);
  lying.problem = "given twice";
  EXPECT_EQ(judge_proxy(p, lying, std::nullopt, kNow).state, ProxyState::kUnreadable)
      << "a page that says nonsense is not believed";
  // Errors grew and successes did not: failing; errors that came with a
  // success in between: a passing hiccup.
  EXPECT_EQ(
      judge_proxy(p, reading(kNow, kNow + 2h, 5, 3), reading(kNow - 1h, kNow + 2h, 5, 1), kNow)
          .state,
      ProxyState::kRefreshFailing);
  EXPECT_EQ(
      judge_proxy(p, reading(kNow, kNow + 2h, 6, 3), reading(kNow - 1h, kNow + 2h, 5, 1), kNow)
          .state,
      ProxyState::kValid);
  p.running = false;
  EXPECT_EQ(judge_proxy(p, reading(kNow, kNow - 72h), std::nullopt, kNow).state,
            ProxyState::kNotRunning);
}

TEST(ReportMesh, WhatMeshHealthySays) {
  MeshedPods pods;
  for (const char* name : {"a", "b", "c", "d", "e", "f"}) {
    MeshedPod p;
    p.namespace_ = "shop";
    p.name = name;
    p.controller = std::string(name) == "f" ? "" : "ReplicaSet/x";
    pods.pods.push_back(p);
  }
  std::map<std::string, ProxyVerdict> verdicts;
  for (const char* name : {"a", "b", "c", "d", "e", "f"})
    verdicts["shop/" + std::string(name)] = {ProxyState::kValid, ""};
  auto r = report_mesh(pods, verdicts);
  EXPECT_EQ(r.status, ConditionStatus::kTrue);
  EXPECT_EQ(r.reason, "ProxiesValid");
  EXPECT_EQ(r.message, "6 of 6 meshed proxies on this node hold a valid certificate");

  verdicts["shop/b"] = {ProxyState::kUnreadable, ""};
  for (const char* name : {"c", "d", "e", "f"})
    verdicts["shop/" + std::string(name)] = {ProxyState::kExpired, ""};
  r = report_mesh(pods, verdicts);
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "ProxiesExpired");
  EXPECT_EQ(r.message,
            "4 of 6 meshed proxies on this node hold an expired certificate and cannot renew it: "
            "shop/c, shop/d, shop/e and 1 more; 1 could not be read (shop/b)");
  EXPECT_EQ(r.expired_pods, (std::vector<std::string>{"shop/c", "shop/d", "shop/e", "shop/f"}));
  EXPECT_EQ(r.bare_expired, (std::vector<std::string>{"shop/f"}));

  for (auto& [key, v] : verdicts)
    v = {ProxyState::kUnreadable, ""};
  EXPECT_EQ(report_mesh(pods, verdicts).status, ConditionStatus::kUnknown);
  EXPECT_EQ(report_mesh(MeshedPods{}, {}).reason, "NoMeshedPods");
}

TEST(StaleBundle, TheSavedFirstSightingIsTakenOnlyWhenItIsSoundAndNotInTheFuture) {
  const WallTime now{std::chrono::seconds(1'800'000'000)};
  const WallTime before = now - 48h;
  const std::string text = bundle_since_text("abc", before);
  EXPECT_EQ(text, "abc 1799827200");
  EXPECT_EQ(saved_bundle_since(text, "abc", now), before);
  EXPECT_EQ(saved_bundle_since(std::nullopt, "abc", now), std::nullopt) << "none saved";
  EXPECT_EQ(saved_bundle_since(text, "def", now), std::nullopt) << "another bundle's";
  for (const char* bad : {"abc", "abc ", "abc 12x", "abc -5", "abc 1 2", " 1799827200"})
    EXPECT_EQ(saved_bundle_since(std::string_view(bad), "abc", now), std::nullopt) << bad;
  // Saved while the clock was ahead, or the clock was set back since: pods
  // made before the bundle changed would count as made after it.
  EXPECT_EQ(saved_bundle_since(bundle_since_text("abc", now + 1h), "abc", now), std::nullopt);
  EXPECT_EQ(saved_bundle_since(bundle_since_text("abc", now), "abc", now), now);
}

TEST(StaleBundle, OldPodsAreRolledNewOnesOnlyCounted) {
  const WallTime since = *parse_kube_time("2026-12-03T10:00:00Z");
  auto made = [](json::object p, const char* hash, const char* created) {
    auto& metadata = p["metadata"].as_object();
    if (hash)
      metadata["annotations"].as_object()["linkerd.io/trust-root-sha256"] = hash;
    else
      metadata.erase("annotations");
    if (created) metadata["creationTimestamp"] = created;
    return p;
  };
  const MeshedPods pods =
      meshed_pods({made(pod("shop", "old"), "old", "2026-12-03T09:59:59Z"),
                   made(pod("shop", "same-second"), "old", "2026-12-03T10:00:00Z"),
                   made(pod("shop", "current"), "new", "2026-12-01T00:00:00Z"),
                   made(pod("shop", "unannotated"), nullptr, "2026-12-01T00:00:00Z"),
                   made(pod("shop", "no-time"), "old", nullptr)},
                  "edge-1", 10);
  const StaleBundle s = stale_bundle(pods, "new", since + std::chrono::milliseconds(300));
  EXPECT_EQ(s.stale, (std::vector<std::string>{"shop/no-time", "shop/old", "shop/same-second"}));
  std::vector<std::string> rolled;
  for (const MeshedPod* p : s.to_roll)
    rolled.push_back(p->key());
  EXPECT_EQ(rolled, (std::vector<std::string>{"shop/no-time", "shop/old"}));
  EXPECT_EQ(s.stamped_after, (std::vector<std::string>{"shop/same-second"}));
  // The bundle in force unknown: nothing is stale.
  EXPECT_TRUE(stale_bundle(pods, "", since).stale.empty());
}

}  // namespace
}  // namespace tetherd
