// IssuerRotation's confirmation of linkerd's reload on simulated time
// (test/support/sim_clock.h), against a k3s answered in process: what k3s
// asks of the polls is honoured, in no real time.

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>
#include <gtest/gtest.h>

#include "agent/app/issuer_rotation.h"
#include "agent/core/kube_time.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"
#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using boost::asio::awaitable;

// k3s throttling the Events' list (API priority and fairness: 429 with
// `retry_after`), the identity Deployment readable and restartable; or,
// with `said_at`, its Events' list answered, holding the identity
// controller's IssuerUpdated from `said_at` on the node's clock.
struct K3s {
  std::string retry_after;
  int requests = 0;
  int lists = 0;
  int restarts = 0;
  std::optional<std::string> said_at;
  const Clock* clock = nullptr;
};

awaitable<kube::ApiResult<kube::HttpResponse>> answer(K3s* k3s, kube::HttpRequest r) {
  ++k3s->requests;
  if (r.target.find("/events") != std::string::npos) {
    ++k3s->lists;
    if (k3s->said_at) {
      const bool said = k3s->clock->wall() >= *parse_kube_time(*k3s->said_at);
      co_return kube::HttpResponse{
          200,
          std::string(
              R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[)") +
              (said ? R"({"metadata":{"name":"linkerd-identity.1"},"reason":"IssuerUpdated",)"
                      R"("type":"Normal","lastTimestamp":")" +
                          *k3s->said_at + R"("})"
                    : "") +
              "]}",
          "", ""};
    }
    co_return kube::HttpResponse{
        429,
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"TooManyRequests",)"
        R"("message":"too many requests, please try again later","code":429})",
        k3s->retry_after, ""};
  }
  if (r.verb == boost::beast::http::verb::patch) ++k3s->restarts;
  co_return kube::HttpResponse{
      200,
      R"({"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"linkerd-identity",)"
      R"("namespace":"linkerd"},"spec":{"template":{"metadata":{}}}})",
      "", ""};
}

// Runs the confirmation of a write made now, with a window of `window`
// and a poll every 10 ms, against `k3s`; `took`: how long it ran, on the
// simulated clock.
// `then`: what happens to the node's clocks once the confirmation has run
// `after`.
ReloadOutcome confirm(K3s& k3s, Duration& took, Duration window = 1500ms, Duration after = {},
                      const std::function<void(test::SimClock&)>& then = {}) {
  boost::asio::io_context io{1};
  test::SimClock clock;
  k3s.clock = &clock;
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
  if (then) {
    clock.run_for(io, after);
    then(clock);
  }
  clock.run_for(io, 1h);
  rotation.stop();
  clock.run_for(io, 0s);
  if (!outcome) throw std::runtime_error("the confirmation did not end");
  return *outcome;
}

TEST(IssuerConfirmSimTest, TheReloadsPollingWaitsAsLongAsK3sRetryAfterAsked) {
  K3s k3s;
  k3s.retry_after = "1";
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
  K3s k3s;
  k3s.retry_after = "1";
  Duration took{};
  EXPECT_EQ(confirm(k3s, took, 2s), ReloadOutcome::kRestarted);
  EXPECT_EQ(k3s.lists, 2);
  EXPECT_EQ(took, 2s);
}

// A Retry-After longer than the window does not hold the confirmation past
// it: the Deployment is judged when the window ends.
TEST(IssuerConfirmSimTest, ARetryAfterPastTheWindowEndsItOnTime) {
  K3s k3s;
  k3s.retry_after = "3600";
  Duration took{};
  EXPECT_EQ(confirm(k3s, took), ReloadOutcome::kRestarted);
  EXPECT_EQ(k3s.lists, 1);
  EXPECT_EQ(k3s.restarts, 1);
  EXPECT_EQ(took, 1500ms);
}

