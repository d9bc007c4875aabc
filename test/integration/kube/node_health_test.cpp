// NodeHealth's rounds against real parts: the test API server standing in
// for the local k3s (mTLS, the node's Ready condition), a real HTTP server
// and a real listening port standing in for linkerd's gateway; the firewall
// through FirewallKeeper on a fake backend. Time is the FakeClock's.

#include "agent/app/node_health.h"

#include <boost/json/serialize.hpp>

#include "agent/app/local_cluster.h"
#include "agent/core/kube_time.h"
#include "test/integration/kube/kube_fixture.h"
#include "test/support/fake_backend.h"
#include "test/support/fake_clock.h"
#include "test/support/fake_gateway.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;
using S = ConditionStatus;
namespace ct = condition_type;

constexpr char kNodes[] = "/api/v1/nodes";

json::object node_ready(const std::string& status, const std::string& reason) {
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Node"},
      {"metadata", {{"name", "node-a"}}},
      {"status",
       {{"conditions",
         json::array{json::object{
             {"type", "Ready"}, {"status", status}, {"reason", reason}, {"message", reason}}}}}}};
}

class NodeHealthTest : public KubeTest {
 protected:
  NodeHealthTest() {
    k3s_ = client(admin_kubeconfig());
    config_.node_name = "node-a";
    config_.health.threshold = 2;
    config_.state.dir = tmp_.path();
    config_.firewall.backend = FirewallBackend::kNone;
    EXPECT_TRUE(keeper_.start(config_.firewall).has_value());
  }

  std::unique_ptr<NodeHealth> make(bool gateway) {
    if (gateway) {
      config_.linkerd.emplace();
      config_.health.linkerd_gateway = gateway_.url();
    }
    return std::make_unique<NodeHealth>(io_, clock_, log_, config_, keeper_, conditions_, nullptr,
                                        k3s_, ProbeDeadlines{5s, 2s}, gateway_.gateway_port());
  }

  void round(NodeHealth& h) {
    run(round_done(h));
    clock_.advance(60s);
  }
  boost::asio::awaitable<bool> round_done(NodeHealth& h) {
    co_await h.round();
    co_return true;
  }
  const Condition& condition(const NodeHealth& h, std::string_view type) {
    const Condition* c = h.conditions().find(type);
    if (c == nullptr) throw std::runtime_error("no condition " + std::string(type));
    return *c;
  }

  TempDir tmp_;
  FakeClock clock_;
  RecordingLog log_;
  NodeConditions conditions_{clock_, 1};  // NodeHealth sets health.threshold
  Config config_;
  FakeGateway gateway_;
  std::shared_ptr<kube::HttpsClient> k3s_;
  FirewallKeeper keeper_{log_,
                         StateDir(tmp_.path()),
                         [](const FirewallConfig&) { return std::make_unique<FakeBackend>(); },
                         {},
                         io_.get_executor()};
};

// tetherd starts before k3s, which writes its kubeconfig as it starts: the
// LocalCluster makes the k3s client (and linkerd's issuer rotation) once the
// file can be used, and says what is missing once, not on every try.
TEST_F(NodeHealthTest, AK3sKubeconfigWrittenAfterStartIsTakenUp) {
  server_->create(kNodes, node_ready("True", "KubeletReady"));
  config_.cluster = ClusterConfig{tmp_.file("k3s.yaml")};
  config_.linkerd.emplace();
  LocalCluster local(io_, clock_, log_, config_);
  EXPECT_FALSE(local.attach());
  EXPECT_FALSE(local.attach());
  EXPECT_FALSE(local.complete());
  EXPECT_EQ(local.k3s(), nullptr);
  EXPECT_EQ(local.issuer(), nullptr);
  EXPECT_NE(local.k3s_problem().find(tmp_.file("k3s.yaml")), std::string::npos)
      << local.k3s_problem();
  EXPECT_EQ(log_.with_event("cluster-config-invalid").size(), 1u) << "once, not per try";
  EXPECT_EQ(log_.with_event("linkerd-config-invalid").size(), 1u);

  auto health =
      std::make_unique<NodeHealth>(io_, clock_, log_, config_, keeper_, conditions_, nullptr,
                                   nullptr, ProbeDeadlines{5s, 2s}, gateway_.gateway_port());
  round(*health);
  EXPECT_EQ(health->conditions().find(ct::kK3sReady), nullptr) << "nothing to probe yet";

  write_k3s_yaml(tmp_);
  EXPECT_TRUE(local.attach());
  EXPECT_TRUE(local.complete());
  ASSERT_NE(local.k3s(), nullptr);
  EXPECT_NE(local.issuer(), nullptr);
  EXPECT_EQ(local.k3s_problem(), "");
  EXPECT_EQ(log_.with_event("cluster-config-loaded").size(), 1u);
  EXPECT_FALSE(local.attach()) << "nothing new to make";

  health->set_k3s(local.k3s());
  round(*health);
  round(*health);  // threshold 2
  EXPECT_EQ(condition(*health, ct::kK3sReady).status, S::kTrue)
      << condition(*health, ct::kK3sReady).message;
}

