#include "test/simulation/session_sim.h"

#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <sstream>

#include "agent/core/tether_session.h"

namespace tetherd::sim {
namespace {

using namespace std::chrono_literals;
using Kind = SessionStep::Kind;

constexpr Duration kLeasePeriod = 10s;      // controlPlane.heartbeatInterval's default
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
      : scenario_(s), bounds_(bounds), random_(seed) {
    for (const Sleep& z : s.sleeps) {
      script_.emplace(z.start, Script{Script::kSleep, &z, nullptr});
      script_.emplace(z.start + z.length, Script{Script::kWake, &z, nullptr});
    }
    for (const Outage& o : s.outages) {
      script_.emplace(o.start, Script{Script::kFaultStart, nullptr, &o});
      script_.emplace(o.start + o.length, Script{Script::kFaultEnd, nullptr, &o});
    }
  }

  Verdict run() {
    input(session_.start(mono_));
    arm(kLeasePeriod, Timer{Timer::kLease, 0});
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
    enum Kind { kLease, kWait, kListed, kOpened, kWatchEnd, kGone, kFailed, kStalled } kind;
    std::uint64_t id;  // the step it answers
    bool answered = false;
    Duration retry_after{};
    const Outage* stall = nullptr;  // kStalled: the stall it waits out
  };

  double unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(random_); }
  void arm(Duration after, Timer t) { timers_.emplace(mono_ + after, t); }

  std::optional<Fault> fault() const {
    if (active_.empty()) return std::nullopt;
    return active_.back()->fault;
  }

  void fail(std::string what) {
    if (violation_) return;
    std::ostringstream out;
    out << what << " (at " << at(wall_) << "; session " << to_string(session_.state()) << ", world "
        << (asleep_ ? "asleep" : "awake") << ", cloud " << (fault() ? to_string(*fault()) : "up")
        << ")";
    violation_ = out.str();
  }

  // A step from the session: carried out, unless it is the one under way.
  void input(const SessionStep& step) {
    if (step.id < last_id_)
      fail("step-ids-increase: step " + std::to_string(step.id) + " after " +
           std::to_string(last_id_));
    if (step.id == last_id_) return;
    last_id_ = step.id;
    watch_open_ = false;
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
    ++totals_.session_requests;
    if (step.kind == Kind::kList) ++totals_.relists;
    requests_.push_back(wall_);
    if (current_outage_ && wall_ >= current_outage_->first->start + 5min) ++current_outage_->second;
    if (brownout()) {
      ++brownout_attempts_;
      if (wall_ - last_lease_ < 100ms) ++brownout_after_lease_;
    }
    const auto f = fault();
    const bool list = step.kind == Kind::kList;
    if (!f || *f == Fault::kSlow || (*f == Fault::kGone && list)) {
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
        arm(50ms, Timer{Timer::kFailed, step.id});
        return;
      case Fault::kStalled:
        // A watch's headers are waited for as long as a list's answer
        // (ClientLimits::read_timeout); its idle deadline starts after them.
        arm(kRequestDeadline, Timer{Timer::kFailed, step.id});
        return;
      case Fault::k500:
        arm(20ms, Timer{Timer::kFailed, step.id, true});
        return;
      case Fault::k503:
      case Fault::k429:
        arm(20ms, Timer{Timer::kFailed, step.id, true, active_.back()->retry_after});
        return;
      case Fault::kSlow:
        return;
    }
  }

  bool brownout() const {
    const auto f = fault();
    return f && (*f == Fault::k500 || *f == Fault::k503 || *f == Fault::k429);
  }

  void fired(const Timer& t) {
    switch (t.kind) {
      case Timer::kLease: {
        ++totals_.lease_renewals;
        requests_.push_back(wall_);
        last_lease_ = wall_;
        const bool reached = answers(fault());
        input(session_.lease_result(mono_, reached, unit()));
        arm(kLeasePeriod, Timer{Timer::kLease, 0});
        return;
      }
      case Timer::kWait:
        input(session_.backoff_elapsed(t.id, mono_));
        return;
      case Timer::kListed:
        input(session_.listed(t.id, mono_, "rv" + std::to_string(++rv_)));
        return;
      case Timer::kOpened: {
        const SessionStep& step = session_.watch_opened(t.id, mono_);
        if (step.id == t.id && session_.state() == SessionState::kWatching) {
          watch_open_ = true;
          arm(kWatchTimeout, Timer{Timer::kWatchEnd, t.id});
        }
        input(step);
        return;
      }
      case Timer::kWatchEnd:
        // The server ends the watch at timeoutSeconds, bookmarks sent.
        input(session_.watch_ended(t.id, mono_, false, 5, unit()));
        return;
      case Timer::kGone:
        input(session_.watch_ended(t.id, mono_, true, 0, unit()));
        return;
      case Timer::kStalled:
        // The watch's idle deadline: dead if the stall still holds; one
        // that ended before it left the stream flowing again.
        if (std::find(active_.begin(), active_.end(), t.stall) != active_.end())
          input(session_.failed(t.id, mono_, SessionFailure{}, unit()));
        return;
      case Timer::kFailed:
        input(session_.failed(
            t.id, mono_,
            SessionFailure{.retry_after = t.answered && t.retry_after > Duration::zero()
                                              ? std::optional<Duration>(t.retry_after)
                                              : std::nullopt,
                           .server_answered = t.answered},
            unit()));
        return;
    }
  }

