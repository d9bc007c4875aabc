#include "test/simulation/issuer_sim.h"

#include <algorithm>
#include <array>
#include <deque>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include "agent/adapters/x509.h"
#include "agent/app/daemon.h"
#include "agent/app/issuer_rotation.h"
#include "agent/core/base64.h"
#include "agent/core/clock_jump.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "agent/core/linkerd_objects.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"
#include "test/simulation/seeds.h"
#include "test/simulation/tail_log.h"
#include "test/support/api_server/rest_api.h"
#include "test/support/linkerd_pki.h"
#include "test/support/sim_clock.h"
#include "test/support/temp_dir.h"

namespace tetherd::sim::issuer {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;
namespace api = tetherd::test::apiserver;
using test::PemPair;

// The node's linkerd settings: a week's issuer, renewed two days before its
// end at the latest (a third of its life, 56 h, comes first).
constexpr Duration kValidity = 168h;
constexpr Duration kRotateBefore = 48h;
constexpr Duration kAnchorLife = 120 * 24h;
constexpr Duration kCheckPeriod = Daemon::kIssuerCheckPeriod;
constexpr Duration kResumeTick = 10s;  // the daemon's resume check without logind
// How long an issuer may be out of force once everything needed to fix it
// is there: the node awake, k3s answering, the clock right, the key file's
// anchor valid and in the bundle. A resume's pass runs at once, a failed
// one is retried, and the identity controller may hold a pass for 120 s.
// (6 minutes: a retry armed just before k3s answers again comes up to 5
// minutes later, and a pass that met the stall's last second takes its 30 s.)
constexpr Duration kBound = 6min;
// How long the identity controller may sign with another issuer than the
// Secret's once it could be fixed: a pass k3s did not answer is retried
// within 5 minutes, the reload is confirmed within 120 s, else restarted.
constexpr Duration kLoadBound = 10min;
// The client's deadline for an answer: a slower one is a timeout to tetherd
// (k3s acts anyway).
const Duration kReadTimeout = kube::ClientLimits{}.read_timeout;
constexpr std::size_t kRequestsAnHour = 150;  // a hot loop makes thousands
constexpr std::size_t kPendingWaits = 8;      // the executor's timers armed
const std::string kNs = "linkerd";
const std::string kSecretPath = kube::object_path(kube::kSecrets, kNs, kIssuerSecretName);
const std::string kRootsPath = kube::object_path(kube::kConfigMaps, kNs, kTrustRootsConfigMapName);
const std::string kIdentityPath =
    kube::object_path(kube::kDeployments, kNs, kIdentityDeploymentName);
const std::string kEventsPath = kube::collection_path(kube::kEvents, kNs);
const WallTime kStart = WallTime(std::chrono::hours(24 * 365 * 56));

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finaliser
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

struct Anchor {
  PemPair pem;
  CertificateInfo info;
  x509::Certificate cert;
};

Anchor make_anchor(WallTime from) {
  PemPair pem = test::make_linkerd_anchor({from - 1h, from + kAnchorLife});
  auto certs = x509::parse_certificates(pem.cert_pem, "anchor");
  x509::Certificate cert = certs->front();
  return Anchor{std::move(pem), x509::describe(cert), std::move(cert)};
}

class World {
 public:
  World(const Scenario& s, Sabotage sabotage) : scenario_(s), sabotage_(sabotage) {
    config_.rotate_before = kRotateBefore;
    config_.issuer_validity = kValidity;
    config_.trust_anchor_key = dir_.file("anchor.key");
  }

  Verdict run() {
    setup();
    start_tetherd();
    settle();
    struct Point {
      Duration at;
      std::size_t event;
      bool end;
    };
    std::vector<Point> points;
    for (std::size_t i = 0; i < scenario_.events.size(); ++i) {
      const Event& e = scenario_.events[i];
      points.push_back({e.at, i, false});
      if (e.kind != Kind::kSleep && e.kind != Kind::kRestart && e.kind != Kind::kConflict)
        points.push_back({e.at + e.length, i, true});
    }
    std::stable_sort(points.begin(), points.end(),
                     [](const Point& a, const Point& b) { return a.at < b.at; });
    Verdict v;
    for (const Point& p : points) {
      if (!violation_) advance_to(p.at);
      if (!violation_) {
        apply(scenario_.events[p.event], p.end);
        settle();
      }
      if (violation_) {
        v.step = p.event;
        break;
      }
    }
    if (!violation_) {
      advance_to(std::chrono::hours(24) * scenario_.days);
      // After the last event: every event may have a part in it.
      if (violation_ && !scenario_.events.empty()) v.step = scenario_.events.size() - 1;
    }
    stop_tetherd();
    if (violation_) v.violation = *violation_ + " (at " + clock_text(now()) + ")" + log_.tail();
    totals_.busiest_hour = std::max(totals_.busiest_hour, hour_requests_);
    v.totals = totals_;
    return v;
  }

 private:
  // ------------------------------------------------------------- the world

  Duration now() const { return clock_.wall() - offset_ - kStart; }  // true time
  WallTime true_wall() const { return clock_.wall() - offset_; }

