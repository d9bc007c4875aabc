#include "agent/core/clock_jump.h"

#include <gtest/gtest.h>

#include "test/support/fake_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

std::optional<Duration> check(ClockJumpCheck& c, const test::FakeClock& clock) {
  return c.check(clock.monotonic(), clock.boottime());
}

TEST(ClockJumpCheck, AThreeDaySuspendIsSeenWithItsLength) {
  test::FakeClock clock;
  ClockJumpCheck c;
  EXPECT_FALSE(check(c, clock)) << "the first call sets the baseline";
  clock.advance(10s);
  EXPECT_FALSE(check(c, clock)) << "time passing awake is no sleep";
  clock.suspend(72h);
  clock.advance(1s);
  EXPECT_EQ(check(c, clock), 72h);
  clock.advance(10s);
  EXPECT_FALSE(check(c, clock)) << "reported once";
  clock.suspend(90s);
  EXPECT_EQ(check(c, clock), 90s);
}

TEST(ClockJumpCheck, SleepsUnderTheThresholdAndWallClockStepsAreIgnored) {
  test::FakeClock clock;
  ClockJumpCheck c(2s);
  check(c, clock);
  clock.suspend(1500ms);
  EXPECT_FALSE(check(c, clock));
  clock.step_wall(-24h);  // an admin's `date -s`: not a suspend
  EXPECT_FALSE(check(c, clock));
  clock.suspend(2s);
  EXPECT_EQ(check(c, clock), 2s);
}

std::optional<Duration> step(WallStepCheck& c, const test::FakeClock& clock) {
  return c.check(clock.wall(), clock.boottime());
}

TEST(WallStepCheck, AStepEitherWayIsSeenWithItsSizeOnce) {
  test::FakeClock clock;
  WallStepCheck c;
  EXPECT_FALSE(step(c, clock)) << "the first call sets the baseline";
  clock.advance(10s);
  EXPECT_FALSE(step(c, clock)) << "time passing is no step";
  clock.step_wall(90 * 24h);  // NTP's first answer after a boot in the past
  clock.advance(10s);
  EXPECT_EQ(step(c, clock), 90 * 24h);
  clock.advance(10s);
  EXPECT_FALSE(step(c, clock)) << "reported once";
  clock.step_wall(-2h);
  EXPECT_EQ(step(c, clock), -2h);
}

TEST(WallStepCheck, SleepsAndSlewingAreNoStep) {
  test::FakeClock clock;
  WallStepCheck c(10s);
  step(c, clock);
  clock.suspend(72h);  // the wall clock and boottime both count a sleep
  EXPECT_FALSE(step(c, clock));
  clock.step_wall(5ms);  // NTP's slew between two ticks
  clock.advance(10s);
  EXPECT_FALSE(step(c, clock));
  clock.step_wall(-9s);
  EXPECT_FALSE(step(c, clock)) << "under the threshold";
  clock.step_wall(11s);
  EXPECT_EQ(step(c, clock), 11s);
  clock.step_wall(10s);
  EXPECT_FALSE(step(c, clock)) << "more than the threshold is a step, not the threshold";
}

TEST(ClockWitness, TellsTheNodesErrorAcrossSleepsAndSteps) {
  test::FakeClock clock;
  ClockWitness w;
  EXPECT_FALSE(w.error(clock.wall(), clock.boottime())) << "nothing heard";
  // The node booted 50 days ahead; the control plane says the true time.
  clock.step_wall(50 * 24h);
  w.heard(clock.wall() - 50 * 24h, clock.boottime());
  EXPECT_EQ(w.error(clock.wall(), clock.boottime()), 50 * 24h);
  clock.suspend(3h);  // both clocks count the sleep
  EXPECT_EQ(w.error(clock.wall(), clock.boottime()), 50 * 24h);
  clock.step_wall(-50 * 24h);  // NTP puts it right: no new answer needed
  clock.advance(10s);
  EXPECT_EQ(w.error(clock.wall(), clock.boottime()), Duration::zero());
  clock.suspend(25h);
  EXPECT_FALSE(w.error(clock.wall(), clock.boottime())) << "stale after a day";
  EXPECT_TRUE(w.error(clock.wall(), clock.boottime(), 48h)) << "fresh is the caller's";
}

TEST(ClockWitness, AgreementHasHysteresis) {
  using namespace std::chrono;
  EXPECT_TRUE(clock_agrees(minutes(5), std::nullopt)) << "5 minutes is within";
  EXPECT_FALSE(clock_agrees(-minutes(5) - seconds(1), std::nullopt));
  EXPECT_TRUE(clock_agrees(minutes(4) + seconds(30), true));
  // Once disagreeing, the error must come back under 4 minutes: a Date's
  // whole seconds at the bound do not flip it with every answer.
  EXPECT_FALSE(clock_agrees(minutes(4) + seconds(30), false));
  EXPECT_TRUE(clock_agrees(-minutes(4), false));
}

}  // namespace
}  // namespace tetherd
