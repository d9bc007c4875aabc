#include "agent/core/duration.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;

struct Good {
  const char* text;
  Duration want;
  friend std::ostream& operator<<(std::ostream& o, const Good& g) { return o << g.text; }
};

class ParseDurationGood : public ::testing::TestWithParam<Good> {};

TEST_P(ParseDurationGood, Parses) {
  auto got = parse_duration(GetParam().text);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(*got, GetParam().want) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseDurationGood,
    ::testing::Values(Good{"0", 0s}, Good{"0s", 0s}, Good{"10s", 10s}, Good{"1h30m", 1h + 30min},
                      Good{"720h", 720h}, Good{"1.5h", 90min}, Good{"250ms", 250ms},
                      Good{"1m30s500ms", 90s + 500ms}, Good{".5s", 500ms}, Good{"1.s", 1s},
                      Good{"3us", 3us}, Good{"3\xC2\xB5s", 3us}, Good{"7ns", 7ns},
                      Good{"2h45m10.25s", 2h + 45min + 10250ms}, Good{"2562047h", 2562047h}));

struct Bad {
  const char* text;
  const char* message;
  friend std::ostream& operator<<(std::ostream& o, const Bad& b) { return o << b.text; }
};

class ParseDurationBad : public ::testing::TestWithParam<Bad> {};

TEST_P(ParseDurationBad, ExplainsWhy) {
  auto got = parse_duration(GetParam().text);
  ASSERT_FALSE(got.has_value()) << GetParam().text;
  EXPECT_EQ(got.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseDurationBad,
    ::testing::Values(
        Bad{"", "empty duration (use e.g. 10s, 1h30m)"},
        Bad{"10", "invalid duration \"10\": missing unit (ns, us, ms, s, m, h), e.g. 10s"},
        Bad{"10x", "invalid duration \"10x\": unknown unit \"x\" (use ns, us, ms, s, m, h)"},
        Bad{"1d", "invalid duration \"1d\": unknown unit \"d\" (use ns, us, ms, s, m, h)"},
        Bad{"-5s", "invalid duration \"-5s\": a duration cannot have a sign"},
        Bad{"+5s", "invalid duration \"+5s\": a duration cannot have a sign"},
        Bad{"s", "invalid duration \"s\": expected a number"},
        Bad{".s", "invalid duration \".s\": expected a number"},
        Bad{"1h 30m", "invalid duration \"1h 30m\": unexpected \" \" at offset 2"},
        Bad{"2562048h", "invalid duration \"2562048h\": too large"},
        Bad{"99999999999999999999s", "invalid duration \"99999999999999999999s\": too large"},
        Bad{"2562047h2562047h", "invalid duration \"2562047h2562047h\": too large"},
        // The whole hours fit; the fraction pushes them past the maximum.
        Bad{"2562047.99999h", "invalid duration \"2562047.99999h\": too large"}));

TEST(FormatDuration, ShortestGoSpelling) {
  EXPECT_EQ(format_duration(0s), "0s");
  EXPECT_EQ(format_duration(10s), "10s");
  EXPECT_EQ(format_duration(90min), "1h30m");
  EXPECT_EQ(format_duration(720h), "720h");
  EXPECT_EQ(format_duration(1h + 1s), "1h1s");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(250ms), "250ms");
  EXPECT_EQ(format_duration(3us), "3us");
  EXPECT_EQ(format_duration(7ns), "7ns");
}

TEST(FormatDuration, RoundTripsThroughParse) {
  for (Duration d : {Duration(1ns), Duration(999ms), Duration(61s), Duration(8760h),
                     Duration(1h + 2min + 3s + 4ms)}) {
    auto back = parse_duration(format_duration(d));
    ASSERT_TRUE(back.has_value()) << format_duration(d);
    EXPECT_EQ(*back, d);
  }
}

}  // namespace
}  // namespace tetherd
