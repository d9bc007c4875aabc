#include "agent/tunnel/write_watch.h"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "test/support/sim_clock.h"

namespace tetherd::tunnel {
namespace {

using namespace std::chrono_literals;

class WriteWatchTest : public ::testing::Test {
 protected:
  boost::asio::io_context io_;
  test::SimClock clock_;
  int stuck_ = 0;
  WriteWatch watch_{io_.get_executor(), clock_, 30s, [this] { ++stuck_; }};
};

TEST_F(WriteWatchTest, AWriteThatTakesTheLimitIsStuck) {
  watch_.begin();
  clock_.run_for(io_, 29s);
  EXPECT_EQ(stuck_, 0);
  clock_.run_for(io_, 2s);
  EXPECT_EQ(stuck_, 1);
  clock_.run_for(io_, 5min);
  EXPECT_EQ(stuck_, 1) << "once";
}

TEST_F(WriteWatchTest, WritesThatEndInTimeAreNeverStuckHoweverMany) {
  for (int i = 0; i < 1000; ++i) {
    watch_.begin();
    clock_.run_for(io_, 1s);
    watch_.end();
  }
  clock_.run_for(io_, 5min);
  EXPECT_EQ(stuck_, 0);
}

TEST_F(WriteWatchTest, TheDeadlineRunsFromTheWriteUnderWayNotTheFirst) {
  // Writes of 20 s each, back to back: the timer set for the first fires
  // during the second, which has 10 s left then, and is not stuck.
  watch_.begin();
  clock_.run_for(io_, 20s);
  watch_.end();
  watch_.begin();
  clock_.run_for(io_, 20s);
  EXPECT_EQ(stuck_, 0);
  watch_.end();
  // One that hangs: stuck 30 s after it began.
  watch_.begin();
  clock_.run_for(io_, 29s);
  EXPECT_EQ(stuck_, 0);
  clock_.run_for(io_, 2s);
  EXPECT_EQ(stuck_, 1);
}

TEST_F(WriteWatchTest, AnIdleGapThenAHangingWriteIsCaught) {
  watch_.begin();
  watch_.end();
  clock_.run_for(io_, 10min);  // the timer fired with no write under way
  watch_.begin();
  clock_.run_for(io_, 31s);
  EXPECT_EQ(stuck_, 1);
}

TEST_F(WriteWatchTest, StoppedItCallsNothing) {
  watch_.begin();
  watch_.stop();
  clock_.run_for(io_, 5min);
  watch_.begin();
  clock_.run_for(io_, 5min);
  EXPECT_EQ(stuck_, 0);
}

TEST(WriteWatch, DestroyedWithAWaitUnderWayItCallsNothing) {
  boost::asio::io_context io;
  test::SimClock clock;
  int stuck = 0;
  {
    WriteWatch watch(io.get_executor(), clock, 30s, [&] { ++stuck; });
    watch.begin();
  }
  clock.run_for(io, 5min);
  EXPECT_EQ(stuck, 0);
}

}  // namespace
}  // namespace tetherd::tunnel
