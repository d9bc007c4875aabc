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

}  // namespace tetherd