  api::Response call(const std::string& method, const std::string& target, std::string body = {},
                     std::string content_type = "application/json") {
    api::Request q{
        method,          target, std::move(content_type), std::move(body), "application/json",
        "127.0.0.1:6443"};
    return std::get<api::Response>(rest_.handle(admin_, q));
  }
  void put(const std::string& collection, const std::string& path, json::object object) {
    const api::Response got = call("GET", path);
    if (got.status == 200) {
      object["metadata"].as_object()["resourceVersion"] =
          json::parse(got.body).at("metadata").at("resourceVersion");
      call("PUT", path, json::serialize(object));
    } else {
      call("POST", collection, json::serialize(object));
    }
  }

  void write_bundle() {
    std::string pem;
    for (const Anchor& a : bundle_)
      pem += a.pem.cert_pem;
    put(kube::collection_path(kube::kConfigMaps, kNs), kRootsPath,
        json::object{{"apiVersion", "v1"},
                     {"kind", "ConfigMap"},
                     {"metadata", {{"name", kTrustRootsConfigMapName}, {"namespace", kNs}}},
                     {"data", {{kTrustRootsKey, pem}}}});
    chain_known_ = false;
    bundle_at_ = now();
  }

  void setup() {
    bundle_.push_back(make_anchor(true_wall()));
    key_anchor_ = 0;
    ++totals_.anchors;
    dir_.write("anchor.key", bundle_.front().pem.key_pem);
    write_bundle();
    const PemPair first =
        test::make_linkerd_issuer(bundle_.front().pem, {true_wall() - 1h, true_wall() + kValidity});
    put(kube::collection_path(kube::kSecrets, kNs), kSecretPath,
        json::object{{"apiVersion", "v1"},
                     {"kind", "Secret"},
                     {"type", "kubernetes.io/tls"},
                     {"metadata", {{"name", kIssuerSecretName}, {"namespace", kNs}}},
                     {"data",
                      {{"tls.crt", encode_base64(first.cert_pem)},
                       {"tls.key", encode_base64(first.key_pem)},
                       {"ca.crt", encode_base64(bundle_.front().pem.cert_pem)}}}});
    put(kube::collection_path(kube::kDeployments, kNs), kIdentityPath,
        json::object{{"apiVersion", "apps/v1"},
                     {"kind", "Deployment"},
                     {"metadata", {{"name", kIdentityDeploymentName}, {"namespace", kNs}}},
                     {"spec", {{"template", {{"metadata", json::object{}}}}}}});
    read_secret();
    loaded_ = issuer_->serial_hex;
  }

