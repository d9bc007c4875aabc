#pragma once
// Resume from suspend, seen in the clocks: CLOCK_BOOTTIME counts the time
// the machine slept, CLOCK_MONOTONIC does not, so their difference grows by
// exactly the length of each sleep. Checking it needs no logind, so it also
// works in a container. (logind's PrepareForSleep over D-Bus is the other
// way, and comes with the ResumeDetector.)

#include <chrono>
#include <optional>
#include <string>

#include "agent/core/clock.h"

namespace tetherd {

class ClockJumpCheck {
 public:
  // Sleeps shorter than `threshold` are ignored: the two clocks are read
  // one after the other, and a resume that short changes nothing.
  explicit ClockJumpCheck(Duration threshold = std::chrono::seconds(2)) : threshold_(threshold) {}

  // How long the machine slept since the previous call, when it did. The
  // first call only sets the baseline.
  std::optional<Duration> check(MonoTime monotonic, MonoTime boottime);

 private:
  Duration threshold_;
  std::optional<Duration> baseline_;  // boottime - monotonic at the previous call
};

// The wall clock stepped: NTP's first answer on a board with no RTC (it
// booted with the time it saved at shutdown, or 1970), a bad RTC, an
// admin's `date -s`. CLOCK_REALTIME moved against CLOCK_BOOTTIME, which
// nothing sets and which counts sleeps as the wall clock does. NTP's
// slewing moves the wall clock by at most 0.5 ms a second, so more than
// `threshold` between two checks is a step.
class WallStepCheck {
 public:
  explicit WallStepCheck(Duration threshold = std::chrono::seconds(10)) : threshold_(threshold) {}

  // By how much the wall clock stepped since the previous call (negative:
  // back), when it did. The first call only sets the baseline.
  std::optional<Duration> check(WallTime wall, MonoTime boottime);

 private:
  Duration threshold_;
  std::optional<Duration> baseline_;  // wall - boottime at the previous call
};

// What the control plane's clock says, from the Date header of its answers:
// a witness of true time, which a node whose clock is wrong (a bad RTC, a
// board that booted with the time it saved) lacks. Kept against
// CLOCK_BOOTTIME, which counts sleeps as the control plane's clock does and
// which nothing steps, so a witness heard before a step of the node's wall
// clock or a sleep still tells the time after it. A Date has whole seconds
// and arrives a round trip late: the error is good to a few seconds, far
// below `kClockTolerance`.
class ClockWitness {
 public:
  // An answer carrying `server` arrived when CLOCK_BOOTTIME read `boottime`.
  void heard(WallTime server, MonoTime boottime);
  // The node's wall clock minus the control plane's, now; nullopt when
  // nothing was heard within `fresh` (of boottime: a crystal drifts a few
  // seconds a day).
  std::optional<Duration> error(WallTime wall, MonoTime boottime,
                                Duration fresh = std::chrono::hours(24)) const;

 private:
  std::optional<WallTime> server_;
  MonoTime boottime_{};
};

// Beyond this, the node's clock is wrong in the witness's view (linkerd's
// proxies and kube-apiserver themselves take a few minutes of skew). Once
// wrong, it is right again only within kClockAgainTolerance: a Date has
// whole seconds, so an error that sits at the bound would flip with every
// answer.
inline constexpr Duration kClockTolerance = std::chrono::minutes(5);
inline constexpr Duration kClockAgainTolerance = std::chrono::minutes(4);

// Whether the node's clock agrees with the witness, `error` off it, given
// what was said before (nothing yet, agreeing, or not): the bounds above.
bool clock_agrees(Duration error, std::optional<bool> before);

// "this node's wall clock is 3h0m12s ahead of the control plane's (…)", in
// whole seconds, with who to look at: either side may be the wrong one.
std::string clock_disagreement(Duration error);

}  // namespace tetherd
