#include "agent/core/host_health.h"

#include <ostream>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

constexpr int kTimeOk = 0, kTimeInsert = 1;
constexpr int kPll = 0x0001;  // STA_PLL: an NTP daemon drives the kernel's loop

struct Case {
  const char* name;
  ClockDiscipline clock;
  ConditionStatus status;
  const char* reason;
  const char* message_has;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

ClockDiscipline clock(int state, int status, std::int64_t max_error_us,
                      std::int64_t est_error_us = 100) {
  return ClockDiscipline{{}, state, status, max_error_us, est_error_us};
}

class ClockSynchronized : public testing::TestWithParam<Case> {};

TEST_P(ClockSynchronized, Judges) {
  const Case& c = GetParam();
  const ProbeResult r = clock_synchronized(c.clock);
  EXPECT_EQ(r.status, c.status) << r.message;
  EXPECT_EQ(r.reason, c.reason);
  EXPECT_NE(r.message.find(c.message_has), std::string::npos) << r.message;
  EXPECT_EQ(r.took, Duration::zero());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ClockSynchronized,
    testing::Values(
        Case{"synchronized", clock(kTimeOk, kPll, 12'345, 250), ConditionStatus::kTrue,
             "Synchronized", "maximum error 12.3 ms, estimated error 250 us"},
        // A leap second pending is still a disciplined clock.
        Case{"leap_second_pending", clock(kTimeInsert, kPll, 1'000), ConditionStatus::kTrue,
             "Synchronized", "1.0 ms"},
        Case{"at_the_bound", clock(kTimeOk, kPll, 5'000'000), ConditionStatus::kTrue,
             "Synchronized", "5.0 s"},
        // What a machine without any NTP daemon reports: the kernel's default.
        Case{"unsync_flag", clock(kClockStateError, kClockStatusUnsync, 16'000'000),
             ConditionStatus::kFalse, "NotSynchronized", "(systemd-timesyncd) or chrony"},
        Case{"unsync_flag_state_ok", clock(kTimeOk, kClockStatusUnsync | kPll, 100),
             ConditionStatus::kFalse, "NotSynchronized", "STA_UNSYNC"},
        Case{"time_error_without_flag", clock(kClockStateError, kPll, 100), ConditionStatus::kFalse,
             "NotSynchronized", "TIME_ERROR"},
        Case{"error_too_large", clock(kTimeOk, kPll, 5'000'001), ConditionStatus::kFalse,
             "ClockErrorTooLarge", "maximum error is 5.0 s, over the 5.0 s"},
        Case{"error_far_too_large", clock(kTimeOk, 0, 9'500'000), ConditionStatus::kFalse,
             "ClockErrorTooLarge", "9.5 s"},
        Case{"kernel_not_asked", ClockDiscipline{"adjtimex: Operation not permitted", 0, 0, 0, 0},
             ConditionStatus::kUnknown, "ClockStateUnknown", "Operation not permitted"}),
    [](const testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ClockSynchronizedMessage, NotSynchronizedSaysWhatToDo) {
  const ProbeResult r = clock_synchronized(clock(kClockStateError, kClockStatusUnsync, 16'000'000));
  EXPECT_NE(r.message.find("no NTP daemon is disciplining the clock"), std::string::npos);
  EXPECT_NE(r.message.find("timedatectl set-ntp true"), std::string::npos);
}

}  // namespace
}  // namespace tetherd
