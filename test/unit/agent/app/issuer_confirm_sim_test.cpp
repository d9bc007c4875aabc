// IssuerRotation's confirmation of linkerd's reload on simulated time
// (test/support/sim_clock.h), against a k3s answered in process: what k3s
// asks of the polls is honoured, in no real time.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/app/issuer_rotation.h"
#include "agent/core/kube_time.h"
#include "agent/core/linkerd_objects.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"
#include "test/support/linkerd_pki.h"
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
  // When the Event appears (on CLOCK_MONOTONIC); none: once the node's
  // clock reads `said_at`.
  std::optional<MonoTime> said_from;
};

awaitable<kube::ApiResult<kube::HttpResponse>> answer(K3s* k3s, kube::HttpRequest r) {
  ++k3s->requests;
  if (r.target.find("/events") != std::string::npos) {
    ++k3s->lists;
    if (k3s->said_at) {
      const bool said = k3s->said_from ? k3s->clock->monotonic() >= *k3s->said_from
                                       : k3s->clock->wall() >= *parse_kube_time(*k3s->said_at);
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
// says IssuerUpdated a second later, stamped on the clock put right: an
// hour before the write, on the clock the write was timed by. An Event
// that was not there at the window's first list, stamped since the
// write's time moved back by the step, is taken: confirmed, not restarted
// (the node's year restarted it).
TEST(IssuerConfirmSimTest, AStepBackDuringTheWindowDoesNotHideTheControllersWord) {
  const test::SimClock start;
  K3s k3s;
  k3s.said_at = format_kube_time(start.wall() + 1s - 1h + 1s);
  k3s.said_from = start.monotonic() + 2s;
  Duration took{};
  EXPECT_EQ(confirm(k3s, took, 3s, 1s, [](test::SimClock& c) { c.step_wall(-1h); }),
            ReloadOutcome::kConfirmed);
  EXPECT_EQ(k3s.restarts, 0);
  EXPECT_GE(took, 2s);
}

// ... but an older IssuerUpdated (an earlier write's, half an hour before
// this one, there from the window's first list) is not taken for it,
// though the step puts it after the write's time moved back: the
// controller, deaf this time, is restarted.
TEST(IssuerConfirmSimTest, AStepBackDoesNotTakeAnOlderEventForTheWrite) {
  const test::SimClock start;
  K3s k3s;
  k3s.said_at = format_kube_time(start.wall() - 30min);
  k3s.said_from = start.monotonic();  // there all along
  Duration took{};
  EXPECT_EQ(confirm(k3s, took, 3s, 1s, [](test::SimClock& c) { c.step_wall(-1h); }),
            ReloadOutcome::kRestarted);
  EXPECT_EQ(k3s.restarts, 1);
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

// k3s holding linkerd's issuer Secret (resourceVersions, 409 on a stale
// one), its trust roots, and a deaf identity controller (no Events). A
// PUT numbered in `lost` loses its answer: 'L' taken at once, 'H' held
// and taken late (if still based on the Secret's version then), when a
// PUT numbered 'C' comes (before it is judged).
struct SecretK3s {
  boost::json::object secret;
  long version = 1;
  std::string roots;
  int puts = 0;
  int restarts = 0;
  std::map<int, char> lost;
  std::optional<boost::json::object> held;
  void take(boost::json::object body) {
    body["metadata"].as_object()["resourceVersion"] = std::to_string(++version);
    secret = std::move(body);
  }
  void land() {
    if (held && held->at("metadata").at("resourceVersion").as_string() == std::to_string(version))
      take(*held);
    held.reset();
  }
};

awaitable<kube::ApiResult<kube::HttpResponse>> answer_secret(SecretK3s* k, kube::HttpRequest r) {
  namespace json = boost::json;
  const std::string path = r.target.substr(0, r.target.find('?'));
  if (path.find("/configmaps/") != std::string::npos)
    co_return kube::HttpResponse{
        200,
        json::serialize(json::object{{"apiVersion", "v1"},
                                     {"kind", "ConfigMap"},
                                     {"metadata",
                                      {{"name", kTrustRootsConfigMapName},
                                       {"namespace", "linkerd"},
                                       {"resourceVersion", "1"}}},
                                     {"data", {{kTrustRootsKey, k->roots}}}}),
        "", ""};
  if (path.find("/events") != std::string::npos)
    co_return kube::HttpResponse{
        200,
        R"({"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]})",
        "", ""};
  if (path.find("/secrets/") == std::string::npos) {
    k->restarts += r.verb == boost::beast::http::verb::patch;
    co_return kube::HttpResponse{
        200,
        R"({"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"linkerd-identity",)"
        R"("namespace":"linkerd"},"spec":{"template":{"metadata":{}}}})",
        "", ""};
  }
  if (r.verb == boost::beast::http::verb::get)
    co_return kube::HttpResponse{200, json::serialize(k->secret), "", ""};
  const int n = ++k->puts;
  json::object body = json::parse(r.body).as_object();
  if (k->lost.contains(n) && k->lost[n] == 'C') k->land();
  if (body["metadata"].as_object()["resourceVersion"].as_string() != std::to_string(k->version))
    co_return kube::HttpResponse{
        409,
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Conflict","code":409})",
        "", ""};
  const char how = k->lost.contains(n) ? k->lost[n] : ' ';
  if (how == 'H') {
    k->held = std::move(body);
    co_return kube::ApiError{kube::ErrorKind::kTimeout, 0, "Timeout", "no answer", std::nullopt};
  }
  k->take(std::move(body));
  if (how == 'L')
    co_return kube::ApiError{kube::ErrorKind::kTransport, 0, "Disconnected", "closed mid-body",
                             std::nullopt};
  co_return kube::HttpResponse{200, json::serialize(k->secret), "", ""};
}

