#include "agent/core/backoff.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

namespace tetherd {

double clamp_unit(double unit) {
  if (!(unit >= 0.0)) return 0.0;  // also NaN
  return unit >= 1.0 ? std::nextafter(1.0, 0.0) : unit;
}

Duration backoff_ceiling(const BackoffPolicy& policy, unsigned attempt) {
  if (policy.base <= Duration::zero()) return Duration::zero();
  Duration ceiling = policy.base;
  // Doubling stops at the cap, so this cannot overflow however large
  // `attempt` grows over hours of an unreachable control plane.
  for (unsigned i = 0; i < attempt && ceiling < policy.cap; ++i)
    ceiling *= 2;
  return std::min(ceiling, policy.cap);
}

Duration full_jitter(const BackoffPolicy& policy, unsigned attempt, double unit) {
  const auto ceiling = backoff_ceiling(policy, attempt);
  return Duration(
      static_cast<Duration::rep>(static_cast<double>(ceiling.count()) * clamp_unit(unit)));
}

Duration retry_delay(const BackoffPolicy& policy, unsigned attempt,
                     std::optional<Duration> retry_after, double unit) {
  // Retry-After: 0 from a server that says it is overloaded is no reason
  // to hammer it: never sooner than the base delay.
  // A floor, not the delay: a server that keeps answering 429 with
  // Retry-After: 5 for hours is still backed off from (the simulation found
  // 12 tries a minute for as long as it lasted).
  // And jittered above the floor: ten thousand nodes told "Retry-After: 30"
  // in the same second do not all come back 30 s later (nor in step with
  // their Lease, which the simulation found). The window above the floor
  // is the backoff's, and never less than half the floor.
  if (!retry_after || *retry_after < Duration::zero()) return full_jitter(policy, attempt, unit);
  const Duration floor =
      std::clamp(*retry_after, policy.base, std::max(policy.base, policy.retry_after_cap));
  const Duration window = std::max(backoff_ceiling(policy, attempt), floor / 2);
  return floor + Duration(static_cast<Duration::rep>(static_cast<double>(window.count()) *
                                                     clamp_unit(unit)));
}

std::function<double()> seeded_unit_random() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace tetherd
