// The k3s probe against the test API server standing in for the local k3s:
// its admin over mTLS (what /etc/rancher/k3s/k3s.yaml holds), /readyz and
// the node's Ready condition as the kubelet reports it.
#include "agent/adapters/system_clock.h"
#include "agent/app/probes.h"
#include "test/integration/kube/kube_fixture.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr char kNodes[] = "/api/v1/nodes";
constexpr auto kProbeDeadline = 5s;
constexpr auto kShortDeadline = 300ms;

json::object node(const std::string& name, std::optional<json::object> ready) {
  json::object n{{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata", {{"name", name}}},
                 {"spec", {{"podCIDR", "10.42.0.0/24"}}}};
  if (ready) {
    (*ready)["type"] = "Ready";
    json::array conditions{json::object{{"type", "MemoryPressure"},
                                        {"status", "False"},
                                        {"reason", "KubeletHasSufficientMemory"}},
                           std::move(*ready)};
    n["status"] = json::object{{"conditions", std::move(conditions)}};
  }
  return n;
}

class K3sProbeTest : public KubeTest {
 protected:
  K3sProbeTest() { http_ = client(admin_kubeconfig()); }

  ProbeResult probe(Duration deadline = kProbeDeadline, const std::string& name = "node-a") {
    return run(probe_k3s(*http_, name, deadline, clock_));
  }

  SystemClock clock_;
  std::unique_ptr<kube::HttpsClient> http_;
};

TEST_F(K3sProbeTest, ReadyNodeIsReady) {
  server_->create(kNodes,
                  node("node-a", json::object{{"status", "True"},
                                              {"reason", "KubeletReady"},
                                              {"message", "kubelet is posting ready status"}}));
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kTrue) << r.message;
  EXPECT_EQ(r.reason, "Ready");
  EXPECT_EQ(r.message, "node \"node-a\" is Ready (KubeletReady: kubelet is posting ready status)");
  EXPECT_GT(r.took, Duration::zero());
  const auto requests = server_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].target, "/readyz");
  EXPECT_EQ(requests[1].target, "/api/v1/nodes/node-a");
}

TEST_F(K3sProbeTest, NotReadyNodeCarriesTheKubeletsReason) {
  server_->create(kNodes, node("node-a", json::object{{"status", "False"},
                                                      {"reason", "KubeletNotReady"},
                                                      {"message",
                                                       "container runtime network not ready: "
                                                       "NetworkReady=false\ncni plugin not "
                                                       "initialized"}}));
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "NodeNotReady");
  EXPECT_EQ(r.message,
            "node \"node-a\" is not Ready: Ready=False (KubeletNotReady: container runtime network "
            "not ready: NetworkReady=false cni plugin not initialized)");
}

TEST_F(K3sProbeTest, NodeTheKubeletStoppedReportingIsNotReady) {
  server_->create(kNodes, node("node-a", json::object{{"status", "Unknown"},
                                                      {"reason", "NodeStatusUnknown"},
                                                      {"message",
                                                       "Kubelet stopped posting node "
                                                       "status."}}));
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "NodeNotReady");
  EXPECT_NE(r.message.find("Ready=Unknown (NodeStatusUnknown: Kubelet stopped"), std::string::npos)
      << r.message;
}

TEST_F(K3sProbeTest, NodeWithoutConditionsIsUnknown) {
  server_->create(kNodes, node("node-a", std::nullopt));
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kUnknown);
  EXPECT_EQ(r.reason, "NodeStatusUnknown");
}

TEST_F(K3sProbeTest, MissingNodeIsNotFound) {
  server_->create(kNodes, node("desktop", json::object{{"status", "True"}}));
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "NodeNotFound");
  EXPECT_NE(r.message.find("k3s has no node \"node-a\""), std::string::npos) << r.message;
  EXPECT_NE(r.message.find("kubectl get nodes"), std::string::npos);
}

