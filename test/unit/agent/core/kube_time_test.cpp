#include "agent/core/kube_time.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono;

WallTime at(seconds s, microseconds us = {}) {
  return WallTime(duration_cast<WallTime::duration>(s + us));
}

TEST(KubeTime, TimeIsWholeSecondsInUtc) {
  // 2026-11-21T09:30:05Z
  EXPECT_EQ(format_kube_time(at(seconds(1795253405))), "2026-11-21T09:30:05Z");
  // Fractions are dropped, never rounded up into the next second.
  EXPECT_EQ(format_kube_time(at(seconds(1795253405), microseconds(999999))),
            "2026-11-21T09:30:05Z");
}

TEST(KubeTime, MicroTimeHasSixDecimals) {
  EXPECT_EQ(format_kube_micro_time(at(seconds(1795253405), microseconds(42))),
            "2026-11-21T09:30:05.000042Z");
  EXPECT_EQ(format_kube_micro_time(at(seconds(0))), "1970-01-01T00:00:00.000000Z");
}

TEST(KubeTime, BeforeTheEpochFloorsToThePast) {
  EXPECT_EQ(format_kube_micro_time(at(seconds(-1), microseconds(250000))),
            "1969-12-31T23:59:59.250000Z");
}

TEST(KubeTime, LeapDayAndYearEnd) {
  EXPECT_EQ(format_kube_time(at(seconds(1709164800))), "2024-02-29T00:00:00Z");
  EXPECT_EQ(format_kube_time(at(seconds(1798761599))), "2026-12-31T23:59:59Z");
}

}  // namespace
}  // namespace tetherd