  void scripted(const Script& s) {
    switch (s.kind) {
      case Script::kSleep:
        if (asleep_) return;  // overlapping sleeps: the first one holds
        asleep_ = true;
        sleep_ = s.sleep;
        if (!s.sleep->logind_lost) input(session_.suspending());
        return;
      case Script::kWake: {
        if (!asleep_ || sleep_ != s.sleep) return;
        asleep_ = false;
        sleep_ = nullptr;
        ++totals_.resumes;
        const SessionStep& step = session_.resumed(mono_);
        if (step.kind != Kind::kList || !step.redial)
          fail("resume-redials-at-once: the resume's step is not a list on fresh connections");
        input(step);
        return;
      }
      case Script::kFaultStart:
        active_.push_back(s.outage);
        if (s.outage->length >= 15min) current_outage_.emplace(s.outage, 0);
        interrupt_watch(s.outage->fault);
        return;
      case Script::kFaultEnd: {
        std::erase(active_, s.outage);
        if (current_outage_ && current_outage_->first == s.outage) {
          // Backed off: in a long outage, after its first five minutes,
          // tries come about every 30 s (full jitter under the 60 s cap),
          // so 4 a minute on average is a wide bound over ten minutes or
          // more (a mean delay under 15 s over 20 draws is beyond 3.8
          // standard deviations). A 410 on every watch costs two requests
          // a try (a list, then the watch).
          const std::uint64_t late = current_outage_->second;
          const double minutes =
              std::chrono::duration<double>(s.outage->length - 5min).count() / 60.0;
          const double bound = s.outage->fault == Fault::kGone ? 8.0 : 4.0;
          if (minutes >= 10 && late / minutes > bound)
            fail("a-long-outage-is-backed-off: " + std::to_string(late) + " tries in " +
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
    if (!watch_open_ || asleep_) return;
    const std::uint64_t id = session_.step().id;
    switch (f) {
      case Fault::kRefused:
      case Fault::kReset:
        watch_open_ = false;
        arm(0ms, Timer{Timer::kFailed, id});
        return;
      case Fault::kStalled:
        arm(kWatchIdle, Timer{Timer::kStalled, id, false, {}, active_.back()});
        return;
      case Fault::kGone:
        watch_open_ = false;
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
    // Recovery: two minutes after the world is whole (awake, the cloud up),
    // the session is connected.
    if (!asleep_ && healthy(fault()) && wall_ - healthy_since_ > bounds_.recovery &&
        !session_.connected())
      fail("connected-soon-after-a-fault: the cloud has been up and the node awake since " +
           at(healthy_since_));
    // Steady state: at most 7 requests a minute, the Lease's included.
    while (!requests_.empty() && wall_ - requests_.front() >= 60s)
      requests_.pop_front();
    if (!asleep_ && !fault() && wall_ - healthy_since_ > 6min &&
        requests_.size() > bounds_.steady_per_minute)
      fail("bounded-requests-a-minute-at-steady-state: " + std::to_string(requests_.size()));
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
  std::mt19937_64 random_;
  std::multimap<Duration, Script> script_;
  std::multimap<Duration, Timer> timers_;  // by monotonic deadline
  TetherSession session_;
  Duration wall_{}, mono_{};
  bool asleep_ = false;
  const Sleep* sleep_ = nullptr;
  std::vector<const Outage*> active_;
  std::optional<std::pair<const Outage*, std::uint64_t>> current_outage_;
  std::deque<Duration> requests_;  // the last minute's, the Lease's included
  Duration healthy_since_{};
  bool was_whole_ = true;
  Duration last_lease_ = -1h;
  std::uint64_t last_id_ = 0;
  std::uint64_t rv_ = 0;
  bool watch_open_ = false;
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
      return "503+Retry-After";
    case Fault::k429:
      return "429+Retry-After";
    case Fault::kGone:
      return "410 on the watch";
    case Fault::kSlow:
      return "slow";
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
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const auto seconds = [](double x) {
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(x));
  };
  // Lengths spread on a log scale: as many short ones as long ones.
  const auto log_between = [&](double lo, double hi) {
    return seconds(std::exp(std::log(lo) + u(r) * (std::log(hi) - std::log(lo))));
  };
  for (int i = 0; i < count(1000); ++i) {
    Sleep z;
    z.start = seconds(u(r) * std::chrono::duration<double>(s.span).count());
    z.length = log_between(2, 10 * 86400);
    z.logind_lost = u(r) < 0.1;
    s.sleeps.push_back(z);
  }
  constexpr Fault kFaults[] = {Fault::kRefused, Fault::kReset, Fault::kStalled, Fault::k500,
                               Fault::k503,     Fault::k429,   Fault::kGone,    Fault::kSlow};
  for (int i = 0; i < count(200); ++i) {
    Outage o;
    o.start = seconds(u(r) * std::chrono::duration<double>(s.span).count());
    o.length = log_between(5, 6 * 3600);
    o.fault = kFaults[static_cast<std::size_t>(u(r) * std::size(kFaults)) % std::size(kFaults)];
    if (o.fault == Fault::k503) o.retry_after = seconds(1 + std::floor(u(r) * 60));
    if (o.fault == Fault::k429) o.retry_after = 5s;
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

Scenario shrink(Scenario s, std::uint64_t seed, Bounds bounds, int runs) {
  bool smaller = true;
  while (smaller && runs > 0) {
    smaller = false;
    for (std::size_t i = s.sleeps.size(); i-- > 0 && runs > 0;) {
      Scenario t = s;
      t.sleeps.erase(t.sleeps.begin() + static_cast<std::ptrdiff_t>(i));
      --runs;
      if (run(t, seed, bounds).violation) {
        s = std::move(t);
        smaller = true;
      }
    }
    for (std::size_t i = s.outages.size(); i-- > 0 && runs > 0;) {
      Scenario t = s;
      t.outages.erase(t.outages.begin() + static_cast<std::ptrdiff_t>(i));
      --runs;
      if (run(t, seed, bounds).violation) {
        s = std::move(t);
        smaller = true;
      }
    }
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