TEST_F(K3sProbeTest, NameIsOneEscapedPathSegment) {
  const ProbeResult r = probe(kProbeDeadline, "../namespaces/x");
  EXPECT_EQ(r.reason, "NodeNotFound") << r.message;
  EXPECT_EQ(server_->requests().back().target, "/api/v1/nodes/..%2Fnamespaces%2Fx");
}

TEST_F(K3sProbeTest, UserWithoutNodeRightsIsForbidden) {
  server_->create(kNodes, node("node-a", json::object{{"status", "True"}}));
  http_ = client(kubeconfig());  // tetherd:node-a, the shipped Role: no nodes
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Forbidden");
  EXPECT_NE(r.message.find("User \"tetherd:node-a\" cannot get resource \"nodes\" in API group "
                           "\"\" at the cluster scope"),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("needs get on nodes"), std::string::npos);

  // A ClusterRole granting it is enough.
  server_->allow({.user = "tetherd:node-a", .verbs = {"get"}, .resource = "nodes"});
  EXPECT_EQ(probe().status, ConditionStatus::kTrue);
}

TEST_F(K3sProbeTest, ReadyzFailureIsApiServerNotReady) {
  server_->create(kNodes, node("node-a", json::object{{"status", "True"}}));
  server_->misbehave({.what = Misbehaviour::kStatus500, .path_contains = "/readyz"});
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "APIServerNotReady");
  EXPECT_NE(r.message.find("GET /readyz on " + server_->url() + ": HTTP 500: [+]ping ok"),
            std::string::npos)
      << r.message;
  EXPECT_NE(r.message.find("[-]etcd failed: reason withheld"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), 1u) << "the node is not asked of a server not ready";
}

TEST_F(K3sProbeTest, StalledServerTimesOutWithinTheDeadline) {
  server_->create(kNodes, node("node-a", json::object{{"status", "True"}}));
  server_->misbehave({.what = Misbehaviour::kStall, .path_contains = "/api/v1/nodes"});
  const ProbeResult r = probe(kShortDeadline);
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Timeout");
  EXPECT_EQ(r.message, "no answer from the k3s API " + server_->url() + " within 300ms");
  EXPECT_GE(r.took, kShortDeadline);
  EXPECT_LT(r.took, kProbeDeadline) << "the client's own timeouts are 10 s and more";

  // The stalled call was ended, not left holding the client: the next
  // probe gets a fresh connection and its answer.
  const ProbeResult again = probe();
  EXPECT_EQ(again.status, ConditionStatus::kTrue) << again.message;
  server_->release_stalls();
}

TEST_F(K3sProbeTest, DownServerIsUnreachable) {
  server_->go_down();
  const ProbeResult r = probe();
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Unreachable");
  EXPECT_NE(r.message.find(server_->url()), std::string::npos) << r.message;
}

// A client that answers without waiting (one in process; a real one that
// fails at once): the check runs inline in co_spawn and is over before the
// probe waits, and its result is taken at once. It used to be taken at
// the probe's deadline (the check's wake-up found no wait to end): with an
// hour's deadline here, that is a hang (the fixture's deadline fails it).
// Found by the node's simulated year, whose health rounds stood still.
TEST_F(K3sProbeTest, AnAnswerThatNeededNoWaitIsTakenAtOnce) {
  std::size_t asked = 0;
  auto at_once = kube::HttpsClient::create_in_process(
      io_.get_executor(), "https://127.0.0.1:6443",
      [&asked](kube::HttpRequest) -> boost::asio::awaitable<kube::ApiResult<kube::HttpResponse>> {
        ++asked;
        co_return kube::ApiError{kube::ErrorKind::kTransport, 0, "ConnectionRefused",
                                 "127.0.0.1:6443: connection refused", std::nullopt};
      });
  const ProbeResult r = run(probe_k3s(*at_once, "node-a", 1h, clock_));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Unreachable") << r.message;
  EXPECT_EQ(asked, 1u);
}

}  // namespace
}  // namespace tetherd::test
