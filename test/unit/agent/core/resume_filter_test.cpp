#include "agent/core/resume_filter.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;

constexpr auto kLogind = ResumeSource::kLogind;
constexpr auto kClock = ResumeSource::kClockJump;

// One thing a witness says, at a boottime in seconds.
struct Step {
  enum Kind { kSleep, kResume } kind;
  std::chrono::seconds boottime;
  ResumeSource source = kLogind;
  Duration hint = Duration::zero();
};

Step sleep_at(std::chrono::seconds at) {
  return {Step::kSleep, at};
}
Step resume_at(std::chrono::seconds at, ResumeSource source, Duration hint = Duration::zero()) {
  return {Step::kResume, at, source, hint};
}

struct Case {
  std::string name;
  std::vector<Step> steps;
  std::vector<ResumeEvent> events;
  Duration window = 30s;
};

class ResumeFilterTable : public ::testing::TestWithParam<Case> {};

TEST_P(ResumeFilterTable, MergesWitnessesIntoResumes) {
  const Case& c = GetParam();
  ResumeFilter filter(c.window);
  std::vector<ResumeEvent> events;
  for (const Step& s : c.steps) {
    if (s.kind == Step::kSleep) {
      filter.sleeping(s.boottime);
      EXPECT_TRUE(filter.asleep());
    } else if (auto e = filter.resumed(s.source, s.boottime, s.hint)) {
      events.push_back(*e);
    }
  }
  ASSERT_EQ(events.size(), c.events.size());
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].source, c.events[i].source) << "event " << i;
    EXPECT_EQ(events[i].slept, c.events[i].slept) << "event " << i;
  }
  EXPECT_FALSE(filter.asleep()) << "every case ends awake";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ResumeFilterTable,
    ::testing::Values(
        Case{"LogindThenClockInsideTheWindowIsOneResume",
             {sleep_at(100s), resume_at(3700s, kLogind), resume_at(3705s, kClock, 3600s)},
             {{kLogind, 3600s}}},
        Case{"LogindThenClockOutsideTheWindowIsTwo",
             {sleep_at(100s), resume_at(3700s, kLogind), resume_at(3730s, kClock, 3600s)},
             {{kLogind, 3600s}, {kClock, 3600s}}},
        Case{"ClockThenLogindIsOneResume",
             {sleep_at(100s), resume_at(3700s, kClock, 3598s), resume_at(3702s, kLogind)},
             {{kClock, 3598s}}},
        Case{"ResumeWithoutPrepareForSleepTrueIsStillAResume",  // tetherd started mid-sleep
             {resume_at(500s, kLogind)},
             {{kLogind, 0s}}},
        Case{"TheClocksMeasureBetterThanTheSleepSignal",  // the signal counts the grace too
             {sleep_at(100s), resume_at(7300s, kLogind, 7197s)},
             {{kLogind, 7197s}}},
        Case{"SleptIsMeasuredOnBoottimeFromPrepareForSleep",
             {sleep_at(100s), resume_at(7300s, kLogind)},
             {{kLogind, 7200s}}},
        Case{"ASleepInsideTheWindowIsANewResume",
             {sleep_at(100s), resume_at(160s, kLogind), resume_at(162s, kClock, 58s),
              sleep_at(165s), resume_at(175s, kLogind), resume_at(176s, kClock, 10s)},
             {{kLogind, 60s}, {kLogind, 10s}}},
        Case{"TwoClockJumpsAreTwoSleeps",  // each jump is a sleep of its own
             {resume_at(100s, kClock, 5s), resume_at(110s, kClock, 7s)},
             {{kClock, 5s}, {kClock, 7s}}},
        Case{"EachWitnessTestifiesOncePerResume",
             {resume_at(100s, kClock, 5s), resume_at(101s, kLogind), resume_at(102s, kLogind)},
             {{kClock, 5s}, {kLogind, 0s}}},
        Case{"TheWindowEndsAtItsLength",
             {resume_at(100s, kLogind), resume_at(110s, kClock, 3s)},
             {{kLogind, 0s}, {kClock, 3s}},
             10s},
        Case{"AWiderWindowMerges",
             {resume_at(100s, kLogind), resume_at(150s, kClock, 3s)},
             {{kLogind, 0s}},
             60s}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(ResumeFilter, AsleepFromPrepareForSleepUntilTheResume) {
  ResumeFilter filter;
  EXPECT_FALSE(filter.asleep());
  filter.sleeping(100s);
  EXPECT_TRUE(filter.asleep());
  ASSERT_TRUE(filter.resumed(kClock, 200s, 99s));
  EXPECT_FALSE(filter.asleep());
  EXPECT_FALSE(filter.resumed(kLogind, 201s)) << "the clock already told";
  EXPECT_FALSE(filter.asleep());
}

TEST(ResumeFilter, SourceNamesAreTheJournalValues) {
  EXPECT_EQ(resume_source_name(kLogind), "logind");
  EXPECT_EQ(resume_source_name(kClock), "clock");
}

}  // namespace
}  // namespace tetherd
