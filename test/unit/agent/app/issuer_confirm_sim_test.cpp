// IssuerRotation's confirmation of linkerd's reload on simulated time
// (test/support/sim_clock.h), against a k3s answered in process: what k3s
// asks of the polls is honoured, in no real time.

#include <optional>
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
// Retry-After: 1), the identity Deployment readable and restartable.
struct K3s {
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
        "1"};
  }
  if (r.verb == boost::beast::http::verb::patch) ++k3s->restarts;
  co_return kube::HttpResponse{
      200,
      R"({"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"linkerd-identity",)"
      R"("namespace":"linkerd"},"spec":{"template":{"metadata":{}}}})",
      ""};
}

TEST(IssuerConfirmSimTest, TheReloadsPollingWaitsAsLongAsK3sRetryAfterAsked) {
  boost::asio::io_context io{1};
  test::SimClock clock;
  test::RecordingLog log;
  K3s k3s;
  auto http = kube::HttpsClient::create_in_process(
      io.get_executor(), "https://127.0.0.1:6443",
      [&k3s](kube::HttpRequest r) { return answer(&k3s, std::move(r)); });
  kube::KubeClient cluster(*http);
  LinkerdConfig config;
  IssuerRotationTiming timing;
  timing.confirm_timeout = 1500ms;
  timing.confirm_poll = 10ms;
  IssuerRotation rotation(io, cluster, clock, log, config, timing);
  std::optional<ReloadOutcome> outcome;
  boost::asio::co_spawn(io, rotation.confirm_reload(clock.wall()),
                        [&](std::exception_ptr e, ReloadOutcome o) {
                          if (!e) outcome = o;
                        });
  clock.run_for(io, 5s);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(*outcome, ReloadOutcome::kRestarted);
  // At 0, 1 and 2 s: a second apart as asked, the last the one that finds
  // the 1.5 s window over.
  EXPECT_EQ(k3s.lists, 3) << "every 10 ms would have been 151";
  EXPECT_EQ(k3s.restarts, 1);
  rotation.stop();
  clock.run_for(io, 0s);
}

}  // namespace
}  // namespace tetherd
