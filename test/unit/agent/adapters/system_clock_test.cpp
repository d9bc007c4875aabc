#include "agent/adapters/system_clock.h"

#include <gtest/gtest.h>

#include "test/support/fake_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

TEST(SystemClock, BoottimeNeverLagsMonotonic) {
  SystemClock clock;
  const MonoTime mono = clock.monotonic();
  const MonoTime boot = clock.boottime();
  EXPECT_GE(boot, mono) << "CLOCK_BOOTTIME includes suspended time, so it is never behind";
  EXPECT_GT(clock.wall().time_since_epoch(), std::chrono::hours(24 * 365 * 50));
}

TEST(FakeClock, SuspendMovesWallAndBoottimeButNotMonotonic) {
  test::FakeClock clock;
  const auto wall0 = clock.wall();
  const auto mono0 = clock.monotonic();
  const auto boot0 = clock.boottime();
  clock.advance(10s);
  clock.suspend(72h);
  EXPECT_EQ(clock.wall() - wall0, 72h + 10s);
  EXPECT_EQ(clock.monotonic() - mono0, 10s);
  EXPECT_EQ(clock.boottime() - boot0, 72h + 10s);
  clock.step_wall(-1h);
  EXPECT_EQ(clock.wall() - wall0, 71h + 10s);
  EXPECT_EQ(clock.boottime() - boot0, 72h + 10s);
}

}  // namespace
}  // namespace tetherd
