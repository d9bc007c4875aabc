#include "agent/core/clock_jump.h"

#include "agent/core/duration.h"

namespace tetherd {

std::optional<Duration> ClockJumpCheck::check(MonoTime monotonic, MonoTime boottime) {
  const Duration gap = boottime - monotonic;
  const std::optional<Duration> previous = baseline_;
  baseline_ = gap;
  if (!previous) return std::nullopt;
  const Duration slept = gap - *previous;
  if (slept < threshold_) return std::nullopt;
  return slept;
}

std::optional<Duration> WallStepCheck::check(WallTime wall, MonoTime boottime) {
  const Duration gap = std::chrono::duration_cast<Duration>(wall.time_since_epoch()) - boottime;
  const std::optional<Duration> previous = baseline_;
  baseline_ = gap;
  if (!previous) return std::nullopt;
  const Duration step = gap - *previous;
  if (step <= threshold_ && step >= -threshold_) return std::nullopt;
  return step;
}

void ClockWitness::heard(WallTime server, MonoTime boottime) {
  server_ = server;
  boottime_ = boottime;
}

std::optional<Duration> ClockWitness::error(WallTime wall, MonoTime boottime,
                                            Duration fresh) const {
  if (!server_ || boottime < boottime_ || boottime - boottime_ > fresh) return std::nullopt;
  const WallTime true_now =
      *server_ + std::chrono::duration_cast<WallTime::duration>(boottime - boottime_);
  return std::chrono::duration_cast<Duration>(wall - true_now);
}

bool clock_agrees(Duration error, std::optional<bool> before) {
  return std::chrono::abs(error) <= (before == false ? kClockAgainTolerance : kClockTolerance);
}

std::string clock_disagreement(Duration error) {
  const auto seconds = std::chrono::round<std::chrono::seconds>(error);
  return "this node's wall clock is " +
         format_duration(seconds < seconds.zero() ? -seconds : seconds) +
         (seconds < seconds.zero() ? " behind" : " ahead of") +
         " the control plane's (its Date header; is NTP working here, or there?)";
}

}  // namespace tetherd
