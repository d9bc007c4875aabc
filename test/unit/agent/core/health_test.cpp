#include "agent/core/health.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using S = ConditionStatus;
namespace ct = condition_type;

const WallTime kT0 = WallTime{} + 1'800'000'000s;

ProbeResult result(S status, std::string reason = "R", std::string message = "m") {
  return {status, std::move(reason), std::move(message), {}};
}

// A sequence of probe results for one condition, and what the condition
// reads after each round: status, and the round whose time is its
// lastTransitionTime.
struct Round {
  S probe;
  S expect;
  int since;  // index of the round that set lastTransitionTime
};

struct DampingCase {
  const char* name;
  int threshold;
  std::vector<Round> rounds;
};

class Damping : public ::testing::TestWithParam<DampingCase> {};

TEST_P(Damping, ConditionFlipsOnlyAfterTheChangeHolds) {
  const DampingCase& c = GetParam();
  HealthConditions health(c.threshold);
  for (std::size_t i = 0; i < c.rounds.size(); ++i) {
    const Round& r = c.rounds[i];
    health.probed(ct::kK3sReady, result(r.probe), kT0 + std::chrono::seconds(30 * i));
    const Condition* k3s = health.conditions().find(ct::kK3sReady);
    ASSERT_NE(k3s, nullptr);
    EXPECT_EQ(k3s->status, r.expect) << c.name << " round " << i;
    EXPECT_EQ(k3s->last_transition, kT0 + std::chrono::seconds(30 * r.since))
        << c.name << " round " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, Damping,
    ::testing::Values(
        DampingCase{"first result taken at once", 3, {{S::kFalse, S::kFalse, 0}}},
        DampingCase{"no damping at 1",
                    1,
                    {{S::kTrue, S::kTrue, 0}, {S::kFalse, S::kFalse, 1}, {S::kTrue, S::kTrue, 2}}},
        DampingCase{"threshold 0 is 1", 0, {{S::kTrue, S::kTrue, 0}, {S::kFalse, S::kFalse, 1}}},
        DampingCase{"flips on the second round at 2",
                    2,
                    {{S::kTrue, S::kTrue, 0},
                     {S::kFalse, S::kTrue, 0},
                     {S::kFalse, S::kFalse, 2},
                     {S::kFalse, S::kFalse, 2}}},
        DampingCase{"a blip does not flip",
                    2,
                    {{S::kTrue, S::kTrue, 0},
                     {S::kFalse, S::kTrue, 0},
                     {S::kTrue, S::kTrue, 0},
                     {S::kFalse, S::kTrue, 0},
                     {S::kTrue, S::kTrue, 0}}},
        DampingCase{"a change to a third status starts over",
                    2,
                    {{S::kTrue, S::kTrue, 0},
                     {S::kFalse, S::kTrue, 0},
                     {S::kUnknown, S::kTrue, 0},
                     {S::kUnknown, S::kUnknown, 3}}},
        DampingCase{"recovery is damped too",
                    3,
                    {{S::kFalse, S::kFalse, 0},
                     {S::kTrue, S::kFalse, 0},
                     {S::kTrue, S::kFalse, 0},
                     {S::kTrue, S::kTrue, 3}}}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

TEST(HealthConditions, SameStatusNewMessageIsTakenAtOnceWithoutATransition) {
  HealthConditions health(3);
  health.probed(ct::kClockSynchronized, result(S::kTrue, "Synchronized", "max error 10ms"), kT0);
  const auto t = health.probed(ct::kClockSynchronized,
                               result(S::kTrue, "Synchronized", "max error 20ms"), kT0 + 30s);
  EXPECT_TRUE(t.empty());
  const Condition* c = health.conditions().find(ct::kClockSynchronized);
  EXPECT_EQ(c->message, "max error 20ms");
  EXPECT_EQ(c->last_transition, kT0);
}

TEST(HealthConditions, TransitionsNameTheConditionAndReady) {
  HealthConditions health(2);
  auto first = health.probed(ct::kK3sReady, result(S::kTrue, "Ready", "k3s is ready"), kT0);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0], (ConditionTransition{"K3sReady", true, S::kUnknown, S::kTrue, "Ready",
                                           "k3s is ready"}));
  EXPECT_EQ(first[1].type, "Ready");
  EXPECT_TRUE(first[1].first);
  EXPECT_EQ(first[1].to, S::kTrue);

  EXPECT_TRUE(health.probed(ct::kK3sReady, result(S::kFalse, "Timeout"), kT0 + 30s).empty());
  EXPECT_EQ(health.pending(ct::kK3sReady), 1);
  auto flip = health.probed(ct::kK3sReady, result(S::kFalse, "Timeout", "no answer"), kT0 + 60s);
  EXPECT_EQ(health.pending(ct::kK3sReady), 0);
  ASSERT_EQ(flip.size(), 2u);
  EXPECT_EQ(flip[0],
            (ConditionTransition{"K3sReady", false, S::kTrue, S::kFalse, "Timeout", "no answer"}));
  EXPECT_EQ(flip[1].type, "Ready");
  EXPECT_EQ(flip[1].from, S::kTrue);
  EXPECT_EQ(flip[1].to, S::kFalse);
  EXPECT_EQ(flip[1].reason, "K3sNotReady");
}

TEST(HealthConditions, FactsAreNeverDampedAndCancelAPendingProbe) {
  HealthConditions health(3);
  health.probed(ct::kFirewallInSync, result(S::kTrue), kT0);
  health.probed(ct::kFirewallInSync, result(S::kFalse), kT0 + 30s);
  EXPECT_EQ(health.pending(ct::kFirewallInSync), 1);
  auto t = health.reported(ct::kFirewallInSync, S::kFalse, "InvalidSpec", "bad CIDR", kT0 + 40s);
  EXPECT_EQ(health.pending(ct::kFirewallInSync), 0);
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t[0].to, S::kFalse);
  EXPECT_EQ(health.conditions().find(ct::kFirewallInSync)->reason, "InvalidSpec");
}

TEST(HealthConditions, ReadyChangesOnlyWhenItsStatusDoes) {
  HealthConditions health(1);
  health.reported(ct::kConnected, S::kTrue, "Watching", "", kT0);
  // A second True condition changes nothing in Ready's status: one
  // transition (the new condition), not two.
  auto t = health.reported(ct::kClockSynchronized, S::kTrue, "Synchronized", "", kT0 + 1s);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].type, "ClockSynchronized");
  // Unknown makes Ready Unknown.
  t = health.reported(ct::kK3sReady, S::kUnknown, "Timeout", "", kT0 + 2s);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[1].type, "Ready");
  EXPECT_EQ(t[1].to, S::kUnknown);
  EXPECT_EQ(t[1].reason, "K3sReadyUnknown");
}

TEST(HealthConditions, AnUnchangedFactIsNoTransition) {
  HealthConditions health(1);
  health.reported(ct::kConnected, S::kTrue, "Watching", "x", kT0);
  EXPECT_TRUE(health.reported(ct::kConnected, S::kTrue, "Watching", "x", kT0 + 5s).empty());
  EXPECT_EQ(health.conditions().find(ct::kConnected)->last_transition, kT0);
}

}  // namespace
}  // namespace tetherd
