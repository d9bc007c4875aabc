// IssuerRotation's confirmation of linkerd's reload on simulated time
// (test/support/sim_clock.h), against a k3s answered in process: what k3s
// asks of the polls is honoured, in no real time.

#include <optional>
#include <stdexcept>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>
#include <gtest/gtest.h>

#include "agent/app/issuer_rotation.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"
#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;

// k3s throttling the Events' list (API priority and fairness: 429 with
// `retry_after`), the identity Deployment readable and restartable.
struct K3s {
  std::string retry_after;
  int lists = 0;
  int restarts = 0;
};

awaitable<kube::ApiResult<kube::HttpResponse>> answer(K3s* k3s, kube::HttpRequest r) {
  if (r.target.find("/events") != std::string::npos) {
    ++k3s->lists;
    co_return kube::HttpResponse{
        429,
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests",)"
        R"("message":"too many requests, please try again later","code":429})",
        k3s->retry_after};
  }
  if (r.verb == boost::beast::http::verb::patch) ++k3s->restarts;
  co_return kube::HttpResponse{
      200,
      R"({"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"linkerd-identity",)"
      R"("namespace":"linkerd"},"spec":{"template":{"metadata":{}}}})",
      ""};
}

// Runs the confirmation of a write made now, with a window of `window`
// and a poll every 10 ms, against `k3s`; `took`: how long it ran, on the
// simulated clock.
ReloadOutcome confirm(K3s& k3s, Duration& took, Duration window = 1500ms) {
  boost::asio::io_context io{1};
  test::SimClock clock;
  test::RecordingLog log;
  auto http = kube::HttpsClient::create_in_process(
      io.get_executor(), "https://127.0.0.1:6443",
      [&k3s](kube::HttpRequest r) { return answer(&k3s, std::move(r)); });
  kube::KubeClient cluster(*http);
  IssuerRotationTiming timing;
  timing.confirm_timeout = window;
  timing.confirm_poll = 10ms;
  IssuerRotation rotation(io, cluster, clock, log, LinkerdConfig{}, timing);
  std::optional<ReloadOutcome> outcome;
  const MonoTime began = clock.monotonic();
  boost::asio::co_spawn(io, rotation.confirm_reload(clock.wall()),
                        [&](std::exception_ptr e, ReloadOutcome o) {
                          if (!e) outcome = o;
                          took = clock.monotonic() - began;
                        });
  clock.run_for(io, 1h);
  rotation.stop();
  clock.run_for(io, 0s);
  if (!outcome) throw std::runtime_error("the confirmation did not end");
  return *outcome;
}

TEST(IssuerConfirmSimTest, TheReloadsPollingWaitsAsLongAsK3sRetryAfterAsked) {
  K3s k3s{.retry_after = "1"};
  Duration took{};
  EXPECT_EQ(confirm(k3s, took), ReloadOutcome::kRestarted);
  // At 0 and 1 s, a second apart as asked; the next would be past the
  // window, which ends at 1.5 s.
  EXPECT_EQ(k3s.lists, 2) << "every 10 ms would have been 151";
  EXPECT_EQ(k3s.restarts, 1);
  EXPECT_EQ(took, 1500ms);
}

// Without a Retry-After the polls are as they were: every 10 ms for the
// window, the last one finding it over.
TEST(IssuerConfirmSimTest, WithoutARetryAfterItPollsAsOften) {
  K3s k3s;
  Duration took{};
  EXPECT_EQ(confirm(k3s, took), ReloadOutcome::kRestarted);
  EXPECT_EQ(k3s.lists, 151);
  EXPECT_EQ(took, 1500ms);
}

// A Retry-After that ends where the window does: the window ends it, with
// no list after it.
TEST(IssuerConfirmSimTest, ARetryAfterThatEndsWithTheWindowEndsIt) {
  K3s k3s{.retry_after = "1"};
  Duration took{};
  EXPECT_EQ(confirm(k3s, took, 2s), ReloadOutcome::kRestarted);
  EXPECT_EQ(k3s.lists, 2);
  EXPECT_EQ(took, 2s);
}

// A Retry-After longer than the window does not hold the confirmation past
// it: the Deployment is judged when the window ends.
TEST(IssuerConfirmSimTest, ARetryAfterPastTheWindowEndsItOnTime) {
  K3s k3s{.retry_after = "3600"};
  Duration took{};
  EXPECT_EQ(confirm(k3s, took), ReloadOutcome::kRestarted);
  EXPECT_EQ(k3s.lists, 1);
  EXPECT_EQ(k3s.restarts, 1);
  EXPECT_EQ(took, 1500ms);
}

}  // namespace
}  // namespace tetherd