  // The daemon's wiring of the rotation (agent/app/daemon.cpp: a pass at
  // start, on each resume and every kIssuerCheckPeriod), around the real
  // IssuerRotation and its real HTTP client, answered in process.
  void start_tetherd() {
    http_ = kube::HttpsClient::create_in_process(
        io_.get_executor(), "https://127.0.0.1:6443",
        [this](kube::HttpRequest r) { return exchange(std::move(r)); });
    kube_ = std::make_unique<kube::KubeClient>(*http_);
    // The retry's jitter from the world's own generator: a seed replays.
    IssuerRotationTiming timing;
    timing.random = [this] { return unit_of(rng_); };
    rotation_ = std::make_unique<IssuerRotation>(io_, *kube_, clock_, log_, config_, timing);
    if (sabotage_ != Sabotage::kDeafToControlPlane)
      rotation_->use_clock_witness(
          [this] { return witness_.error(clock_.wall(), clock_.boottime()); },
          Daemon::kClockWitnessWait);  // a control plane is configured
    rotation_->request(RotationTrigger::kStart);
    wall_step_ = WallStepCheck();
    wall_step_.check(clock_.wall(), clock_.boottime());
    // A new process has heard nothing: the session's first answer comes
    // a moment after the start's pass has begun.
    witness_ = ClockWitness();
    clock_agrees_.reset();
    hourly_ = std::make_unique<Timer>(io_, clock_);
    arm_hourly();
    session_ = std::make_unique<Timer>(io_, clock_);
    hear_soon();
  }
  // The session's next answer, a second from now (after a start, a resume,
  // the cloud back); and every hour in between (the Lease's every 10 s,
  // thinned: what is heard stays true on boottime).
  void hear_soon() {
    session_->expires_after(1s);
    session_->async_wait([this](const boost::system::error_code& ec) {
      if (!ec) hear_control_plane();
    });
  }
  // Daemon::heard_control_plane_date and judge_clock, on the world's true
  // time.
  void hear_control_plane() {
    if (!rotation_ || unheard_ > 0) return;
    const bool had = witness_.error(clock_.wall(), clock_.boottime()).has_value();
    witness_.heard(true_wall(), clock_.boottime());
    // An issuer minted ahead can be told from a clock behind from now on.
    if (!had && minted_wrong_) since_ = std::max(since_, now());
    judge_clock(/*pass=*/true, /*back=*/!had);
  }
  void judge_clock(bool pass, bool back = false) {
    const auto error = witness_.error(clock_.wall(), clock_.boottime());
    if (!error) return;
    const bool agrees = clock_agrees(*error, clock_agrees_);
    if (clock_agrees_ == agrees) {
      if (back && agrees && pass && rotation_->left_from_the_future())
        rotation_->request(RotationTrigger::kClockWitness);
      return;
    }
    clock_agrees_ = agrees;
    if (pass) rotation_->request(RotationTrigger::kClockWitness);
  }
  void arm_hourly() {
    hourly_->expires_after(kCheckPeriod);
    hourly_->async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      rotation_->request(RotationTrigger::kPeriodic);
      arm_hourly();
    });
  }
  void stop_tetherd() {
    if (!rotation_) return;
    // A reload not yet made sure of when tetherd stops: the next process
    // does not know of the write (README, Known limits), so a controller
    // that missed it is not held to the bound.
    check();
    if (loaded_ != issuer_->serial_hex) unconfirmable_ = issuer_->serial_hex;
    hourly_->cancel();
    session_->cancel();
    for (Timer* t : answering_)
      t->cancel();
    rotation_->stop();
    settle();
    rotation_.reset();
    hourly_.reset();
    session_.reset();
    kube_.reset();
    http_.reset();
  }
  void settle() { clock_.run_for(io_, Duration::zero()); }

  // Runs the node until `t` on true time, checking every hour on the way.
  void advance_to(Duration t) {
    while (!violation_ && now() < t) {
      const Duration next = std::min(t, next_check_);
      clock_.run_for(io_, next - now());
      if (now() >= next_check_) {
        hear_control_plane();
        check();
        prune_events();
        next_check_ = now() + 1h;
      }
    }
  }

  void apply(const Event& e, bool end) {
    // A slow answer does not excuse a restart of the controller: it said
    // IssuerUpdated before the answer came. (The slowest answer in time,
    // 30 s, and the 100 s the invariant allows the Event stay within the
    // 120 s tetherd waits: a list sent before the Event is answered in
    // time. Reads stalled past the deadline mark the write disturbed in
    // exchange().)
    if (last_write_ && clock_.monotonic() - last_write_->mono < 130s && e.kind != Kind::kSlow)
      last_write_->disturbed = true;
    switch (e.kind) {
      case Kind::kSleep: {
        // One that began while the node slept lasts what is left of it.
        const Duration left = e.at + e.length - now();
        if (left <= Duration::zero()) break;
        clock_.suspend(std::min(left, e.length));
        since_ = now();
        next_check_ = now();
        if (sabotage_ == Sabotage::kForgetResumes) break;
        if (e.logind_lost) clock_.run_for(io_, tick_delay());
        rotation_->request(RotationTrigger::kResume);
        hear_soon();  // the session redials at once
        break;
      }
      case Kind::kOutage:
        down_ += end ? -1 : 1;
        if (end) since_ = now();
        // k3s went down: the writes it had not committed are lost.
        if (!end)
          for (const auto& t : committing_)
            t->cancel();
        break;
      case Kind::kRestart:
        stop_tetherd();
        start_tetherd();
        break;
      case Kind::kClockWrong:
        if (e.with_restart && !end) stop_tetherd();
        clock_.step_wall(end ? -e.offset : e.offset);
        offset_ += end ? -e.offset : e.offset;
        if (e.unwitnessed) unheard_ += end ? -1 : 1;
        if (e.with_restart && !end) {
          start_tetherd();
        } else {
          // The daemon's tick (every 10 s) sees the step: Daemon::check_wall_step.
          clock_.run_for(io_, tick_delay());
          if (wall_step_.check(clock_.wall(), clock_.boottime())) {
            judge_clock(/*pass=*/false);
            rotation_->request(RotationTrigger::kClockStep);
          }
        }
        if (end && e.unwitnessed) hear_soon();  // the control plane in reach again
        if (end) since_ = now();
        next_check_ = now();
        break;
      case Kind::kConflict:
        conflict_pending_ = true;
        break;
      case Kind::kDeaf:
        deaf_ += end ? -1 : 1;
        break;
      case Kind::kSlow:  // overlapping spells: the slowest answers
        if (end) {
          auto& spells = e.writes_only ? write_slow_ : slow_;
          spells.erase(spells.find(e.answer));
          commits_late_ -= e.commits_late;
          // k3s answers in time again: fixable from now.
          if (e.answer > kReadTimeout && !stalled()) since_ = now();
        } else {
          (e.writes_only ? write_slow_ : slow_).insert(e.answer);
          commits_late_ += e.commits_late;
        }
        break;
      case Kind::kAnchor:
        if (!end) {
          bundle_.push_back(make_anchor(true_wall()));
          ++totals_.anchors;
          key_anchor_ = bundle_.size() - 1;
          dir_.write("anchor.key", bundle_.back().pem.key_pem);
          since_ = now();
          write_bundle();
          // The daemon follows the key file: another key runs a pass
          // (Daemon::anchor_key).
          rotation_->request(RotationTrigger::kPeriodic);
          break;
        } else if (bundle_.size() > 1) {
          // The oldest leaves: linkerd's procedure drops the old root once
          // the issuer under the new one is out.
          bundle_.erase(bundle_.begin());
          --key_anchor_;
        }
        write_bundle();
        break;
    }
  }

  // When the daemon's next tick comes: within kResumeTick.
  Duration tick_delay() const {
    const auto h = mix(static_cast<std::uint64_t>(now().count()));
    const auto ms = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(kResumeTick).count());
    return std::chrono::milliseconds(static_cast<long long>(h % ms));
  }

  // ------------------------------------------------------------ k3s, in process

  boost::asio::awaitable<kube::ApiResult<kube::HttpResponse>> exchange(kube::HttpRequest r) {
    ++totals_.requests;
    const auto hour = std::chrono::duration_cast<std::chrono::hours>(now()).count();
    if (hour != hour_) {
      totals_.busiest_hour = std::max(totals_.busiest_hour, hour_requests_);
      hour_ = hour;
      hour_requests_ = 0;
    }
    if (hour_requests_ < 12)
      hour_log_[hour_requests_] =
          std::string(boost::beast::http::to_string(r.verb)) + " " + r.target;
    if (++hour_requests_ > kRequestsAnHour) {
      std::string first;
      for (const auto& l : hour_log_)
        first += "\n      " + l;
      fail("requests-bounded: " + std::to_string(hour_requests_) + " requests to k3s in hour " +
           std::to_string(hour) + ", the first:" + first);
    }
    if (down_ > 0)
      co_return kube::ApiError{kube::ErrorKind::kTransport, 0, "ConnectionRefused",
                               "127.0.0.1:6443: connection refused", std::nullopt};
    const std::string method(boost::beast::http::to_string(r.verb));
    const std::string path = r.target.substr(0, r.target.find('?'));
    if (path == kSecretPath && method == "GET") ++totals_.passes;
    if (path == kSecretPath && method == "PUT" && conflict_pending_) {
      conflict_pending_ = false;  // someone else's kubectl annotate lands first
      json::object secret = json::parse(call("GET", kSecretPath).body).as_object();
      secret["metadata"].as_object()["annotations"] =
          json::object{{"example.com/touched", std::to_string(totals_.requests)}};
      call("PUT", kSecretPath, json::serialize(secret));
    }
    // etcd's fsync stalled: the write commits when its answer would come,
    // after the client has given up on it (and maybe written again), or
    // never, if k3s goes down first. Its precondition (the resourceVersion
    // sent) is judged then.
    const bool deferred = method != "GET" && commits_late_ > 0 && stalled();
    std::optional<api::Response> a;
    if (deferred) {
      if (path == kIdentityPath && method == "PATCH") {
        ++totals_.late_restarts;
        judge_restart();
      }
      auto timer = std::make_unique<Timer>(io_, clock_);
      timer->expires_after(late(true));
      Timer* raw = timer.get();
      committing_.push_back(std::move(timer));
      raw->async_wait([this, raw, method, target = r.target, body = std::move(r.body),
                       type = r.content_type](const boost::system::error_code& ec) {
        std::erase_if(committing_, [raw](const auto& t) { return t.get() == raw; });
        if (ec || down_ > 0) return;
        commit(method, target, body, type, /*late=*/true);
      });
    } else {
      a = commit(method, r.target, std::move(r.body), r.content_type, /*late=*/false);
    }
    if (const Duration answer = late(method != "GET");
        answer > Duration::zero()) {  // acted on; the answer comes late
      // Stalled past the deadline: tetherd's answer is lost, and so is its
      // chance to confirm the write's reload promptly.
      // (Only when reads stall too: with writes alone late, tetherd reads
      // the Events in time, and a restart would be a bug.)
      if (late(false) > kReadTimeout && last_write_ &&
          clock_.monotonic() - last_write_->mono < kReadTimeout + 130s)
        last_write_->disturbed = true;
      Timer late(io_, clock_);
      late.expires_after(std::min(answer, kReadTimeout));
      answering_.push_back(&late);
      auto [ec] = co_await late.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      std::erase(answering_, &late);
      // tetherd stopped, or k3s went down: the connection closed under the
      // answer (a write that took, which tetherd takes for one that failed).
      if (ec || down_ > 0)
        co_return kube::ApiError{kube::ErrorKind::kTransport, 0, "Disconnected",
                                 "127.0.0.1:6443: connection closed", std::nullopt};
      if (answer > kReadTimeout)
        co_return kube::ApiError{kube::ErrorKind::kTimeout, 0, "Timeout",
                                 "127.0.0.1:6443: no answer within 30 s", std::nullopt};
    }
    // (A deferred write's answer is past the deadline: a timeout above.)
    co_return kube::HttpResponse{a->status, std::move(a->body),
                                 a->retry_after ? std::to_string(*a->retry_after) : "", ""};
  }

  // What k3s does with a write it acts on: the model hears of it.
  api::Response commit(const std::string& method, const std::string& target, std::string body,
                       std::string content_type, bool late) {
    api::Response a = call(method, target, std::move(body), std::move(content_type));
    const std::string path = target.substr(0, target.find('?'));
    if (path == kSecretPath && method != "GET") {
      if (a.status == 200) {
        written();
        totals_.late_commits += late;
      }
      if (a.status == 409) ++totals_.conflicts;
      if (a.status == 409 && late) {
        ++totals_.late_commits;
        ++totals_.late_commits_refused;
      }
    }
    if (path == kRootsPath && method != "GET")
      fail("trust-bundle-untouched: tetherd wrote the trust roots (" + method +
           "), which it never invents");
    if (path == kIdentityPath && method == "PATCH" && a.status == 200) {
      restarted();
      if (!late) judge_restart();
    }
    return a;
  }

  // The identity controller: IssuerUpdated 5 to 90 s after the Secret
  // changes, unless it is deaf (or k3s is down when it would say it).
  void written() {
    ++totals_.rotations;
    check();  // the issuer replaced: was it out of force for long?
    const bool was_early = true_wall() < issuer_->not_before;
    read_secret();
    const CertificateInfo& info = *issuer_;
    const Anchor& key = bundle_[key_anchor_];
    if (auto ok = x509::verify_chain(*issuer_cert_, {key.cert}); !ok)
      fail("issuer-under-the-key-file's-anchor: the issuer written does not chain to " +
           key.info.subject + ": " + ok.error().message);
    else if (!chains_to_bundle())
      fail("issuer-chains-to-the-bundle: the issuer written chains to no root of the trust roots");
    else if (info.not_after > key.info.not_after)
      fail("issuer-within-its-anchor: the issuer written ends " + format_kube_time(info.not_after) +
           ", after its anchor (" + format_kube_time(key.info.not_after) + ")");
    else if (offset_ == Duration::zero() && true_wall() > key.info.not_after)
      fail("no-write-under-an-expired-anchor: an issuer was written under an anchor that ended " +
           format_kube_time(key.info.not_after));
    const auto error = witness_.error(clock_.wall(), clock_.boottime());
    if (error && std::chrono::abs(offset_) > kClockTolerance)
      return fail("no-mint-the-control-plane-contradicts: an issuer was minted with the clock " +
                  format_duration(std::chrono::abs(offset_)) +
                  (offset_ > Duration::zero() ? " ahead" : " behind") +
                  ", though the control plane's Date (heard " + format_duration(*error) +
                  " off) said so");
    if (was_early) ++totals_.witnessed_rotations;
    totals_.slow_rotations += late(true) > Duration::zero();
    last_write_ = Write{clock_.monotonic(), std::nullopt, false};
    minted_wrong_ = offset_ != Duration::zero();
    totals_.minted_by_a_wrong_clock += minted_wrong_;
    if (deaf_ > 0) return;
    const auto h = mix(static_cast<std::uint64_t>(now().count()) ^ totals_.rotations);
    auto timer = std::make_unique<Timer>(io_, clock_);
    // It watches the Secret: while k3s is slow, it hears before tetherd
    // hears the answer to its own write.
    if (late(true) > Duration::zero()) {
      const auto late =
          std::chrono::duration_cast<std::chrono::milliseconds>(this->late(true)).count();
      timer->expires_after(std::chrono::milliseconds(
          static_cast<long long>(h % static_cast<std::uint64_t>(std::max<long long>(late, 1)))));
    } else {
      timer->expires_after(std::chrono::seconds(5 + h % 86));
    }
    Timer* raw = timer.get();
    controller_.emplace_back(clock_.monotonic(), std::move(timer));
    ++controller_armed_;
    raw->async_wait([this](const boost::system::error_code& ec) {
      --controller_armed_;
      // k3s down: kubelet cannot refresh the mounted Secret, so the
      // controller neither loads nor says anything (tetherd restarts it).
      if (ec || down_ > 0) return;
      ++controller_events_;
      posted_.emplace_back("linkerd-identity." + std::to_string(controller_events_), now());
      judge_loaded();  // how long it took
      loaded_ = issuer_->serial_hex;
      call("POST", kEventsPath,
           json::serialize(json::object{
               {"apiVersion", "v1"},
               {"kind", "Event"},
               {"metadata", {{"name", "linkerd-identity." + std::to_string(controller_events_)}}},
               {"reason", kIssuerUpdatedReason},
               {"type", "Normal"},
               {"message", "Updated identity issuer"},
               {"lastTimestamp", format_kube_time(clock_.wall())},
               {"involvedObject",
                {{"kind", "Deployment"}, {"namespace", kNs}, {"name", kIdentityDeploymentName}}}}));
      if (last_write_ && !last_write_->event) last_write_->event = clock_.monotonic();
    });
  }

  void restarted() {
    ++totals_.restarts;
    judge_loaded();
    loaded_ = issuer_->serial_hex;  // the new pod reads the Secret
  }
  // tetherd's decision to restart, judged against the write last taken
  // when it sent the PATCH (one that commits late may land after a newer
  // write, which it was not about).
  void judge_restart() {
    if (last_write_ && !last_write_->disturbed && last_write_->event &&
        *last_write_->event - last_write_->mono <= 100s)
      fail(
          "identity-restarted-only-when-unconfirmed: deploy/linkerd-identity restarted though "
          "IssuerUpdated came " +
          format_duration(*last_write_->event - last_write_->mono) + " after the write");
  }

  // Events live an hour from when they were written (kube-apiserver's
  // --event-ttl, an etcd lease), whatever time they say: one stamped by a
  // clock 54 days ahead used to stay 55 days here, and confirmed a write
  // of a later process (seed 526), which no k3s would have kept.
  void prune_events() {
    while (!controller_.empty() && controller_.front().first + 100s < clock_.monotonic())
      controller_.pop_front();  // said long ago (at most 90 s after its write)
    while (!posted_.empty() && posted_.front().second + 1h < now()) {
      call("DELETE", kEventsPath + "/" + posted_.front().first);
      posted_.pop_front();
    }
  }

  // ------------------------------------------------------------ the model

  void read_secret() {
    json::object secret = json::parse(call("GET", kSecretPath).body).as_object();
    auto decoded = decode_issuer_secret(secret);
    if (!decoded) return fail("secret-decodes: " + decoded.error().message);
    auto certs = x509::parse_certificates(decoded->cert_pem, "issuer");
    if (!certs) return fail("secret-decodes: " + certs.error().message);
    issuer_cert_ = certs->front();
    issuer_ = x509::describe(*issuer_cert_);
    chain_known_ = false;
    secret_at_ = now();
  }
  bool chains_to_bundle() {
    if (!chain_known_) {
      std::vector<x509::Certificate> roots;
      for (const Anchor& a : bundle_)
        roots.push_back(a.cert);
      chains_ = x509::verify_chain(*issuer_cert_, roots).has_value();
      chain_known_ = true;
    }
    return chains_;
  }

  // Whether tetherd could put a good issuer in force now.
  bool fixable() const {
    const Anchor& key = bundle_[key_anchor_];
    return down_ == 0 && !stalled() && offset_ == Duration::zero() &&
           true_wall() >= key.info.not_before && true_wall() <= key.info.not_after;
  }
  // tetherd cannot write (nor read, unless only writes are late).
  bool stalled() const { return late(true) > kReadTimeout; }
  // How late k3s answers a read or a write now (zero: at once).
  Duration late(bool write) const {
    Duration d = slow_.empty() ? Duration::zero() : *slow_.rbegin();
    if (write && !write_slow_.empty()) d = std::max(d, *write_slow_.rbegin());
    return d;
  }

  void check() {
    if (violation_) return;
    // Armed by the world (the controller, late answers), not by tetherd.
    const std::size_t worlds = controller_armed_ + answering_.size() + committing_.size();
    if (clock_.pending() > worlds + kPendingWaits)
      return fail("executor-bounded: " + std::to_string(clock_.pending() - worlds) +
                  " timer waits of tetherd's armed");
    const WallTime t = true_wall();
    judge_loaded();
    if (violation_) return;
    const bool in_force = t >= issuer_->not_before && t <= issuer_->not_after && chains_to_bundle();
    if (in_force || !fixable()) return;
    // Minted by a clock that was ahead, and not yet valid once the clock is
    // right: tetherd cannot tell that from a clock now behind without a
    // witness of true time (the control plane's Date), and the issuer
    // policy refuses to write over a not-yet-valid issuer. Measured, not
    // held to the bound, while no witness is fresh.
    if (t < issuer_->not_before && minted_wrong_ &&
        !witness_.error(clock_.wall(), clock_.boottime())) {
      totals_.wrong_clock_exposure = std::max(totals_.wrong_clock_exposure, now() - since_);
      return;
    }
    // Out of force since when: its end, or when the Secret (not yet valid)
    // or the bundle (no root of it) last changed; or since it could be
    // fixed, if that came later.
    const bool expired = t > issuer_->not_after;
    const bool early = t < issuer_->not_before;
    const Duration went = expired ? issuer_->not_after - kStart
                          : early ? secret_at_
                                  : std::max(secret_at_, bundle_at_);
    const Duration out = now() - std::max(since_, went);
    // tetherd does not watch the trust roots: a bundle that no longer holds
    // the issuer's root is found by the hourly pass.
    const Duration bound = expired || early ? kBound : kCheckPeriod + kBound;
    totals_.exposed = std::max(totals_.exposed, out);
    if (out > bound) {
      const char* why = expired ? "expired"
                        : early ? "not yet valid"
                                : "chains to no root of the trust roots";
      fail("issuer-in-force: the issuer in the Secret is " + std::string(why) + " (" +
           format_kube_time(issuer_->not_before) + " to " + format_kube_time(issuer_->not_after) +
           "), and has been for " + format_duration(out) +
           " while the node was awake, k3s answering, the clock right and the anchor valid");
    }
  }

  // The identity controller signs with the Secret's issuer: it said
  // IssuerUpdated, or tetherd restarted it. Judged hourly, at each write,
  // and when the controller loads (so a load that came late is caught).
  void judge_loaded() {
    if (!fixable() || loaded_ == issuer_->serial_hex || unconfirmable_ == issuer_->serial_hex)
      return;
    const Duration out = now() - std::max(since_, secret_at_);
    totals_.unloaded = std::max(totals_.unloaded, out);
    if (out > kLoadBound)
      fail("issuer-loaded: linkerd's identity controller has not loaded the issuer written " +
           format_duration(now() - secret_at_) + " ago (serial " + issuer_->serial_hex + "), " +
           format_duration(out) + " after it could have been made sure of");
  }

  void fail(std::string why) {
    if (!violation_) violation_ = std::move(why);
  }

  const Scenario& scenario_;
  Sabotage sabotage_;
  boost::asio::io_context io_;
  test::SimClock clock_{kStart};
  std::mt19937_64 rng_{0x6a09e667f3bcc909ULL};  // tetherd's jitter, the same in every replay
  TailLog log_;
  test::TempDir dir_;
  LinkerdConfig config_;
  // k3s: the test API server's REST semantics, no sockets.
  api::Store store_{64};
  api::Authorizer authorizer_;
  api::TokenRegistry tokens_{std::map<std::string, std::string>{}};
  api::RestApi rest_{store_, authorizer_, tokens_, std::chrono::seconds(300)};
  const api::Identity admin_{"system:admin", {"system:masters"}, ""};
  // tetherd
  std::unique_ptr<kube::HttpsClient> http_;
  std::unique_ptr<kube::KubeClient> kube_;
  std::unique_ptr<IssuerRotation> rotation_;
  std::unique_ptr<Timer> hourly_;
  std::unique_ptr<Timer> session_;  // the next answer it hears
  WallStepCheck wall_step_;
  ClockWitness witness_;
  std::optional<bool> clock_agrees_;
  // the world
  Duration offset_{};  // the node's wall clock minus true time
  int down_ = 0;       // k3s outages under way
  int deaf_ = 0;
  int unheard_ = 0;                     // wrong clocks with the control plane out of reach
  std::multiset<Duration> slow_;        // how late k3s answers, in each slow spell under way
  std::multiset<Duration> write_slow_;  // the same, for writes only
  std::vector<Timer*> answering_;       // the late answers waiting
  int commits_late_ = 0;                // stalls under way whose writes commit late
  std::vector<std::unique_ptr<Timer>> committing_;  // the writes still to commit
  bool conflict_pending_ = false;
  std::vector<Anchor> bundle_;
  std::size_t key_anchor_ = 0;  // the key file's, in bundle_
  std::deque<std::pair<MonoTime, std::unique_ptr<Timer>>> controller_;  // armed at
  std::size_t controller_events_ = 0;
  std::deque<std::pair<std::string, Duration>> posted_;  // Events, by true time written
  std::size_t controller_armed_ = 0;                     // its timers still waiting (not tetherd's)
  struct Write {
    MonoTime mono;
    std::optional<MonoTime> event;  // the controller's IssuerUpdated
    bool disturbed;                 // a sleep, an outage, a step... soon after
  };
  std::optional<Write> last_write_;
  bool minted_wrong_ = false;  // the issuer in the Secret was minted by a wrong clock
  std::string loaded_;         // the serial of the issuer the identity controller signs with
  std::string unconfirmable_;  // written, and tetherd stopped before it made sure
  // the model
  std::optional<CertificateInfo> issuer_;
  std::optional<x509::Certificate> issuer_cert_;
  bool chain_known_ = false, chains_ = false;
  Duration since_{};                    // since when it could be fixed, at the latest
  Duration secret_at_{}, bundle_at_{};  // when they last changed
  Duration next_check_{};               // true time
  long long hour_ = 0;
  std::size_t hour_requests_ = 0;
  std::array<std::string, 12> hour_log_;
  std::optional<std::string> violation_;
  Totals totals_;
};

}  // namespace

