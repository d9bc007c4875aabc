#pragma once
// A deterministic simulation of the tether session's life (issue 23, its
// first step: the session's decisions, core/tether_session.h, with the
// Lease's heartbeat and the backoff, on simulated time against a simulated
// cloud). Seeded and reproducible: the same seed and scenario give the
// same run, event for event.
//
// The world: a control plane that is up, or in one of the faults the
// issue lists (refused, reset mid-stream, stalled, 500, 503 and 429 with
// Retry-After, 410 on the watch, slow), and a node that sleeps (logind's
// PrepareForSleep, or, with the signal lost, only the clocks' witness on
// the resume). Asio's timers run on CLOCK_MONOTONIC, which stops during a
// sleep: so do the simulation's. Time advances only when nothing is due.
//
// After every step the invariants are checked, each with a name and a
// message that says what the world and the session were doing.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace tetherd::sim {

// Faults of the cloud while they last: refused, reset as it answers,
// stalled, 500/503/429 (with or without Retry-After), 410 on every watch,
// slow, a reset after the 200 (headers sent, the body cut), 409 on every
// Lease write (someone else writes it); and one that is an instant: a NAT
// that forgets the watch's connection (nothing is said; only the watch's
// idle deadline or a Lease that fails notices).
enum class Fault {
  kRefused,
  kReset,
  kStalled,
  k500,
  k503,
  k429,
  kGone,
  kSlow,
  kResetAfterOk,
  kLeaseConflict,
  kNatDrop
};
const char* to_string(Fault fault);
// Every fault, in the order the generator draws them.
inline constexpr Fault kAllFaults[] = {Fault::kRefused, Fault::kReset,        Fault::kStalled,
                                       Fault::k500,     Fault::k503,          Fault::k429,
                                       Fault::kGone,    Fault::kSlow,         Fault::kResetAfterOk,
                                       Fault::kNatDrop, Fault::kLeaseConflict};

struct Sleep {
  Duration start{};  // on the wall clock, from the simulation's start
  Duration length{};
  bool logind_lost = false;  // no PrepareForSleep: only the resume is seen
};

struct Outage {
  Duration start{};
  Duration length{};
  Fault fault = Fault::kRefused;
  Duration retry_after{};  // 500, 503 and 429; none if zero
};

struct Scenario {
  Duration span{};
  std::vector<Sleep> sleeps;
  std::vector<Outage> outages;
};

// The mix, scaled to `days`: 1000 sleeps a year (seconds to 10
// days, one in ten with logind's signal lost) and 200 outages (seconds to
// hours, every fault).
Scenario generate(std::uint64_t seed, int days);

struct Totals {
  std::uint64_t steps = 0;
  std::uint64_t session_requests = 0;
  std::uint64_t lease_renewals = 0;
  std::uint64_t lease_requests = 0;     // a 409 costs a GET and a PUT more
  std::uint64_t status_writes = 0;      // core/node_status.h's StatusPublisher decides
  std::uint64_t follower_requests = 0;  // every request of the linkerd refs' sessions
  std::uint64_t steady_requests = 0;    // at steady state (awake, the cloud up for 16 minutes)
  Duration steady{};                    // how long that lasted
  std::uint64_t resumes = 0;
  std::uint64_t relists = 0;
  Duration asleep{};
};

struct Verdict {
  std::optional<std::string> violation;  // the first invariant that failed, and why
  Duration at{};                         // when, on the wall clock
  Totals totals;
};

// The invariants' bounds (the checker's own tests tighten them to see it
// fail).
struct Bounds {
  Duration recovery = std::chrono::minutes(2);  // connected after a fault ends
  // Requests a minute at steady state, everything counted (the Lease, the
  // status writes, the session's and the followers' watches), over ten
  // minutes; and in any one minute (a status write and two watches
  // renewed may fall in the same one).
  double steady_per_minute = 7;
  std::size_t any_minute = 10;
  std::size_t followers = 2;  // spec.linkerd's issuerSecretRef and trustBundleRef
};

// The invariant's name in a violation ("connected-soon-after-a-fault").
std::string invariant(const std::string& violation);

// Runs `scenario` with the session's randomness (its jitter) from `seed`.
Verdict run(const Scenario& scenario, std::uint64_t seed, Bounds bounds = {});

// The smallest scenario (events removed one at a time while it still
// fails) that still violates the same invariant with `seed`; `runs` caps
// the tries.
Scenario shrink(Scenario scenario, std::uint64_t seed, Bounds bounds = {}, int runs = 300);

std::string describe(const Scenario& scenario);

}  // namespace tetherd::sim
