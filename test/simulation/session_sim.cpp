#include "test/simulation/session_sim.h"

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <sstream>
#include <utility>

#include "agent/core/backoff.h"
#include "agent/core/lease.h"
#include "agent/core/node_status.h"
#include "agent/core/tether_session.h"
#include "test/simulation/seeds.h"

namespace tetherd::sim {
namespace {

using namespace std::chrono_literals;
using Kind = SessionStep::Kind;

constexpr Duration kLeasePeriod = 10s;      // controlPlane.heartbeatInterval's default
constexpr Duration kLeaseDuration = 40s;    // controlPlane.leaseDuration's
constexpr Duration kHealthInterval = 60s;   // health.interval's
constexpr Duration kResumeTick = 10s;       // the resume detector's clock check
constexpr Duration kWatchTimeout = 300s;    // timeoutSeconds
constexpr Duration kWatchIdle = 150s;       // a silent watch is dead
constexpr Duration kRequestDeadline = 30s;  // a stalled list
constexpr Duration kNever = Duration::max();

std::string at(Duration t) {
  const auto s = std::chrono::duration_cast<std::chrono::milliseconds>(t).count();
  std::ostringstream out;
  out << "day " << s / 86'400'000 << " " << (s / 3'600'000) % 24 << "h" << (s / 60'000) % 60 << "m"
      << (s / 1000) % 60 << "." << s % 1000 << "s";
  return out.str();
}

// What a request meets, by the world's state.
bool answers(std::optional<Fault> f) {
  return !f || (*f != Fault::kRefused && *f != Fault::kReset && *f != Fault::kStalled);
}
bool healthy(std::optional<Fault> f) {
  return !f || *f == Fault::kSlow;
}

class Simulation {
 public:
  Simulation(const Scenario& s, std::uint64_t seed, Bounds bounds)
      : scenario_(s), bounds_(bounds), seed_(seed) {
    for (const Sleep& z : s.sleeps) {
      script_.emplace(z.start, Script{Script::kSleep, &z, nullptr});
      script_.emplace(z.start + z.length, Script{Script::kWake, &z, nullptr});
    }
    for (const Outage& o : s.outages) {
      script_.emplace(o.start, Script{Script::kFaultStart, nullptr, &o});
      if (o.fault != Fault::kNatDrop)
        script_.emplace(o.start + o.length, Script{Script::kFaultEnd, nullptr, &o});
    }
  }

  Verdict run() {
    channels_.resize(1 + bounds_.followers);
    for_each_channel([&] { input(session().start(mono_)); });
    start_renewal();
    arm(kHealthInterval, Timer{Timer::kHealth, 0});
    while (!violation_) {
      const Duration next_script = script_.empty() ? kNever : script_.begin()->first;
      const Duration next_timer =
          (asleep_ || timers_.empty()) ? kNever : wall_ + (timers_.begin()->first - mono_);
      const Duration next = std::min(next_script, next_timer);
      if (next == kNever || next > scenario_.span) break;
      const Duration delta = next - wall_;
      wall_ = next;
      if (asleep_) {
        totals_.asleep += delta;
      } else {
        mono_ += delta;
      }
      if (steady_) totals_.steady += delta;
      ++totals_.steps;
      if (next_script <= next_timer) {
        auto it = script_.begin();
        const Script s = it->second;
        script_.erase(it);
        scripted(s);
      } else {
        auto it = timers_.begin();
        const Timer t = it->second;
        timers_.erase(it);
        fired(t);
      }
      check();
    }
    return Verdict{violation_, wall_, totals_};
  }

 private:
  struct Script {
    enum Kind { kSleep, kWake, kFaultStart, kFaultEnd } kind;
    const Sleep* sleep;
    const Outage* outage;
  };
  struct Timer {
    enum Kind {
      kLeaseWait,  // the heartbeat's wait ended (id: its generation)
      kLeaseDone,  // a renewal's answer
      kWait,       // the session's backoff (id: the step it answers)
      kListed,
      kOpened,
      kWatchEnd,  // the server ends the watch at timeoutSeconds
      kGone,
      kFailed,
      kIdle,        // a silent watch's idle deadline
      kHealth,      // a health round: the status written if due
      kResumeTick,  // the resume detector's tick sees a sleep logind did not announce
    } kind;
    std::uint64_t id;
    bool answered = false;
    Duration retry_after{};
    bool ok = false;      // kLeaseDone
    std::size_t who = 0;  // the channel whose step it answers
  };
  // The EdgeNode's session (0) and each follower's (kube::ObjectFollower:
  // a Reflector of its own, on the same client; it hears resumes and
  // suspends, never the Lease).
  struct Channel {
    TetherSession session;
    std::uint64_t last_id = 0;
    bool watch_open = false;
    std::optional<Duration> watch_dead_since;  // monotonic
  };
  Channel& ch() { return channels_[cur_]; }
  TetherSession& session() { return ch().session; }
  // `f` once for each channel as the current one; the tether's again after.
  template <class F>
  void for_each_channel(F f) {
    for (cur_ = 0; cur_ < channels_.size(); ++cur_)
      f();
    cur_ = 0;
  }
  TetherSession& main() { return channels_[0].session; }

  // The jitter's draws: a hash of the seed, the moment and the draw's
  // number in it, not one stream. An event removed (shrinking) then shifts
  // no draw made at another moment: a life that resumed at the same time
  // goes on the same way.
  double unit() {
    if (wall_ != draw_at_) {
      draw_at_ = wall_;
      draws_ = 0;
    }
    std::uint64_t x = seed_ ^ (static_cast<std::uint64_t>(wall_.count()) * 0x9e3779b97f4a7c15ULL) ^
                      (++draws_ * 0xbf58476d1ce4e5b9ULL);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return static_cast<double>(x >> 11) * 0x1.0p-53;
  }
  void arm(Duration after, Timer t) {
    t.who = cur_;
    timers_.emplace(mono_ + after, t);
  }
  void count_request() {
    requests_.push_back(wall_);
    if (steady_) ++totals_.steady_requests;
    if (current_outage_ && wall_ >= current_outage_->first->start + 5min) ++current_outage_->second;
  }

  std::optional<Fault> fault() const {
    if (active_.empty()) return std::nullopt;
    return active_.back()->fault;
  }
  Duration retry_after() const {
    return active_.empty() ? Duration{} : active_.back()->retry_after;
  }

  void fail(std::string what) {
    if (violation_) return;
    std::ostringstream out;
    out << what << " (at " << at(wall_) << "; session " << to_string(main().state()) << ", world "
        << (asleep_ ? "asleep" : "awake") << ", cloud " << (fault() ? to_string(*fault()) : "up")
        << ")";
    violation_ = out.str();
  }

  // A step from the session: carried out, unless it is the one under way.
  void input(const SessionStep& step) {
    if (step.id < ch().last_id)
      fail("step-ids-increase: step " + std::to_string(step.id) + " after " +
           std::to_string(ch().last_id));
    if (step.id == ch().last_id) return;
    ch().last_id = step.id;
    ch().watch_open = false;
    ch().watch_dead_since.reset();
    switch (step.kind) {
      case Kind::kIdle:
        return;
      case Kind::kWait:
        arm(step.delay, Timer{Timer::kWait, step.id});
        return;
      case Kind::kList:
      case Kind::kWatch:
        request(step);
        return;
    }
  }

  void request(const SessionStep& step) {
    if (cur_ == 0) {
      ++totals_.session_requests;
      if (step.kind == Kind::kList) ++totals_.relists;
    } else {
      ++totals_.follower_requests;
    }
    count_request();
    if (brownout()) {
      ++brownout_attempts_;
      if (wall_ - last_lease_ < 100ms) ++brownout_after_lease_;
    }
    const auto f = fault();
    const bool list = step.kind == Kind::kList;
    if (!f || *f == Fault::kSlow || *f == Fault::kLeaseConflict || (*f == Fault::kGone && list) ||
        (*f == Fault::kResetAfterOk && !list)) {
      const Duration latency = (f && *f == Fault::kSlow) ? 5s : 50ms;
      arm(latency, Timer{list ? Timer::kListed : Timer::kOpened, step.id});
      return;
    }
    switch (*f) {
      case Fault::kGone:
        arm(50ms, Timer{Timer::kGone, step.id});
        return;
      case Fault::kRefused:
        arm(10ms, Timer{Timer::kFailed, step.id});
        return;
      case Fault::kReset:
      case Fault::kResetAfterOk:  // a list's body cut after its 200
        arm(50ms, Timer{Timer::kFailed, step.id});
        return;
      case Fault::kStalled:
        // A watch's headers are waited for as long as a list's answer
        // (ClientLimits::read_timeout); its idle deadline starts after them.
        arm(kRequestDeadline, Timer{Timer::kFailed, step.id});
        return;
      case Fault::k500:
      case Fault::k503:
      case Fault::k429:
        arm(20ms, Timer{Timer::kFailed, step.id, true, retry_after()});
        return;
      default:
        return;
    }
  }

  bool brownout() const {
    const auto f = fault();
    return f && (*f == Fault::k500 || *f == Fault::k503 || *f == Fault::k429);
  }

  // The heartbeat (kube/lease_heartbeat.h): a renewal, its answer, then
  // core/lease.h's wait, measured from the answer; renew_now() on a resume.
  void start_renewal() {
    lease_in_flight_ = true;
    last_lease_ = wall_;
    const auto f = fault();
    // A 409: someone else wrote the Lease. Read it again, put once more.
    const int requests = (f && *f == Fault::kLeaseConflict) ? 3 : 1;
    for (int i = 0; i < requests; ++i)
      count_request();
    totals_.lease_requests += requests;
    Timer done{Timer::kLeaseDone, 0};
    Duration latency = 50ms;
    if (!f || *f == Fault::kGone || *f == Fault::kLeaseConflict || *f == Fault::kNatDrop) {
      done.ok = done.answered = true;
    } else if (*f == Fault::kSlow) {
      done.ok = done.answered = true;
      latency = 5s;
    } else if (*f == Fault::kStalled) {
      latency = kRequestDeadline;  // blocked for the whole read deadline
    } else if (*f == Fault::kRefused) {
      latency = 10ms;
    } else if (brownout()) {
      done.answered = true;
      done.retry_after = retry_after();
      latency = 20ms;
    }
    arm(latency, done);
  }

  void renew_now() {
    if (lease_in_flight_) {
      lease_again_ = true;
      return;
    }
    ++lease_generation_;  // the wait under way is cancelled
    start_renewal();
  }

  void renewal_done(const Timer& t) {
    lease_in_flight_ = false;
    if (t.ok) {
      ++totals_.lease_renewals;
      last_renewed_ = wall_;
    }
    cur_ = 0;  // the Lease is heard by the EdgeNode's session alone
    input(session().lease_result(mono_,
                                 t.ok         ? LeaseOutcome::kRenewed
                                 : t.answered ? LeaseOutcome::kAnswered
                                              : LeaseOutcome::kUnreachable,
                                 unit()));
    if (std::exchange(lease_again_, false)) {
      ++lease_generation_;
      start_renewal();
      return;
    }
    const std::optional<Duration> asked =
        !t.ok && t.retry_after > Duration::zero() ? std::optional(t.retry_after) : std::nullopt;
    arm(lease_wait(kLeasePeriod, kLeaseDuration, t.ok ? std::nullopt : asked, unit()),
        Timer{Timer::kLeaseWait, lease_generation_});
  }

  // A health round: the status as the daemon would patch it (its vitals
  // move every round), written when the real StatusPublisher says so.
  void health_round() {
    arm(kHealthInterval, Timer{Timer::kHealth, 0});
    write_status();
  }
  void write_status() {
    if (!main().connected()) return;
    NodeStatus status;
    status.conditions.set(condition_type::kConnected, ConditionStatus::kTrue, "Watching", "",
                          WallTime{} + connected_since_);
    status.node = NodeVitals{};
    status.node->uptime_seconds = mono_ / 1s;
    const auto patch = status_patch(status);
    const WallTime now = WallTime{} + std::chrono::duration_cast<WallTime::duration>(wall_);
    if (!publisher_.due(patch, now)) return;
    ++totals_.status_writes;
    count_request();
    // Recorded only when it worked: a refused write is due again at the
    // next round, as the daemon's.
    const auto f = fault();
    if (answers(f) && !brownout() && f != Fault::kResetAfterOk) publisher_.written(patch, now);
  }

  void fired(const Timer& t) {
    cur_ = t.who;
    switch (t.kind) {
      case Timer::kLeaseWait:
        if (t.id == lease_generation_) start_renewal();
        return;
      case Timer::kLeaseDone:
        renewal_done(t);
        return;
      case Timer::kWait:
        input(session().backoff_elapsed(t.id, mono_));
        return;
      case Timer::kListed:
        input(session().listed(t.id, mono_, "rv" + std::to_string(++rv_)));
        return;
      case Timer::kOpened: {
        const SessionStep& step = session().watch_opened(t.id, mono_);
        if (step.id == t.id && session().state() == SessionState::kWatching) {
          ch().watch_open = true;
          // A reset after the 200: the stream breaks at once. A watch
          // that opened was answered (Reflector::failed's mapping).
          if (fault() == Fault::kResetAfterOk)
            arm(50ms, Timer{Timer::kFailed, t.id, true});
          else
            arm(kWatchTimeout, Timer{Timer::kWatchEnd, t.id});
        }
        input(step);
        return;
      }
      case Timer::kWatchEnd:
        // The server ends the watch at timeoutSeconds, bookmarks sent;
        // through a NAT that forgot the connection, nothing arrives.
        if (ch().watch_dead_since) return;
        input(session().watch_ended(t.id, mono_, false, 5, unit()));
        return;
      case Timer::kGone:
        input(session().watch_ended(t.id, mono_, true, 0, unit()));
        return;
      case Timer::kIdle:
        // Dead if it is still silent (a stall that ended before the
        // deadline left the stream flowing again).
        // The watch had opened: answered, as the Reflector counts it.
        if (ch().watch_dead_since || fault() == Fault::kStalled)
          input(session().failed(
              t.id, mono_, SessionFailure{.retry_after = std::nullopt, .server_answered = true},
              unit()));
        return;
      case Timer::kFailed:
        if (t.answered && t.retry_after > Duration::zero() && cur_ == 0) {
          // The server asked for patience: the session's longest wait is
          // the policy's, at the top of its window and its backoff at the
          // cap. Recovery is judged from its end, not the fault's.
          constexpr unsigned kCapped = 64;
          patience_until_ =
              std::max(patience_until_,
                       wall_ + retry_delay(SessionPolicy{}.backoff, kCapped, t.retry_after, 1.0));
        }
        input(session().failed(
            t.id, mono_,
            SessionFailure{.retry_after = t.answered && t.retry_after > Duration::zero()
                                              ? std::optional<Duration>(t.retry_after)
                                              : std::nullopt,
                           .server_answered = t.answered},
            unit()));
        return;
      case Timer::kHealth:
        health_round();
        return;
      case Timer::kResumeTick:
        resumed();
        return;
    }
  }

  void resumed() {
    ++totals_.resumes;
    for_each_channel([&] {
      const SessionStep& step = session().resumed(mono_);
      if (step.kind != Kind::kList || !step.redial)
        fail("resume-redials-at-once: the resume's step is not a list on fresh connections");
      input(step);
    });
    renew_now();
  }

  void scripted(const Script& s) {
    switch (s.kind) {
      case Script::kSleep:
        if (asleep_) return;  // overlapping sleeps: the first one holds
        asleep_ = true;
        sleep_ = s.sleep;
        if (!s.sleep->logind_lost) for_each_channel([&] { input(session().suspending()); });
        return;
      case Script::kWake: {
        if (!asleep_ || sleep_ != s.sleep) return;
        asleep_ = false;
        sleep_ = nullptr;
        // What was open before the sleep is dead now: the server and every
        // NAT on the way have long forgotten it.
        for (Channel& c : channels_)
          if (c.watch_open && !c.watch_dead_since) c.watch_dead_since = mono_;
        if (!s.sleep->logind_lost) {
          resumed();
          return;
        }
        // Unannounced: the clocks' witness sees it on the detector's next
        // tick (agent/app/resume_detector.h), within 10 s.
        const Duration into = Duration(mono_.count() % kResumeTick.count());
        arm(kResumeTick - into, Timer{Timer::kResumeTick, 0});
        return;
      }
      case Script::kFaultStart:
        if (s.outage->fault == Fault::kNatDrop) {
          // The watch's connection is forgotten on the way: silence.
          // (A NAT's table flushed: every watch's connection.)
          for_each_channel([&] {
            if (!ch().watch_open || asleep_ || ch().watch_dead_since) return;
            ch().watch_dead_since = mono_;
            arm(kWatchIdle, Timer{Timer::kIdle, session().step().id});
            // Nothing can know before the idle deadline: the recovery's
            // bound runs from then.
            if (cur_ == 0) healthy_since_ = std::max(healthy_since_, wall_ + kWatchIdle);
          });
          return;
        }
        active_.push_back(s.outage);
        if (s.outage->length >= 15min) current_outage_.emplace(s.outage, 0);
        for_each_channel([&] { interrupt_watch(s.outage->fault); });
        return;
      case Script::kFaultEnd: {
        std::erase(active_, s.outage);
        if (current_outage_ && current_outage_->first == s.outage) {
          // Backed off: in a long outage, after its first five minutes,
          // tries come about every 30 s (full jitter under the 60 s cap),
          // so 4 a minute on average is a wide bound over ten minutes or
          // more (a mean delay under 15 s over 20 draws is beyond 3.8
          // standard deviations), the Lease's and the status writes'
          // included (a Lease answered 409 costs 3, but the session is
          // then connected). A 410 on every watch costs two requests a try
          // (a list, then the watch).
          const std::uint64_t late = current_outage_->second;
          const double minutes =
              std::chrono::duration<double>(s.outage->length - 5min).count() / 60.0;
          const Fault f = s.outage->fault;
          // Each try that opens a watch also writes the status it changed
          // (Connected), and the Lease renews every 10 s throughout.
          // Each follower retries as the session does.
          const double sessions = static_cast<double>(channels_.size());
          const double bound = f == Fault::kGone            ? 8.0 * sessions + 2.0 + 6.0
                               : f == Fault::kLeaseConflict ? 20.0
                                                            : 4.0 * sessions + 2.0 + 6.0;
          if (minutes >= 10 && late / minutes > bound)
            fail("a-long-outage-is-backed-off: " + std::to_string(late) + " requests in " +
                 std::to_string(minutes) + " minutes of " + to_string(s.outage->fault));
          current_outage_.reset();
        }
        return;
      }
    }
  }

  // A fault that begins under an open watch: the stream breaks as the
  // fault does (a stall is noticed by the Lease's failure, else by the
  // watch's idle deadline; a brownout leaves an open stream alone).
  void interrupt_watch(Fault f) {
    if (!ch().watch_open || asleep_ || ch().watch_dead_since) return;
    const std::uint64_t id = session().step().id;
    switch (f) {
      case Fault::kRefused:
      case Fault::kReset:
      case Fault::kResetAfterOk:
        ch().watch_open = false;
        arm(0ms, Timer{Timer::kFailed, id, true});  // cut after its 200: answered
        return;
      case Fault::kStalled:
        arm(kWatchIdle, Timer{Timer::kIdle, id});
        return;
      case Fault::kGone:
        ch().watch_open = false;
        arm(0ms, Timer{Timer::kGone, id});
        return;
      default:
        return;
    }
  }

  void check() {
    // When the world became whole (awake, the cloud up or only slow): from
    // any change that made it so, a wake or a fault's end or another fault
    // on top of it.
    const bool whole = !asleep_ && healthy(fault());
    if (whole && !was_whole_) healthy_since_ = wall_;
    was_whole_ = whole;
    const bool reachable = answers(fault());
    if (!reachable && was_reachable_) unreachable_since_ = mono_;
    was_reachable_ = reachable;
    const bool connected = main().connected();
    if (connected && !was_connected_) {
      // Connected is a condition's change: the status says so at once.
      connected_since_ = wall_;
      write_status();
    }
    was_connected_ = connected;

    // Recovery: two minutes after the world is whole, the session is
    // connected and the Lease fresh (renewed within its duration).
    if (whole && wall_ - std::max(healthy_since_, patience_until_) > bounds_.recovery) {
      if (!connected)
        fail("connected-soon-after-a-fault: the cloud has been up and the node awake since " +
             at(healthy_since_) + ", the last wait the server asked for over at " +
             at(patience_until_));
      if (wall_ - last_renewed_ > kLeaseDuration)
        fail("the-lease-is-fresh-soon-after-a-fault: last renewed at " + at(last_renewed_) +
             "; the world whole since " + at(healthy_since_));
    }
    // Never connected in a world that contradicts it: not while the cloud
    // has not answered for longer than the Lease's read deadline and the
    // watch's idle deadline (whichever notices first), nor on a watch that
    // has been silently dead for longer than its idle deadline.
    if (connected && !asleep_ && !reachable &&
        mono_ - unreachable_since_ > kWatchIdle + kRequestDeadline)
      fail("not-connected-to-a-cloud-that-does-not-answer: unreachable since " +
           std::to_string((mono_ - unreachable_since_) / 1s) + " s of the node's time");
    for (const Channel& c : channels_)
      if (c.session.connected() && c.watch_dead_since &&
          mono_ - *c.watch_dead_since > kWatchIdle + 1s)
        fail("a-dead-watch-is-noticed: a watch has been silent for " +
             std::to_string((mono_ - *c.watch_dead_since) / 1s) + " s");

    // Steady state: requests of every kind, the Lease's and the status
    // writes' included, at most 7 a minute over ten minutes and never a
    // burst in one.
    while (!requests_.empty() && wall_ - requests_.front() >= 10min) {
      requests_.pop_front();
      if (minute_start_ > 0) --minute_start_;
    }
    while (minute_start_ < requests_.size() && wall_ - requests_[minute_start_] >= 60s)
      ++minute_start_;
    steady_ = whole && !fault() && wall_ - healthy_since_ > 16min;
    if (steady_) {
      const std::size_t minute = requests_.size() - minute_start_;
      if (minute > bounds_.any_minute)
        fail("bounded-requests-a-minute-at-steady-state: " + std::to_string(minute) +
             " in the last minute");
      if (static_cast<double>(requests_.size()) > bounds_.steady_per_minute * 10)
        fail("bounded-requests-a-minute-at-steady-state: " + std::to_string(requests_.size()) +
             " in the last ten minutes");
    }
    // Bounded memory: the timers in flight.
    if (timers_.size() > 16)
      fail("bounded-state: " + std::to_string(timers_.size()) + " timers in flight");
  }

 public:
  // Called at the end: retries in brownouts are not in step with the Lease.
  void finish() {
    if (violation_ || brownout_attempts_ < 50) return;
    const double share = static_cast<double>(brownout_after_lease_) / brownout_attempts_;
    if (share > 0.2)
      fail("no-phase-locking-to-the-lease: " + std::to_string(brownout_after_lease_) + " of " +
           std::to_string(brownout_attempts_) + " tries in brownouts came right after a renewal");
  }
  std::optional<std::string> violation() const { return violation_; }

 private:
  const Scenario& scenario_;
  Bounds bounds_;
  std::uint64_t seed_;
  Duration draw_at_ = -1s;
  std::uint64_t draws_ = 0;
  std::multimap<Duration, Script> script_;
  std::multimap<Duration, Timer> timers_;  // by monotonic deadline
  std::vector<Channel> channels_;
  std::size_t cur_ = 0;
  StatusPublisher publisher_{std::max<Duration>(kHealthInterval, kStatusReportInterval)};
  Duration wall_{}, mono_{};
  bool asleep_ = false;
  const Sleep* sleep_ = nullptr;
  std::vector<const Outage*> active_;
  std::optional<std::pair<const Outage*, std::uint64_t>> current_outage_;
  std::deque<Duration> requests_;  // the last ten minutes', every kind
  std::size_t minute_start_ = 0;
  bool steady_ =
      false;  // awake, the cloud up for 16 minutes   // the first of the last minute's in requests_
  Duration healthy_since_{};
  Duration patience_until_{};  // the end of the longest wait a server asked for
  bool was_whole_ = true;
  Duration unreachable_since_{};  // monotonic
  bool was_reachable_ = true;
  bool was_connected_ = false;
  Duration connected_since_{};
  Duration last_lease_ = -1h;  // the last renewal sent
  Duration last_renewed_{};    // the last one that worked
  bool lease_in_flight_ = false;
  bool lease_again_ = false;
  std::uint64_t lease_generation_ = 0;
  std::uint64_t rv_ = 0;
  std::uint64_t brownout_attempts_ = 0, brownout_after_lease_ = 0;
  std::optional<std::string> violation_;
  Totals totals_;
};

}  // namespace

const char* to_string(Fault fault) {
  switch (fault) {
    case Fault::kRefused:
      return "refused";
    case Fault::kReset:
      return "reset";
    case Fault::kStalled:
      return "stalled";
    case Fault::k500:
      return "500";
    case Fault::k503:
      return "503";
    case Fault::k429:
      return "429";
    case Fault::kGone:
      return "410 on the watch";
    case Fault::kSlow:
      return "slow";
    case Fault::kResetAfterOk:
      return "reset after the 200";
    case Fault::kLeaseConflict:
      return "409 on the Lease";
    case Fault::kNatDrop:
      return "the watch forgotten by a NAT";
  }
  return "?";
}

Scenario generate(std::uint64_t seed, int days) {
  std::mt19937_64 r(seed ^ 0x9e3779b97f4a7c15ULL);
  Scenario s;
  s.span = std::chrono::hours(24) * days;
  const auto count = [&](int per_year) {
    return std::max(1, static_cast<int>(static_cast<long long>(per_year) * days / 365));
  };
  const auto u = [&r] { return unit_of(r); };
  const auto seconds = [](double x) {
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(x));
  };
  const auto whole_seconds = [&](int lo, int hi) {  // in [lo, hi]
    return std::chrono::seconds(lo + static_cast<int>(u() * (hi - lo + 1)));
  };
  // Lengths spread on a log scale: as many short ones as long ones.
  const auto log_between = [&](double lo, double hi) {
    return seconds(std::exp(std::log(lo) + u() * (std::log(hi) - std::log(lo))));
  };
  for (int i = 0; i < count(1000); ++i) {
    Sleep z;
    z.start = seconds(u() * std::chrono::duration<double>(s.span).count());
    z.length = log_between(2, 10 * 86400);
    z.logind_lost = u() < 0.1;
    s.sleeps.push_back(z);
  }
  const auto& kFaults = kAllFaults;
  for (int i = 0; i < count(200); ++i) {
    Outage o;
    o.start = seconds(u() * std::chrono::duration<double>(s.span).count());
    o.length = log_between(5, 6 * 3600);
    o.fault = kFaults[static_cast<std::size_t>(u() * std::size(kFaults)) % std::size(kFaults)];
    const double which = u();
    switch (o.fault) {
      case Fault::k500:  // kube-apiserver rarely says when; sometimes a proxy does
        if (which < 0.25) o.retry_after = 1s;
        break;
      case Fault::k503:  // none, a minute at most, or far more than the Lease lives
        if (which >= 1.0 / 3)
          o.retry_after = which < 2.0 / 3 ? whole_seconds(1, 60) : whole_seconds(61, 600);
        break;
      case Fault::k429:  // API priority and fairness says 1 s or a few
        o.retry_after = whole_seconds(1, 10);
        break;
      case Fault::kNatDrop:
        o.length = Duration::zero();  // an instant
        break;
      default:
        break;
    }
    s.outages.push_back(o);
  }
  return s;
}

Verdict run(const Scenario& scenario, std::uint64_t seed, Bounds bounds) {
  Simulation sim(scenario, seed, bounds);
  Verdict v = sim.run();
  sim.finish();
  v.violation = sim.violation();
  return v;
}

std::string invariant(const std::string& violation) {
  return violation.substr(0, violation.find(':'));
}

Scenario shrink(Scenario s, std::uint64_t seed, Bounds bounds, int runs) {
  // A smaller scenario counts only if it breaks the same invariant: one
  // event less shifts every later draw, and could break another.
  const Verdict first = run(s, seed, bounds);
  if (!first.violation) return s;
  const auto same = [&, name = invariant(*first.violation)](const Scenario& t) {
    const Verdict v = run(t, seed, bounds);
    return v.violation && invariant(*v.violation) == name;
  };
  // What begins after the failure cannot have caused it.
  Scenario cut = s;
  cut.span = std::min(s.span, first.at + std::chrono::seconds(1));
  std::erase_if(cut.sleeps, [&](const Sleep& z) { return z.start > cut.span; });
  std::erase_if(cut.outages, [&](const Outage& o) { return o.start > cut.span; });
  --runs;
  if (same(cut)) s = std::move(cut);
  // Then whole runs of events at a time, halving the run (delta
  // debugging), down to one.
  const auto drop = [&](auto member) {
    for (std::size_t chunk = std::max<std::size_t>(1, (s.*member).size() / 2); runs > 0;
         chunk /= 2) {
      for (std::size_t at = (s.*member).size(); at > 0 && runs > 0;) {
        const std::size_t from = at >= chunk ? at - chunk : 0;
        Scenario t = s;
        auto& events = t.*member;
        events.erase(events.begin() + static_cast<std::ptrdiff_t>(from),
                     events.begin() + static_cast<std::ptrdiff_t>(at));
        --runs;
        if (same(t)) s = std::move(t);
        at = from;
      }
      if (chunk == 1) break;
    }
  };
  for (int pass = 0; pass < 2 && runs > 0; ++pass) {
    drop(&Scenario::sleeps);
    drop(&Scenario::outages);
  }
  return s;
}

std::string describe(const Scenario& s) {
  std::multimap<Duration, std::string> lines;
  for (const Sleep& z : s.sleeps)
    lines.emplace(z.start, "sleep for " + std::to_string(z.length / 1s) + " s" +
                               (z.logind_lost ? " (logind's signal lost)" : ""));
  for (const Outage& o : s.outages)
    lines.emplace(o.start, std::string("cloud ") + to_string(o.fault) + " for " +
                               std::to_string(o.length / 1s) + " s" +
                               (o.retry_after > Duration::zero()
                                    ? " (Retry-After " + std::to_string(o.retry_after / 1s) + " s)"
                                    : ""));
  std::string out;
  for (const auto& [t, line] : lines)
    out += "  " + at(t) + ": " + line + "\n";
  return out;
}

}  // namespace tetherd::sim
