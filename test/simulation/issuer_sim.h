#pragma once
// A deterministic simulation of linkerd's issuer over a node's year (issue
// 23, its third step): the real IssuerRotation (read, judge, mint, write,
// confirm or restart the identity controller) and its real HTTP client,
// answered in process by the test API server's REST semantics (its Store
// and RestApi: resourceVersions, 409 Conflict, merge patches), on
// simulated time, with the daemon's triggers around it (a pass at start,
// on every resume, on a step of the wall clock, every hour; a copy of
// Daemon's wiring, the daemon itself needs its other parts). Seeded and
// reproducible.
//
// The world: a node that sleeps (seconds to 10 days; logind's signal lost
// sometimes), k3s down (a restart, an outage), tetherd restarted, a wall
// clock that is wrong for a while (a reboot with a dead RTC, a bad NTP
// answer) and then stepped right, someone else writing the Secret while
// tetherd does (409), an identity controller that does not say
// IssuerUpdated for a while, and an operator who replaces the trust anchor
// on a schedule of their own (sometimes after it expired), keeping the old
// one in the bundle for a while as linkerd's rotation procedure asks.
//
// After every step the invariants are checked against the simulation's own
// account (true time, the anchors it made, the Secret it stores), each
// with a name and a message.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace tetherd::sim::issuer {

enum class Kind {
  kSleep,       // the node sleeps `length`
  kOutage,      // k3s answers nothing (refused) for `length`
  kRestart,     // tetherd stops and starts
  kClockWrong,  // the wall clock is off by `offset` for `length`, then stepped right
  kConflict,    // someone else writes the Secret just before tetherd's next write
  kDeaf,        // the identity controller says no IssuerUpdated for `length`
  kAnchor,      // the operator puts a new anchor in the bundle and its key in the
                // key file; the old one leaves the bundle after `length`
  kSlow,        // k3s is slow for `length` (an SD card's fsync, a node under load):
                // it acts at once, its answer comes `answer` later, and the identity
                // controller, which watches, says IssuerUpdated before it; an answer
                // past the client's 30 s deadline is a timeout to tetherd (a stall)
};
const char* to_string(Kind kind);

struct Event {
  Duration at{};  // on true time, from the start
  Kind kind = Kind::kSleep;
  Duration length{};
  Duration offset{};          // kClockWrong
  bool logind_lost = false;   // kSleep: only the resume check's 10 s tick sees it
  bool with_restart = false;  // kClockWrong: a reboot with a wrong clock
  // kClockWrong: the control plane is out of reach while the clock is
  // wrong, so its Date (the daemon's witness of true time) is not heard.
  bool unwitnessed = false;
  Duration answer{};  // kSlow
  // kSlow: only writes are late (etcd's fsync on a slow disk; reads answer).
  bool writes_only = false;
  // kSlow past the deadline: a write commits when its answer would come
  // (etcd's fsync stalls), after the client gave up on it, or not at all
  // if k3s goes down first; its resourceVersion is judged then.
  bool commits_late = false;
};

struct Scenario {
  int days = 0;
  std::vector<Event> events;
};

// A life of `days`, scaled from a year's: 1000 sleeps, 100 outages of k3s,
// 20 restarts, 12 wrong clocks (±1 minute to ±60 days, for 10 s to 2 h),
// 40 conflicts, 10 deaf spells (1 hour to 4 days), anchors of 120 days replaced every 60 to
// 110 days, one in four late, and k3s slow (each answer 1 to 20 s late)
// for 1 to 30 minutes after one resume in five, and 30 other times for 10
// minutes to 12 hours; and 10 stalls (answers 31 s to 2 minutes late, past
// the client's deadline; half of them of writes only, and, drawn apart,
// half of them committing each write only when its answer would come) of
// 10 minutes to 12 hours.
Scenario generate(std::uint64_t seed, int days);

struct Totals {
  std::size_t passes = 0;     // requests to k3s that read the Secret
  std::size_t rotations = 0;  // Secret writes that took
  std::size_t conflicts = 0;  // 409s on the Secret
  std::size_t restarts = 0;   // of the identity controller (no IssuerUpdated in time)
  std::size_t requests = 0;   // every request to k3s
  std::size_t busiest_hour = 0;
  std::size_t anchors = 0;  // anchors the operator made
  Duration exposed{};       // the longest an issuer was out of force while it could be fixed
  // Issuers written while the node's clock was wrong (no witness of true
  // time heard yet: the control plane's Date), and the longest one minted
  // ahead stayed not yet valid once the clock was right, while no witness
  // could say so.
  std::size_t minted_by_a_wrong_clock = 0;
  Duration wrong_clock_exposure{};
  std::size_t witnessed_rotations = 0;   // of a not-yet-valid issuer, the witness agreeing
  std::size_t slow_rotations = 0;        // written while k3s answered late
  std::size_t late_commits = 0;          // Secret writes k3s judged after the client gave up
  std::size_t late_commits_refused = 0;  // of those, refused then (a write came between)
  std::size_t late_restarts = 0;         // restarts of the controller committed so
  // The longest the identity controller signed with another issuer than
  // the Secret's once tetherd could make sure it loaded it.
  Duration unloaded{};
};

struct Verdict {
  std::optional<std::string> violation;  // the first invariant that failed, and why
  std::size_t step = 0;                  // at which event
  Totals totals;
};

// The invariant's name in a violation ("issuer-in-force").
std::string invariant(const std::string& violation);

// The checker's own tests: the daemon's wiring broken on purpose, so that
// an invariant must fail.
enum class Sabotage {
  kNone,
  kForgetResumes,       // no pass on a resume
  kDeafToControlPlane,  // the rotation is not given the control plane's clock
};
Verdict run(const Scenario& scenario, Sabotage sabotage = Sabotage::kNone);

// The smallest scenario (events removed while it still fails) that still
// violates the same invariant; `runs` caps the tries.
Scenario shrink(Scenario scenario, Sabotage sabotage = Sabotage::kNone, int runs = 150);

std::string describe(const Scenario& scenario);

}  // namespace tetherd::sim::issuer
