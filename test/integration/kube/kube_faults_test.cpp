// Every way the test API server can misbehave ends, for an ordinary request,
// in a clear error and a retry that works: never a crash, a hang or memory
// without bound.
#include "agent/kube/retry.h"
#include "test/integration/kube/kube_fixture.h"

namespace tetherd::test {
namespace {

using kube::ApiError;
using kube::ErrorKind;
using kube::KubeClient;
using std::chrono::milliseconds;
using std::chrono::seconds;

const std::string kNodeA = kube::object_path(kube::kEdgeNodes, kNamespace, "node-a");

struct Fault {
  const char* name;
  MisbehaviourSpec spec;
  ErrorKind kind;
  const char* message;
  std::optional<Duration> delay;  // what the retry waited, when the server said
};

// Test names and failure messages show the case by name, not its bytes.
void PrintTo(const Fault& c, std::ostream* os) {
  *os << c.name;
}

class KubeFaultTest : public KubeTest, public testing::WithParamInterface<Fault> {};

TEST_P(KubeFaultTest, EndsInAClearErrorAndARetryThatWorks) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  kube::ClientLimits limits;
  // Short deadlines keep the stalled and dripping cases quick; the server
  // drips far slower than this allows.
  limits.read_timeout = milliseconds(400);
  limits.max_body_bytes = 1 << 20;
  auto http = client(kubeconfig(), limits);
  KubeClient kube(*http);
  server_->misbehave(GetParam().spec);

  RecordedDelays delays;
  const auto retry = delays.context();
  std::vector<ApiError> errors;
  auto result = run(kube::with_retries<boost::json::object>(
      [&] { return kube.get(kNodeA); }, retry, 3,
      [&](const ApiError& e, Duration) { errors.push_back(e); }));

  ASSERT_TRUE(result) << describe(result.error());
  EXPECT_EQ(result->at("metadata").at("name").as_string(), "node-a");
  ASSERT_EQ(errors.size(), 1u) << "one failure, then the retry worked";
  EXPECT_EQ(errors[0].kind, GetParam().kind) << describe(errors[0]);
  EXPECT_NE(describe(errors[0]).find(GetParam().message), std::string::npos) << describe(errors[0]);
  ASSERT_EQ(delays.delays->size(), 1u);
  if (GetParam().delay) {
    EXPECT_EQ(delays.delays->front(), *GetParam().delay);
  } else {
    EXPECT_EQ(delays.delays->front(), milliseconds(500)) << "full jitter: 0.5 of 1 s";
  }
  server_->release_stalls();
}

INSTANTIATE_TEST_SUITE_P(
    Faults, KubeFaultTest,
    testing::Values(Fault{"status_500",
                          {.what = Misbehaviour::kStatus500},
                          ErrorKind::kHttp,
                          "HTTP 500 InternalError",
                          std::nullopt},
                    Fault{"status_503_retry_after",
                          {.what = Misbehaviour::kStatus503, .retry_after_seconds = 4},
                          ErrorKind::kHttp,
                          "HTTP 503",
                          seconds(5)},  // 4 s asked, then 0.5 of half of it
                    Fault{"status_429_retry_after",
                          {.what = Misbehaviour::kStatus429, .retry_after_seconds = 7},
                          ErrorKind::kHttp,
                          "HTTP 429 TooManyRequests",
                          milliseconds(8750)},  // 7 s asked, then 0.5 of 3.5 s
                    Fault{"dropped_mid_body",
                          {.what = Misbehaviour::kDropMidStream},
                          ErrorKind::kTransport,
                          "reading the response from",
                          std::nullopt},
                    Fault{"stalled",
                          {.what = Misbehaviour::kStall},
                          ErrorKind::kTimeout,
                          "no answer within 400ms",
                          std::nullopt},
                    Fault{"dripping",
                          {.what = Misbehaviour::kDrip, .drip_interval = milliseconds(20)},
                          ErrorKind::kTimeout,
                          "no answer within 400ms",
                          std::nullopt},
                    Fault{"oversized_body",
                          {.what = Misbehaviour::kOversizedBody, .oversize_bytes = 8 << 20},
                          ErrorKind::kTooLarge,
                          "body larger than 1048576 bytes",
                          std::nullopt},
                    Fault{"malformed_json",
                          {.what = Misbehaviour::kMalformedJson},
                          ErrorKind::kDecode,
                          "the body is not JSON",
                          std::nullopt},
                    Fault{"wrong_host_certificate",
                          {.what = Misbehaviour::kWrongHostCert},
                          ErrorKind::kTls,
                          "IP address mismatch",
                          std::nullopt},
                    Fault{"expired_certificate",
                          {.what = Misbehaviour::kExpiredCert},
                          ErrorKind::kTls,
                          "certificate has expired",
                          std::nullopt}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(KubeTest, ANotRetryableErrorIsNotRetried) {
  auto http = client(kubeconfig("tetherd:node-a", nullptr, {}));  // RBAC grants it nothing
  KubeClient kube(*http);
  RecordedDelays delays;
  auto r = run(kube::with_retries<boost::json::object>(
      [&] { return kube.get(kube::object_path(kube::kEdgeNodes, kNamespace, "node-b")); },
      delays.context(), 5));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 403u);
  EXPECT_TRUE(delays.delays->empty());
  EXPECT_EQ(server_->requests().size(), 1u);
}

TEST_F(KubeTest, RetriesStopAfterMaxAttemptsWithBackoffBetween) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  server_->misbehave({.what = Misbehaviour::kStatus500, .times = 10});
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  RecordedDelays delays;
  auto r = run(kube::with_retries<boost::json::object>([&] { return kube.get(kNodeA); },
                                                       delays.context(), 4));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 500u);
  // Three waits between four attempts, each half (the test's "random") of
  // a doubling window: 1 s, 2 s, 4 s.
  EXPECT_EQ(*delays.delays, (std::vector<Duration>{milliseconds(500), seconds(1), seconds(2)}));
  EXPECT_EQ(server_->requests().size(), 4u);
}

}  // namespace
}  // namespace tetherd::test
