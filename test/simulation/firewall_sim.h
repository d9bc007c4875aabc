#pragma once
// A deterministic simulation of the firewall's year (issue 23, its second
// step): the real FirewallKeeper and the real spec intake
// (core/spec_intake.h's decide_spec, carried out as Tether::take does) and
// the real configuration loader, against a seeded life of EdgeNode specs
// (valid, undecodable, refused by the node's limits, huge), re-deliveries,
// configuration reloads (good, malformed, and ones the rules in force do
// not fit), restarts (some with a new file), the node's addresses
// changing, the tunnel closing 6443 and opening it again, a kernel that
// refuses an apply, and someone else flushing the ruleset or adding to the
// allowed set. Two modes: an in-memory kernel (a year in seconds), and
// real nftables in a network namespace made for the run.
//
// After every step the invariants are checked against a model of what
// should be true, kept by the simulation itself (not by asking the code
// under test), each with a name and a message.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace tetherd::sim::firewall {

enum class Kind {
  kSpec,       // the control plane's EdgeNode, new
  kEcho,       // the same object again (a status write's MODIFIED, a relist)
  kBurst,      // two or three new specs, each before the keeper has run the last
  kFlush,      // someone else's `nft flush ruleset`; the monitor's reconcile follows
  kDrift,      // someone else adds a stranger to the allowed set; the reconcile follows
  kReconcile,  // the periodic read-back
  kReload,     // a new configuration file (SIGHUP or the file followed)
  kRestart,    // tetherd stopped and started, with the file as it is then
  kAddresses,  // the node's own addresses changed
  kTunnel,     // the tunnel holds its servers (6443 closed to the cloud), or not
};
const char* to_string(Kind kind);

// What the generator made an EdgeNode to be: the model's own knowledge,
// never the code's verdict.
enum class SpecClass { kValid, kHuge, kUndecodable, kMalformedSource, kTooMany, kTooWide, kPort };

// A configuration file as the generator wrote it: what the model expects
// the loader to make of the firewall section.
struct File {
  std::vector<std::uint16_t> ports;
  std::uint32_t max_sources = 4096;
  std::vector<std::string> always_allow;
  std::vector<std::string> allow;
  unsigned min_v4 = 8, min_v6 = 32;
};

struct Event {
  Duration at{};
  Kind kind = Kind::kReconcile;
  std::string text;  // kSpec: the EdgeNode (JSON); kReload, kRestart: the file ("" kept)
  SpecClass spec = SpecClass::kValid;
  bool kernel_refuses = false;       // kSpec: the kernel refuses its apply
  bool file_good = true;             // kReload: the file has no error the loader must find
  std::vector<std::string> sources;  // kSpec, when it decodes: what it asks for
  std::vector<std::uint16_t> ports;
  std::optional<File> file;            // kReload (a good file), kRestart (a new file)
  std::vector<Event> burst;            // kBurst: its specs
  std::vector<std::string> addresses;  // kAddresses
  bool on = false;                     // kTunnel
};

struct Scenario {
  int days = 0;
  std::vector<Event> events;
};

enum class Mode { kMemory, kNftables };

// A life of `days` (scaled from a year's mix: 1500 specs, 3000
// re-deliveries, 200 bursts, 1000 reconciles, 200 reloads, 50 restarts, 100 flushes,
// 100 drifts, 300 address changes, 200 tunnel changes). The real kernel's
// huge sets are smaller (1 000 sources, not 3 000): it is slower, not
// different.
Scenario generate(std::uint64_t seed, int days, Mode mode);

struct Totals {
  std::size_t steps = 0;
  std::size_t applied = 0;           // updates the keeper took
  std::size_t refused = 0;           // by the node's limits, or undecodable
  std::size_t kernel_refused = 0;    // applies the kernel refused
  std::size_t retried = 0;           // those taken on a re-delivery
  std::size_t reloads_rejected = 0;  // by the loader or by the rules in force
  std::size_t rejudged = 0;
  std::size_t overtaken = 0;  // updates a newer one overtook before they started
  std::size_t joined = 0;     // specs that joined the apply in flight (kJoin)          // refused
                              // specs taken after a reload
  std::size_t repairs = 0;    // drift the reconciles found
  std::size_t largest = 0;    // the largest set in force
  std::optional<long> heap_growth;  // bytes in use, the end vs a tenth in (none: not measured)
};

struct Verdict {
  std::optional<std::string> violation;  // the first invariant that failed, and why
  std::size_t step = 0;                  // at which event
  Totals totals;
};

// The invariant's name in a violation ("state-file-agrees").
std::string invariant(const std::string& violation);

// `sabotage`: the checker's own test; the simulation forgets the
// reconcile after someone else's flush, so an invariant must fail.
Verdict run(const Scenario& scenario, Mode mode, bool sabotage = false);

// The smallest scenario (events removed while it still fails) that still
// violates the same invariant; `runs` caps the tries.
Scenario shrink(Scenario scenario, Mode mode, bool sabotage = false, int runs = 200);

std::string describe(const Scenario& scenario);

}  // namespace tetherd::sim::firewall
