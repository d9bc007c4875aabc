#include "agent/core/backoff.h"

#include <cmath>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(BackoffTest, CeilingDoublesFromBaseUpToCap) {
  const BackoffPolicy p{seconds(1), seconds(60)};
  const Duration expected[] = {seconds(1),  seconds(2),  seconds(4),  seconds(8),
                               seconds(16), seconds(32), seconds(60), seconds(60)};
  for (unsigned attempt = 0; attempt < std::size(expected); ++attempt)
    EXPECT_EQ(backoff_ceiling(p, attempt), expected[attempt]) << "attempt " << attempt;
}

TEST(BackoffTest, CeilingDoesNotOverflowAfterHoursOfFailures) {
  const BackoffPolicy p{seconds(1), seconds(60)};
  EXPECT_EQ(backoff_ceiling(p, 100000), seconds(60));
  EXPECT_EQ(backoff_ceiling(p, ~0u), seconds(60));
}

TEST(BackoffTest, FullJitterSpansZeroToCeiling) {
  const BackoffPolicy p{seconds(1), seconds(60)};
  EXPECT_EQ(full_jitter(p, 3, 0.0), Duration::zero());
  EXPECT_EQ(full_jitter(p, 3, 0.5), seconds(4));
  EXPECT_EQ(full_jitter(p, 0, 0.25), milliseconds(250));
  EXPECT_LT(full_jitter(p, 3, 0.999999), seconds(8));
}

TEST(BackoffTest, OutOfRangeRandomIsClampedIntoTheWindow) {
  const BackoffPolicy p{seconds(1), seconds(60)};
  EXPECT_EQ(full_jitter(p, 2, -1.0), Duration::zero());
  EXPECT_EQ(full_jitter(p, 2, std::nan("")), Duration::zero());
  EXPECT_LT(full_jitter(p, 2, 1.0), seconds(4));
  EXPECT_GT(full_jitter(p, 2, 7.0), seconds(3));
}

TEST(BackoffTest, RetryAfterIsAFloorAndIsBounded) {
  const BackoffPolicy p{seconds(1), seconds(60), std::chrono::minutes(10)};
  // Never sooner than asked; above it, at least half of it more of jitter.
  EXPECT_EQ(retry_delay(p, 0, seconds(8), 0.0), seconds(8));
  EXPECT_EQ(retry_delay(p, 0, seconds(8), 0.5), seconds(10));
  // Later in a streak the backoff's window is wider than that: a brownout
  // that lasts is backed off from.
  EXPECT_EQ(retry_delay(p, 5, seconds(8), 0.5), seconds(24));
  EXPECT_EQ(retry_delay(p, 0, seconds(0), 0.0), seconds(1)) << "Retry-After: 0 is not a busy loop";
  EXPECT_EQ(retry_delay(p, 0, std::chrono::hours(5), 0.0), std::chrono::minutes(10));
  EXPECT_EQ(retry_delay(p, 0, std::chrono::hours(5), 0.5), std::chrono::minutes(12) + seconds(30));
  EXPECT_EQ(retry_delay(p, 1, std::nullopt, 0.5), seconds(1));
}

TEST(BackoffTest, NodesToldTheSameRetryAfterComeBackSpreadOut) {
  // The lock-step a fleet falls into when every node waits exactly what
  // the server said: their delays now cover a window as wide as half the
  // wait, at the first try already.
  const BackoffPolicy p{seconds(1), seconds(60), std::chrono::minutes(10)};
  Duration lo = Duration::max(), hi = Duration::min();
  for (int i = 0; i < 100; ++i) {
    const Duration d = retry_delay(p, 0, seconds(30), i / 100.0);
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  EXPECT_EQ(lo, seconds(30));
  EXPECT_GE(hi - lo, seconds(14));
}

TEST(BackoffTest, ZeroBaseMeansNoWait) {
  const BackoffPolicy p{Duration::zero(), seconds(60)};
  EXPECT_EQ(full_jitter(p, 10, 0.9), Duration::zero());
}

}  // namespace
}  // namespace tetherd