// The node sleeps an hour a second into a window of 3 s: kubelet and the
// identity controller on it slept too, and say IssuerUpdated a second
// after the resume. The window is counted awake (CLOCK_MONOTONIC), so the
// controller is not restarted at the resume, as it was when the window was
// counted on CLOCK_BOOTTIME.
TEST(IssuerConfirmSimTest, ASleepDuringTheWindowGivesTheControllerNoLessTime) {
  const WallTime resumed = test::SimClock().wall() + 1s + 1h;
  K3s k3s;
  k3s.said_at = format_kube_time(resumed + 1s);
  Duration took{};
  EXPECT_EQ(confirm(k3s, took, 3s, 1s, [](test::SimClock& c) { c.suspend(1h); }),
            ReloadOutcome::kConfirmed);
  EXPECT_EQ(k3s.restarts, 0);
  EXPECT_GE(took, 1s) << "a second before the sleep, up to one after";
  EXPECT_LE(took, 2s);
}

// The node's wall clock, an hour ahead when the issuer was written, is
// put right a second into the window (NTP), and the identity controller
// stamps its IssuerUpdated on the clock put right: an hour before the
// write, on the clock the write was timed by. The write's time is taken
// back by the step: confirmed, not restarted (the node's year restarted it).
TEST(IssuerConfirmSimTest, AStepBackDuringTheWindowDoesNotHideTheControllersWord) {
  K3s k3s;
  k3s.said_at = format_kube_time(test::SimClock().wall() + 1s - 1h + 1s);
  Duration took{};
  EXPECT_EQ(confirm(k3s, took, 3s, 1s, [](test::SimClock& c) { c.step_wall(-1h); }),
            ReloadOutcome::kConfirmed);
  EXPECT_EQ(k3s.restarts, 0);
}

// What the cloud supplies, as the Tether's followers say it: a follower
// failing again with another message (a connection to the control plane
// that keeps dropping) runs no pass while it holds the object; the object
// changing, or its first failure while it holds none, does. (Each pass
// reads k3s: the node's year met 150 reads an hour through a run of
// resets.)
TEST(IssuerCloudSimTest, AFollowerFailingAgainRunsNoPass) {
  boost::asio::io_context io{1};
  test::SimClock clock;
  test::RecordingLog log;
  K3s k3s;
  auto http = kube::HttpsClient::create_in_process(
      io.get_executor(), "https://127.0.0.1:6443",
      [&k3s](kube::HttpRequest r) { return answer(&k3s, std::move(r)); });
  kube::KubeClient cluster(*http);
  IssuerRotation rotation(io, cluster, clock, log, LinkerdConfig{});
  const auto passes_after = [&](CloudLinkerd cloud) {
    const int before = k3s.requests;
    rotation.use_cloud(std::move(cloud));
    clock.run_for(io, 1s);
    return k3s.requests > before;
  };
  CloudLinkerd cloud;
  cloud.namespace_ = "tetherd-system";
  cloud.refs.issuer_secret = "linkerd-issuer-edge";
  cloud.issuer.read = true;
  cloud.issuer.object = boost::json::object{{"metadata", {{"resourceVersion", "1"}}}};
  EXPECT_TRUE(passes_after(cloud)) << "the cloud's issuer named";
  cloud.issuer.error = "https://cloud.example:6443: connection reset by peer";
  EXPECT_FALSE(passes_after(cloud)) << "failing, the object held";
  cloud.issuer.error = "https://cloud.example:6443: watch: connection closed mid-stream";
  EXPECT_FALSE(passes_after(cloud)) << "failing again, another message";
  cloud.issuer.error.clear();
  EXPECT_FALSE(passes_after(cloud)) << "well again, the same object";
  cloud.issuer.object = boost::json::object{{"metadata", {{"resourceVersion", "2"}}}};
  EXPECT_TRUE(passes_after(cloud)) << "the object changed";
  cloud.issuer.object.reset();
  cloud.issuer.read = false;
  cloud.refs.issuer_secret = "linkerd-issuer-next";
  EXPECT_TRUE(passes_after(cloud)) << "another Secret named";
  cloud.issuer.error = "https://cloud.example:6443: connection refused";
  EXPECT_TRUE(passes_after(cloud)) << "its first failure, none held: the pass says it";
  cloud.issuer.error = "https://cloud.example:6443: connection reset by peer";
  EXPECT_FALSE(passes_after(cloud)) << "failing again, none held";
  rotation.stop();
  clock.run_for(io, 0s);
}

}  // namespace
}  // namespace tetherd
