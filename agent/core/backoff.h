#pragma once
// How long to wait before trying the network again. Pure: the random number
// is an argument, so the policy is tested without a network or a clock
// (osquery keeps retry policy apart from the call that talks to the network;
// so do we).
//
// Full jitter ("Exponential Backoff And Jitter", AWS Architecture Blog): the
// delay is uniform in [0, min(cap, base * 2^attempt)). Ten thousand nodes
// that lost the control plane together do not come back in lock step.

#include <chrono>
#include <functional>
#include <optional>

#include "agent/core/clock.h"

namespace tetherd {

struct BackoffPolicy {
  Duration base = std::chrono::seconds(1);
  Duration cap = std::chrono::seconds(60);
  // A server's Retry-After is honoured up to this; beyond it is a server
  // asking for something unreasonable.
  Duration retry_after_cap = std::chrono::minutes(10);
};

// The jitter's random numbers in [0, 1) where no test hands them in: a
// generator seeded from the system's entropy, one per caller.
std::function<double()> seeded_unit_random();

// A random number taken into [0, 1): NaN and below 0 as 0, 1 and above as
// the largest double below 1.
double clamp_unit(double unit);

// The ceiling of the jitter window for `attempt` (0 for the first retry).
Duration backoff_ceiling(const BackoffPolicy& policy, unsigned attempt);

// A delay uniform in [0, backoff_ceiling): `unit` is a random number in
// [0, 1); values outside are clamped.
Duration full_jitter(const BackoffPolicy& policy, unsigned attempt, double unit);

// The delay before retry number `attempt`: full jitter; or, when the server
// sent a Retry-After (taken as at least `base`, at most retry_after_cap),
// that long and then a jittered share of the larger of the backoff's
// window and half the Retry-After: never sooner than asked, never in step.
Duration retry_delay(const BackoffPolicy& policy, unsigned attempt,
                     std::optional<Duration> retry_after, double unit);

}  // namespace tetherd
