#pragma once
// What the simulations share: their seeds (SIM_SEED=<seed> alone when
// given, a failure's replay; else the fixed ones and `drawn` drawn afresh,
// printed with a failure), their draws, and how they write a moment.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "agent/core/clock.h"

namespace tetherd::sim {

// SIM_DRAWN=<n> draws n instead (the sanitizer preset draws none: the
// default preset's runs explore, the sanitizers check memory on the fixed
// seeds' paths).
inline std::vector<std::uint64_t> seeds(std::vector<std::uint64_t> fixed, int drawn) {
  if (const char* given = std::getenv("SIM_SEED"); given && *given)
    return {std::strtoull(given, nullptr, 10)};
  if (const char* n = std::getenv("SIM_DRAWN"); n && *n) drawn = std::atoi(n);
  std::random_device device;
  for (int i = 0; i < drawn; ++i)
    fixed.push_back((static_cast<std::uint64_t>(device()) << 32) | device());
  return fixed;
}

// How many days each seed lives: SIM_DAYS=<days> when given (longer for the
// firewall's heap; shorter in the sanitizer preset), else `otherwise`.
inline int sim_days(int otherwise) {
  const char* days = std::getenv("SIM_DAYS");
  return days && *days ? std::atoi(days) : otherwise;
}

// A number in [0, 1) from 53 of the generator's bits: the same on every
// standard library (uniform_real_distribution is not), so a seed replays
// anywhere.
inline double unit_of(std::mt19937_64& r) {
  return static_cast<double>(r() >> 11) * 0x1.0p-53;
}

// The smallest scenario that still breaks the same invariant: cut at the
// failure (what comes after cannot have caused it), then runs of events
// removed, halving down to one, while `run(scenario)` still fails the same
// way. `invariant` names a violation; `runs` caps the tries. For the
// simulations whose Scenario holds `events` and whose Verdict says the
// failing event's `step`.
template <class Scenario, class Run, class Name>
Scenario shrink_events(Scenario s, const Run& run, const Name& invariant, int runs) {
  const auto first = run(s);
  if (!first.violation) return s;
  const std::string name = invariant(*first.violation);
  s.events.resize(first.step + 1);
  for (std::size_t chunk = s.events.size() / 2; chunk >= 1 && runs > 0; chunk /= 2) {
    for (std::size_t at = 0; at + chunk <= s.events.size() && runs > 0;) {
      Scenario t = s;
      t.events.erase(t.events.begin() + static_cast<long>(at),
                     t.events.begin() + static_cast<long>(at + chunk));
      --runs;
      const auto v = run(t);
      if (v.violation && invariant(*v.violation) == name) {
        s = std::move(t);
        if (v.step + 1 < s.events.size()) s.events.resize(v.step + 1);
      } else {
        at += chunk;
      }
    }
    if (chunk == 1) break;
  }
  return s;
}

// "day 12 03:04:05" from the simulation's start.
inline std::string clock_text(Duration t) {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(t).count();
  char out[64];
  std::snprintf(out, sizeof out, "day %lld %02lld:%02lld:%02lld", static_cast<long long>(s / 86400),
                static_cast<long long>(s / 3600 % 24), static_cast<long long>(s / 60 % 60),
                static_cast<long long>(s % 60));
  return out;
}

// What a failed seed says: the seed and how to replay it, the violation,
// and the smallest scenario that still fails (`size`: how many events it
// has, in words; `again`: its own violation, none if it passed: flaky).
inline std::string failure_report(std::uint64_t seed, const std::string& violation,
                                  const std::string& size, const std::optional<std::string>& again,
                                  const std::string& described) {
  return "seed " + std::to_string(seed) + " (replay: SIM_SEED=" + std::to_string(seed) +
         " ctest -L simulation): " + violation + "\nthe smallest scenario (" + size +
         ") that still fails" + (again ? ": " + *again : std::string(" (flaky?)")) + "\n" +
         described;
}

}  // namespace tetherd::sim