const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::kSleep:
      return "sleep";
    case Kind::kOutage:
      return "k3s down";
    case Kind::kRestart:
      return "tetherd restarted";
    case Kind::kClockWrong:
      return "wall clock wrong";
    case Kind::kConflict:
      return "someone else writes the Secret";
    case Kind::kDeaf:
      return "identity controller deaf";
    case Kind::kAnchor:
      return "new trust anchor";
    case Kind::kSlow:
      return "k3s slow";
  }
  return "?";
}

Scenario generate(std::uint64_t seed, int days) {
  std::mt19937_64 r(seed ^ 0x2545f4914f6cdd1dULL);
  const auto u = [&r] { return unit_of(r); };
  const Duration span = std::chrono::hours(24) * days;
  const auto scaled = [&](int per_year) {
    return static_cast<int>(static_cast<double>(per_year) * days / 365.0 + 0.5);
  };
  const auto at = [&] { return std::chrono::duration_cast<Duration>(span * u()); };
  const auto log_between = [&](double lo, double hi) {  // seconds
    return std::chrono::duration_cast<Duration>(
        std::chrono::duration<double>(lo * std::pow(hi / lo, u())));
  };
  Scenario s{days, {}};
  for (int i = 0; i < scaled(1000); ++i)
    s.events.push_back({.at = at(),
                        .kind = Kind::kSleep,
                        .length = log_between(2, 10 * 86400),
                        .logind_lost = u() < 0.1});
  for (int i = 0; i < scaled(100); ++i)
    s.events.push_back({.at = at(), .kind = Kind::kOutage, .length = log_between(5, 1800)});
  for (int i = 0; i < scaled(20); ++i)
    s.events.push_back({.at = at(), .kind = Kind::kRestart});
  for (int i = 0; i < scaled(12); ++i) {
    const Duration off = log_between(60, 60 * 86400);
    s.events.push_back({.at = at(),
                        .kind = Kind::kClockWrong,
                        .length = log_between(10, 7200),
                        .offset = u() < 0.5 ? -off : off,
                        .with_restart = u() < 1.0 / 3,
                        .unwitnessed = u() < 0.5});
  }
  for (int i = 0; i < scaled(40); ++i)
    s.events.push_back({.at = at(), .kind = Kind::kConflict});
  for (int i = 0; i < scaled(10); ++i)
    s.events.push_back({.at = at(), .kind = Kind::kDeaf, .length = log_between(3600, 4 * 86400)});
  // The operator's anchors: each of 120 days, replaced 60 to 110 days in,
  // or, one in four, 121 to 135 days in (after it ended); the old one
  // leaves the bundle 1 to 20 days later.
  for (Duration t = Duration::zero();;) {
    const double day = 86400;
    t += u() < 0.25 ? log_between(121 * day, 135 * day) : log_between(60 * day, 110 * day);
    if (t >= span) break;
    s.events.push_back({.at = t, .kind = Kind::kAnchor, .length = log_between(day, 20 * day)});
  }
  // k3s slow (drawn last, so that the events above are those drawn before
  // it was): after one resume in five, when the node catches up (pods
  // restarting, an SD card's backlog), for 1 to 30 minutes, so that the
  // resume's pass meets it; and 30 other spells of 10 minutes to 12 hours.
  // Half the stalls commit a write only when its answer would come (etcd's
  // fsync is what stalls), drawn apart so that a seed keeps its events.
  std::mt19937_64 fsync(seed ^ 0x9e3779b97f4a7c15ULL);
  const std::size_t drawn = s.events.size();
  for (std::size_t i = 0; i < drawn; ++i) {
    const Event sleep = s.events[i];
    if (sleep.kind != Kind::kSleep || u() >= 0.2) continue;
    s.events.push_back({.at = sleep.at - 1ms,
                        .kind = Kind::kSlow,
                        .length = sleep.length + log_between(60, 1800),
                        // one in four stalled past the client's deadline,
                        // half of those for writes only
                        .answer = u() < 0.25 ? log_between(31, 120) : log_between(1, 20),
                        .writes_only = u() < 0.5});
    Event& slow = s.events.back();
    slow.commits_late = slow.answer > kReadTimeout && unit_of(fsync) < 0.5;
  }
  for (int i = 0; i < scaled(30); ++i)
    s.events.push_back({.at = at(),
                        .kind = Kind::kSlow,
                        .length = log_between(600, 43200),
                        .answer = log_between(1, 20)});
  // k3s stalled (etcd's disk full, a node swapping): 10 times a year, for
  // 10 minutes to 12 hours, each answer 31 s to 2 minutes late, past the
  // client's 30 s deadline, though k3s acts on what it got.
  for (int i = 0; i < scaled(10); ++i)
    s.events.push_back({.at = at(),
                        .kind = Kind::kSlow,
                        .length = log_between(600, 43200),
                        .answer = log_between(31, 120),
                        .writes_only = u() < 0.5,
                        .commits_late = unit_of(fsync) < 0.5});
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const Event& a, const Event& b) { return a.at < b.at; });
  return s;
}

