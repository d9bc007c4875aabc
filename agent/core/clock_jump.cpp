#include "agent/core/clock_jump.h"

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

}  // namespace tetherd