boost::json::object issuer_secret(const test::PemPair& issuer, const test::PemPair& anchor) {
  return issuer_secret_update(
      {{"apiVersion", "v1"},
       {"kind", "Secret"},
       {"type", "kubernetes.io/tls"},
       {"metadata", {{"name", kIssuerSecretName}, {"namespace", "linkerd"}}}},
      IssuerLayout::kTls, issuer.cert_pem, issuer.key_pem, anchor.cert_pem);
}

// A rotation taking the cloud's issuers into SecretK3s, on simulated time:
// a week's issuer in force, the controller's window 2 s, polled each second.
struct CloudRotation {
  explicit CloudRotation(std::map<int, char> lost) {
    k3s.roots = anchor.cert_pem;
    k3s.secret =
        issuer_secret(test::make_linkerd_issuer(anchor, {now - 200 * 24h, now + 1440h}), anchor);
    k3s.secret["metadata"].as_object()["resourceVersion"] = "1";
    k3s.lost = std::move(lost);
  }
  ~CloudRotation() {
    rotation.stop();
    clock.run_for(io, 0s);
  }
  CloudLinkerd cloud(const test::PemPair& issuer) const {
    CloudLinkerd c;
    c.namespace_ = "tetherd-system";
    c.refs.issuer_secret = "linkerd-issuer-edge";
    c.issuer.object = issuer_secret(issuer, anchor);
    c.issuer.read = true;
    return c;
  }
  static IssuerRotationTiming timing() {
    IssuerRotationTiming t;
    t.confirm_timeout = 2s;
    t.confirm_poll = 1s;
    t.random = [] { return 0.5; };
    return t;
  }
  static LinkerdConfig config() {
    LinkerdConfig c;
    c.namespace_ = "linkerd";
    return c;
  }

  boost::asio::io_context io{1};
  test::SimClock clock;
  test::RecordingLog log;
  const WallTime now = clock.wall();
  const test::PemPair anchor = test::make_linkerd_anchor({now - 24h, now + 3650 * 24h});
  SecretK3s k3s;
  std::unique_ptr<kube::HttpsClient> http = kube::HttpsClient::create_in_process(
      io.get_executor(), "https://127.0.0.1:6443",
      [this](kube::HttpRequest r) { return answer_secret(&k3s, std::move(r)); });
  kube::KubeClient cluster{*http};
  IssuerRotation rotation{io, cluster, clock, log, config(), timing()};
};