std::string invariant(const std::string& violation) {
  return violation.substr(0, violation.find(':'));
}

Verdict run(const Scenario& scenario, Sabotage sabotage) {
  return World(scenario, sabotage).run();
}

Scenario shrink(Scenario s, Sabotage sabotage, int runs) {
  return shrink_events(
      std::move(s), [&](const Scenario& t) { return run(t, sabotage); }, invariant, runs);
}

std::string describe(const Scenario& s) {
  std::ostringstream out;
  for (const Event& e : s.events) {
    out << "  " << clock_text(e.at) << "  " << to_string(e.kind);
    if (e.length != Duration::zero()) out << " for " << format_duration(e.length);
    if (e.kind == Kind::kClockWrong)
      out << ", " << (e.offset < Duration::zero() ? "behind by " : "ahead by ")
          << format_duration(e.offset < Duration::zero() ? -e.offset : e.offset)
          << (e.with_restart ? ", from a reboot" : "")
          << (e.unwitnessed ? ", the control plane out of reach" : "");
    if (e.logind_lost) out << ", logind's signal lost";
    if (e.kind == Kind::kSlow)
      out << ", each " << (e.writes_only ? "write's answer " : "answer ")
          << format_duration(e.answer) << " late"
          << (e.commits_late ? ", writes committed then" : "");
    out << "\n";
  }
  return out.str();
}

}  // namespace tetherd::sim::issuer
