#pragma once
// Resume from suspend, seen in the clocks: CLOCK_BOOTTIME counts the time
// the machine slept, CLOCK_MONOTONIC does not, so their difference grows by
// exactly the length of each sleep. Checking it needs no logind, so it also
// works in a container. (logind's PrepareForSleep over D-Bus is the other
// way, and comes with the ResumeDetector.)

#include <chrono>
#include <optional>

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

}  // namespace tetherd
