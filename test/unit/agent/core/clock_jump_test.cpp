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

}  // namespace
}  // namespace tetherd
