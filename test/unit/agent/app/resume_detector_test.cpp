// The ResumeDetector without logind ("none"): the clocks' witness alone, on
// the FakeClock. logind's side is in test/integration/dbus/logind_test.cpp.

#include "agent/app/resume_detector.h"

#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "test/support/fake_clock.h"
#include "test/support/fake_sleep_signal.h"
#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

ResumeDetectorOptions clocks_only() {
  ResumeDetectorOptions options;
  options.bus_address = "none";
  return options;
}

class ResumeDetectorTest : public ::testing::Test {
 protected:
  ResumeDetectorTest() {
    detector_.on_resumed([this](const ResumeEvent& e) { events_.push_back(e); });
    detector_.on_sleep([this](std::function<void()>) { ++sleeps_; });
  }

  boost::asio::io_context io_{1};
  test::FakeClock clock_;
  test::RecordingLog log_;
  ResumeDetector detector_{io_, clock_, log_, clocks_only()};
  std::vector<ResumeEvent> events_;
  int sleeps_ = 0;
};

TEST_F(ResumeDetectorTest, ABoottimeJumpIsOneResumeWithTheTimeSlept) {
  detector_.start();
  clock_.advance(10s);
  detector_.check_clock();
  EXPECT_TRUE(events_.empty()) << "time awake is no sleep";
  clock_.suspend(72h);
  clock_.advance(1s);
  detector_.check_clock();
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].source, ResumeSource::kClockJump);
  EXPECT_EQ(events_[0].slept, 72h);

  clock_.advance(10s);  // the next tick, inside the merge window
  detector_.check_clock();
  EXPECT_EQ(events_.size(), 1u);

  const auto logged = log_.with_event("resumed");
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_EQ(logged[0].priority, Priority::kNotice);
  EXPECT_EQ(logged[0].fields.at("SLEPT_SECONDS"), "259200");
  EXPECT_EQ(logged[0].fields.at("RESUME_SOURCE"), "clock");
  EXPECT_EQ(detector_.stats().resumes, 1u);
  EXPECT_FALSE(detector_.stats().logind);
}

TEST_F(ResumeDetectorTest, ASecondSleepInsideTheWindowIsASecondResume) {
  detector_.start();
  clock_.suspend(1h);
  detector_.check_clock();
  clock_.advance(5s);
  clock_.suspend(10s);  // the lid closed again at once
  detector_.check_clock();
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[1].slept, 10s);
}

TEST_F(ResumeDetectorTest, WithoutLogindNothingIsLoggedAboutItAndNoSleepIsSeen) {
  detector_.start();
  EXPECT_TRUE(log_.with_event("logind-unavailable").empty()) << "\"none\" is a choice";
  EXPECT_EQ(io_.poll(), 0u) << "nothing waits on the loop";
  EXPECT_EQ(sleeps_, 0);
}

TEST_F(ResumeDetectorTest, TheFirstCheckIsTheBaselineAndStopEndsChecks) {
  clock_.suspend(1h);  // before start: not a resume tetherd can know of
  detector_.start();
  EXPECT_TRUE(events_.empty());
  detector_.stop();
  clock_.suspend(1h);
  detector_.check_clock();
  EXPECT_TRUE(events_.empty());
}

// Another word of sleeps than logind's (SleepSignal; the simulation's):
// its lock is let go once the sleep handler says done, and its wake and
// the clocks' jump are one resume.
TEST(ResumeDetectorSignalTest, AGivenSleepSignalIsListenedToAsLogindIs) {
  boost::asio::io_context io{1};
  test::FakeClock clock;
  test::RecordingLog log;
  auto owned = std::make_unique<test::FakeSleepSignal>();
  test::FakeSleepSignal& signal = *owned;
  ResumeDetector detector(io, clock, log, std::move(owned));
  std::function<void()> done;
  std::vector<ResumeEvent> events;
  detector.on_sleep([&](std::function<void()> d) { done = std::move(d); });
  detector.on_resumed([&](const ResumeEvent& e) { events.push_back(e); });
  detector.start();
  ASSERT_TRUE(signal.listening());
  EXPECT_TRUE(detector.stats().logind);

  signal.prepare(true);
  ASSERT_TRUE(done);
  EXPECT_EQ(signal.releases(), 0) << "the sleep waits for the last status";
  done();
  EXPECT_EQ(signal.releases(), 1);
  clock.suspend(2h);
  signal.prepare(false);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].source, ResumeSource::kLogind);
  EXPECT_EQ(events[0].slept, 2h);
  clock.advance(10s);  // the daemon's next tick
  detector.check_clock();
  EXPECT_EQ(events.size(), 1u) << "the clocks' jump was the same resume";

  detector.stop();
  EXPECT_FALSE(signal.listening()) << "let go of at stop";
}

// A sleep handler that never says done loses the lock when the grace runs
// out, and not before: on simulated time, so the order is not a race (the
// D-Bus test checks the same on a real bus with a real 200 ms grace).
TEST(ResumeDetectorSignalTest, AHandlerThatNeverFinishesLosesTheLockAfterTheGrace) {
  boost::asio::io_context io{1};
  test::SimClock clock;
  test::RecordingLog log;
  auto owned = std::make_unique<test::FakeSleepSignal>();
  test::FakeSleepSignal& signal = *owned;
  ResumeDetectorOptions options;
  options.sleep_grace = 3s;
  ResumeDetector detector(io, clock, log, std::move(owned), options);
  int sleeps = 0;
  detector.on_sleep([&](std::function<void()>) { ++sleeps; });  // never calls done
  detector.start();
  signal.prepare(true);
  EXPECT_EQ(sleeps, 1);
  clock.run_for(io, 3s - 1ms);
  EXPECT_EQ(signal.releases(), 0) << "the grace comes first";
  EXPECT_TRUE(log.with_event("sleep-grace-exceeded").empty());
  clock.run_for(io, 1ms);
  EXPECT_EQ(signal.releases(), 1);
  ASSERT_EQ(log.with_event("sleep-grace-exceeded").size(), 1u);
  EXPECT_EQ(log.with_event("sleep-grace-exceeded")[0].priority, Priority::kWarning);
  detector.stop();
}

}  // namespace
}  // namespace tetherd