// The cloud's issuer F written, its answer lost (taken); the cloud's next,
// S, written by the pass that found F (which S supersedes), its answer
// lost too, held by etcd. The next pass reads F, then writes S: S lands
// just before (409), and the re-read finds S, which is made sure of (the
// controller deaf: restarted). Forgetting S once F was found, that pass
// met S in force, the cloud's, and made sure of nothing (the review of
// the node's year with the issuer in it).
TEST(IssuerCloudSimTest, ALostWriteThatLandsLateIsMadeSureOf) {
  CloudRotation w({{1, 'L'}, {2, 'H'}});
  const test::PemPair first = test::make_linkerd_issuer(w.anchor, {w.now - 1h, w.now + 720h});
  const test::PemPair second = test::make_linkerd_issuer(w.anchor, {w.now - 30min, w.now + 720h});
  std::vector<RotationResult> results;
  w.rotation.on_result([&](const RotationResult& r) {
    results.push_back(r);
    // The cloud's next issuer, before the pass that looks for the first.
    if (results.size() == 1) w.rotation.use_cloud(w.cloud(second), /*pass=*/false);
  });
  w.rotation.use_cloud(w.cloud(first), /*pass=*/false);
  w.rotation.request(RotationTrigger::kCloud);
  w.clock.run_for(w.io, 1min);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].answer_lost);
  EXPECT_FALSE(results[1].found_written) << "F found, superseded by S";
  EXPECT_TRUE(results[1].answer_lost) << "S, held";
  EXPECT_EQ(w.k3s.restarts, 0);
  // The hourly pass: S lands as its own PUT of S comes.
  w.k3s.lost[3] = 'C';
  w.rotation.request(RotationTrigger::kPeriodic);
  w.clock.run_for(w.io, 1min);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(w.k3s.puts, 3);
  EXPECT_TRUE(results[2].found_written) << "S, in the Secret";
  EXPECT_EQ(decode_issuer_secret(w.k3s.secret)->cert_pem, second.cert_pem);
  EXPECT_EQ(w.k3s.restarts, 1) << "S made sure of";
  EXPECT_EQ(w.log.with_event("issuer-write-found").size(), 1u);
}

// The cloud's issuer X written twice, its answer lost both times: once
// by a pass, once by the retry (a) answered, or (b) held by etcd too and
// landing as a third write comes (409). Either way X is made sure of once
// (the controller deaf: one restart), not again for the other write of
// it (the re-review of the node's year).
TEST(IssuerCloudSimTest, AnIssuerWrittenTwiceIsMadeSureOfOnce) {
  for (const bool both_lost : {false, true}) {
    SCOPED_TRACE(both_lost ? "both writes held" : "the retry's write answered");
    CloudRotation w(both_lost ? std::map<int, char>{{1, 'H'}, {2, 'H'}, {3, 'C'}}
                              : std::map<int, char>{{1, 'H'}});
    const test::PemPair x = test::make_linkerd_issuer(w.anchor, {w.now - 1h, w.now + 720h});
    w.rotation.use_cloud(w.cloud(x), /*pass=*/false);
    w.rotation.request(RotationTrigger::kCloud);
    w.clock.run_for(w.io, 1min);
    for (int hour = 0; hour < 3; ++hour) {
      w.rotation.request(RotationTrigger::kPeriodic);
      w.clock.run_for(w.io, 1min);
    }
    EXPECT_EQ(decode_issuer_secret(w.k3s.secret)->cert_pem, x.cert_pem);
    EXPECT_EQ(w.k3s.restarts, 1);
    EXPECT_EQ(w.log.with_event("issuer-write-found").size(), both_lost ? 1u : 0u);
  }
}

}  // namespace
}  // namespace tetherd
