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

TEST(KubeTime, ParsesWhatServersWrite) {
  EXPECT_EQ(parse_kube_time("2026-11-21T09:30:05Z"), at(seconds(1795253405)));
  EXPECT_EQ(parse_kube_time("2026-11-21T09:30:05.000042Z"),
            at(seconds(1795253405), microseconds(42)));
  EXPECT_EQ(parse_kube_time("2026-11-21T10:30:05.5+01:00"),
            at(seconds(1795253405), microseconds(500000)));
  EXPECT_EQ(parse_kube_time("2026-11-21T08:00:05-01:30"), at(seconds(1795253405)));
  // Round trips.
  const WallTime t = at(seconds(1795253405), microseconds(123456));
  EXPECT_EQ(parse_kube_time(format_kube_micro_time(t)), t);
}

TEST(KubeTime, RefusesWhatIsNotRfc3339) {
  for (const char* bad :
       {"", "null", "2026-11-21", "2026-11-21T09:30:05", "2026-11-21 09:30:05Z",
        "2026-11-21T09:30:05.Z", "2026-11-21T09:30:05.1234567890Z", "2026-11-21T09:30:05+0100",
        "2026-11-21T09:30:05+25:00", "2026-13-21T09:30:05Z", "2026-11-21T09:30:05ZZ"})
    EXPECT_FALSE(parse_kube_time(bad).has_value()) << bad;
}

TEST(KubeTime, RefusesTimesThatDoNotExist) {
  // strptime's fields are range-checked one by one, not as a date: these
  // would otherwise roll over into March, the next minute or the next day.
  for (const char* bad : {"2027-02-29T00:00:00Z", "2026-02-30T00:00:00Z", "2026-04-31T12:00:00Z",
                          "2026-11-21T23:59:60Z", "2026-11-21T24:00:00Z", "2026-11- 1T09:30:05Z",
                          "2026-11-21T 9:30:05Z", "+2026-11-21T09:30:0Z"})
    EXPECT_FALSE(parse_kube_time(bad).has_value()) << bad;
  EXPECT_EQ(parse_kube_time("2028-02-29T00:00:00Z"), at(seconds(1835395200)));
}

TEST(KubeTime, RefusesTimesBeyondWhatAWallTimeHolds) {
  // Nanoseconds in 64 bits: 1677-09-21 to 2262-04-11. Go's zero time is
  // refused, not overflowed (UBSan watches this under the asan preset).
  for (const char* far : {"0001-01-01T00:00:00Z", "1600-01-01T00:00:00Z", "2263-01-01T00:00:00Z",
                          "9999-12-31T23:59:59.999999999-23:59"})
    EXPECT_FALSE(parse_kube_time(far).has_value()) << far;
  EXPECT_EQ(parse_kube_time("1700-01-01T00:00:00Z"), at(seconds(-8520336000)));
  EXPECT_EQ(parse_kube_time("2262-01-01T00:00:00Z"), at(seconds(9214646400)));
}

TEST(HttpDate, ReadsTheFormServersSend) {
  // RFC 9110's own example, and one as Go's net/http writes it.
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), at(seconds(784111777)));
  EXPECT_EQ(parse_http_date("Sat, 05 Dec 2026 13:45:00 GMT"),
            parse_kube_time("2026-12-05T13:45:00Z"));
}

TEST(HttpDate, RefusesEverythingElse) {
  for (const char* bad :
       {"", "Sun, 06 Nov 1994 08:49:37", "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994", "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC",
        "Mon, 06 Nov 1994 08:49:37 GMT",  // the 6th was a Sunday
        "Thu, 30 Feb 2026 00:00:00 GMT",  // no such day
        "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 1994 23:59:60 GMT",
        "Sun, 06 Nob 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMTX",
        "Sun, 06 Nov +994 08:49:37 GMT", "Sun, 06 Nov 1994 8:49:37  GMT",
        "Thu, 01 Jan 2263 00:00:00 GMT",  // past what a WallTime holds
        "Fri, 31 Dec 1969 23:59:59 GMT"})
    EXPECT_FALSE(parse_http_date(bad).has_value()) << bad;
}

}  // namespace
}  // namespace tetherd
