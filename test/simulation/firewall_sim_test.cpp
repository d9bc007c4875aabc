// The firewall's year (issue 23, the keeper's part): the real keeper, spec
// intake and configuration loader against a seeded life, invariants after
// every step; an in-memory kernel for a year per seed, real nftables in a
// namespace for a month. A failure prints the seed (replay: SIM_SEED=<seed>
// ctest -L simulation) and the smallest scenario that still breaks it.
#include "test/simulation/firewall_sim.h"

#include <cstdlib>
#include <iostream>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test/simulation/seeds.h"

namespace tetherd::sim::firewall {
namespace {

void live_through(Mode mode, int days, std::vector<std::uint64_t> fixed, int drawn) {
  Totals all;
  std::size_t events = 0, specs = 0, reloads = 0, restarts = 0, flushes = 0;
  std::optional<long> heap;
  int total_days = 0;
  for (std::uint64_t seed : seeds(std::move(fixed), drawn)) {
    const Scenario scenario = generate(seed, days, mode);
    const Verdict v = run(scenario, mode);
    if (v.violation) {
      // Said before shrinking, which may outlast the test's timeout.
      std::cout << "seed " << seed << " failed: " << *v.violation << std::endl;
      if (invariant(*v.violation) == "memory-bounded") {  // the whole life is its cause
        ADD_FAILURE() << "seed " << seed << " (replay: SIM_SEED=" << seed
                      << " ctest -L simulation): " << *v.violation;
        continue;
      }
      const Scenario small = shrink(scenario, mode, false, mode == Mode::kMemory ? 200 : 10);
      const Verdict again = run(small, mode);
      ADD_FAILURE() << failure_report(seed, *v.violation,
                                      std::to_string(small.events.size()) + " events",
                                      again.violation, describe(small));
      continue;
    }
    total_days += days;
    events += scenario.events.size();
    for (const Event& e : scenario.events) {
      specs += e.kind == Kind::kSpec;
      reloads += e.kind == Kind::kReload;
      restarts += e.kind == Kind::kRestart;
      flushes += e.kind == Kind::kFlush || e.kind == Kind::kDrift;
    }
    all.applied += v.totals.applied;
    all.refused += v.totals.refused;
    all.kernel_refused += v.totals.kernel_refused;
    all.retried += v.totals.retried;
    all.reloads_rejected += v.totals.reloads_rejected;
    all.rejudged += v.totals.rejudged;
    all.overtaken += v.totals.overtaken;
    all.joined += v.totals.joined;
    all.repairs += v.totals.repairs;
    all.largest = std::max(all.largest, v.totals.largest);
    if (v.totals.heap_growth)
      heap = std::max(heap.value_or(*v.totals.heap_growth), *v.totals.heap_growth);
  }
  if (::testing::Test::HasFailure()) return;
  // The run must have met the cases it is about, or it proved little (a
  // month on the real kernel meets fewer of them).
  EXPECT_GT(all.applied, 0u);
  EXPECT_GT(all.repairs, 0u);
  EXPECT_GT(all.reloads_rejected, 0u);
  if (mode == Mode::kMemory) {
    EXPECT_GT(all.kernel_refused, 0u);
    EXPECT_GT(all.retried, 0u) << "no failed apply was taken on a re-delivery";
    EXPECT_GT(all.rejudged, 0u) << "no refused spec was taken after a reload";
    EXPECT_GT(all.overtaken, 0u) << "no update was overtaken by a newer one";
    EXPECT_GT(all.joined, 0u) << "no spec joined the apply in flight";
  }
  std::cout << "simulated " << total_days << " days of the firewall ("
            << (mode == Mode::kMemory ? "in-memory kernel" : "real nftables") << "): " << events
            << " events, " << specs << " specs (" << all.applied << " applied, " << all.refused
            << " refused, " << all.kernel_refused << " refused by the kernel, " << all.retried
            << " taken on a re-delivery, " << all.rejudged << " after a reload, " << all.overtaken
            << " overtaken, " << all.joined << " joined the apply in flight), " << reloads
            << " reloads (" << all.reloads_rejected << " rejected), " << restarts << " restarts, "
            << flushes << " flushes and drifts (" << all.repairs << " repairs), largest set "
            << all.largest << ", heap growth "
            << (heap ? std::to_string(*heap) + " B" : std::string("not measured (sanitizer)"))
            << ": all invariants held\n";
}

TEST(FirewallSimulation, AYearOfSpecsReloadsRestartsAndFlushesHoldsEveryInvariant) {
  // SIM_DAYS: a longer life per seed (the memory invariant over it).
  live_through(Mode::kMemory, sim_days(365), {1, 2, 3}, 2);
}

TEST(FirewallSimulation, AMonthOnRealNftablesHoldsEveryInvariant) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: a network namespace and nft tables";
  live_through(Mode::kNftables, 30, {1}, 0);
}

// The checker's own test: a monitor that never reconciles after someone
// else's flush must be caught, and the scenario shrunk to that flush.
TEST(FirewallSimulation, ADeafMonitorIsCaughtAndShrunkToTheFlush) {
  const Scenario scenario = generate(7, 60, Mode::kMemory);
  const Verdict v = run(scenario, Mode::kMemory, /*sabotage=*/true);
  ASSERT_TRUE(v.violation.has_value());
  EXPECT_EQ(invariant(*v.violation), "firewall-in-force") << *v.violation;
  const Scenario small = shrink(scenario, Mode::kMemory, /*sabotage=*/true);
  ASSERT_EQ(small.events.size(), 1u) << describe(small);
  EXPECT_EQ(small.events[0].kind, Kind::kFlush);
  EXPECT_FALSE(run(scenario, Mode::kMemory).violation) << "the same life, the monitor listening";
}

// The same seed, the same life, event for event, and the same run.
TEST(FirewallSimulation, ASeedReplaysExactly) {
  const Scenario a = generate(42, 30, Mode::kMemory);
  const Scenario b = generate(42, 30, Mode::kMemory);
  ASSERT_EQ(describe(a), describe(b));
  EXPECT_NE(describe(a), describe(generate(43, 30, Mode::kMemory)));
  const Verdict x = run(a, Mode::kMemory), y = run(b, Mode::kMemory);
  EXPECT_EQ(x.violation, y.violation);
  EXPECT_EQ(x.totals.steps, y.totals.steps);
  EXPECT_EQ(x.totals.applied, y.totals.applied);
  EXPECT_EQ(x.totals.refused, y.totals.refused);
  EXPECT_EQ(x.totals.kernel_refused, y.totals.kernel_refused);
  EXPECT_EQ(x.totals.retried, y.totals.retried);
  EXPECT_EQ(x.totals.rejudged, y.totals.rejudged);
  EXPECT_EQ(x.totals.repairs, y.totals.repairs);
  EXPECT_EQ(x.totals.largest, y.totals.largest);
}

}  // namespace
}  // namespace tetherd::sim::firewall