TEST_F(NodeHealthTest, ARoundReportsEveryProbeAndTheNodesVitals) {
  server_->create(kNodes, node_ready("True", "KubeletReady"));
  auto health = make(/*gateway=*/true);
  round(*health);
  EXPECT_EQ(condition(*health, ct::kK3sReady).status, S::kTrue);
  EXPECT_EQ(condition(*health, ct::kLinkerdGatewayReady).status, S::kTrue)
      << condition(*health, ct::kLinkerdGatewayReady).message;
  EXPECT_EQ(condition(*health, ct::kFirewallInSync).reason, "StaticAllowlist");
  EXPECT_NE(health->conditions().find(ct::kClockSynchronized), nullptr);

  const json::object doc = health->status_document();
  EXPECT_EQ(doc.at("nodeName"), "node-a");
  EXPECT_EQ(doc.at("time").as_string(),
            format_kube_time(clock_.wall()));  // tetherctl draws ages from it
  const auto& node = doc.at("status").at("node").as_object();
  EXPECT_GT(node.at("memoryTotalBytes").to_number<std::uint64_t>(), 0u);
  EXPECT_GT(node.at("uptimeSeconds").as_int64(), 0);
  // The state dir exists; /var/lib/rancher may not on a test machine.
  bool state_disk = false;
  for (const auto& d : node.at("disk").as_array())
    state_disk = state_disk || d.at("path").as_string() == tmp_.path();
  EXPECT_TRUE(state_disk) << json::serialize(doc);
  EXPECT_EQ(node.count("lastResumeTime"), 0u);

  // One journal line per transition, Ready's included, with its fields.
  const auto lines = log_.with_event("condition-changed");
  ASSERT_EQ(lines.size(), health->stats().transitions);
  bool k3s_line = false;
  for (const auto& l : lines) {
    if (l.fields.at("CONDITION") != "K3sReady") continue;
    k3s_line = true;
    EXPECT_EQ(l.fields.at("STATUS"), "True");
    EXPECT_EQ(l.fields.at("PREVIOUS_STATUS"), "none");
    EXPECT_EQ(l.fields.at("REASON"), "Ready");
    EXPECT_EQ(l.fields.at("NODE"), "node-a");
  }
  EXPECT_TRUE(k3s_line);

  const std::string metrics = health->metrics();
  EXPECT_NE(metrics.find("tetherd_condition{type=\"K3sReady\",status=\"true\"} 1\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("tetherd_probe_duration_seconds{probe=\"k3s\"}"), std::string::npos);
  EXPECT_NE(metrics.find("tetherd_health_rounds_total 1\n"), std::string::npos);
}

TEST_F(NodeHealthTest, AFailureMustHoldForTheThresholdBeforeTheConditionFlips) {
  server_->create(kNodes, node_ready("True", "KubeletReady"));
  auto health = make(/*gateway=*/true);
  round(*health);
  const WallTime ready_since = condition(*health, ct::kK3sReady).last_transition;
  const std::size_t lines = log_.with_event("condition-changed").size();
  // Ready may be False already: this machine's clock may not be synchronized.
  const bool was_ready = condition(*health, ct::kReady).status == S::kTrue;

  // The kubelet says NotReady, and the gateway answers 503: one round is a
  // blip, two in a row (threshold 2) a transition.
  server_->patch_status(std::string(kNodes) + "/node-a",
                        node_ready("False", "KubeletNotReady").at("status").as_object());
  gateway_.answer(503);
  round(*health);
  EXPECT_EQ(condition(*health, ct::kK3sReady).status, S::kTrue);
  EXPECT_EQ(condition(*health, ct::kLinkerdGatewayReady).status, S::kTrue);
  EXPECT_EQ(log_.with_event("condition-changed").size(), lines);

  round(*health);
  const Condition& k3s = condition(*health, ct::kK3sReady);
  EXPECT_EQ(k3s.status, S::kFalse);
  EXPECT_EQ(k3s.reason, "NodeNotReady");
  EXPECT_GT(k3s.last_transition, ready_since);
  EXPECT_EQ(condition(*health, ct::kLinkerdGatewayReady).status, S::kFalse);
  EXPECT_EQ(condition(*health, ct::kReady).status, S::kFalse);
  // K3sReady, LinkerdGatewayReady (and Ready if it changed): no more.
  EXPECT_EQ(log_.with_event("condition-changed").size(), lines + (was_ready ? 3 : 2));

  // Back to normal: damped the same way.
  server_->patch_status(std::string(kNodes) + "/node-a",
                        node_ready("True", "KubeletReady").at("status").as_object());
  gateway_.answer(200);
  round(*health);
  EXPECT_EQ(condition(*health, ct::kK3sReady).status, S::kFalse);
  round(*health);
  EXPECT_EQ(condition(*health, ct::kK3sReady).status, S::kTrue);
}

TEST_F(NodeHealthTest, AStalledK3sIsATimeoutWithinTheProbesDeadline) {
  server_->create(kNodes, node_ready("True", "KubeletReady"));
  config_.health.threshold = 1;
  auto health = std::make_unique<NodeHealth>(io_, clock_, log_, config_, keeper_, conditions_,
                                             nullptr, k3s_, ProbeDeadlines{300ms, 2s});
  server_->misbehave({.what = Misbehaviour::kStall, .path_contains = "/readyz"});
  round(*health);
  server_->release_stalls();
  const Condition& k3s = condition(*health, ct::kK3sReady);
  EXPECT_EQ(k3s.status, S::kFalse);
  EXPECT_EQ(k3s.reason, "Timeout");
}

TEST_F(NodeHealthTest, AResumeIsReportedAndReportsAreFacts) {
  auto health = make(/*gateway=*/false);
  health->resumed(clock_.wall());
  round(*health);
  const auto node = health->status_document().at("status").at("node").as_object();
  EXPECT_EQ(node.count("lastResumeTime"), 1u);
  EXPECT_EQ(health->stats().resumes, 1u);
  EXPECT_EQ(health->conditions().find(ct::kLinkerdGatewayReady), nullptr);  // not configured

  // A fact (the issuer rotation's verdict) is taken at once, threshold or not.
  conditions_.report(ct::kCertificatesValid, S::kFalse, "IssuerExpired", "expired");
  EXPECT_EQ(condition(*health, ct::kCertificatesValid).status, S::kFalse);
  health->certificates({{"linkerd-identity-issuer", "issuer", "identity.linkerd.cluster.local",
                         clock_.wall() + 24h}},
                       /*rotated=*/true);
  const auto doc = health->status_document();
  EXPECT_EQ(doc.at("status").at("certificates").as_array().size(), 1u);
  EXPECT_NE(health->metrics().find("tetherd_certificate_expiry_timestamp_seconds{name=\"linkerd-"
                                   "identity-issuer\",role=\"issuer\"}"),
            std::string::npos);
  EXPECT_NE(health->metrics().find("tetherd_issuer_rotations_total 1\n"), std::string::npos);
}

}  // namespace
}  // namespace tetherd::test
