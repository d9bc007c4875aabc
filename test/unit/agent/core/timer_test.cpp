// Timers made from the injected clock (core/timer.h): the real backend on
// Asio's steady_timer, and the simulated one (test/support/sim_clock.h)
// that the simulation and the day-long tests run on. Both must keep the
// steady_timer contract the app layer relies on.

#include "agent/core/timer.h"

#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/system_clock.h"
#include "test/support/sim_clock.h"

namespace tetherd {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using boost::system::error_code;
using test::SimClock;

TEST(SimTimerTest, WaitsFireInExpiryOrderWhenTheClockGetsThere) {
  asio::io_context io;
  SimClock clock;
  Timer late(io, clock), early(io, clock);
  std::vector<std::string> fired;
  late.expires_after(20s);
  early.expires_after(5s);
  late.async_wait([&](error_code ec) { fired.push_back("late:" + ec.message()); });
  early.async_wait([&](error_code ec) { fired.push_back("early:" + ec.message()); });
  const MonoTime start = clock.monotonic();

  clock.run_for(io, 4s);
  EXPECT_TRUE(fired.empty()) << "nothing is due at 4 s";
  EXPECT_EQ(clock.monotonic() - start, Duration(4s));
  clock.run_for(io, 16s);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], "early:" + error_code().message());
  EXPECT_EQ(fired[1], "late:" + error_code().message());
  EXPECT_EQ(clock.pending(), 0u);
}

TEST(SimTimerTest, CancelAndRearmingAbortTheWaitUnderWayAsSteadyTimerDoes) {
  asio::io_context io;
  SimClock clock;
  Timer t(io, clock);
  std::vector<error_code> results;
  auto record = [&](error_code ec) { results.push_back(ec); };

  t.expires_after(10s);
  t.async_wait(record);
  EXPECT_EQ(t.cancel(), 1u);
  clock.run_for(io, 0s);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0], asio::error::operation_aborted);

  t.async_wait(record);
  t.expires_after(30s);  // re-arming aborts the wait under way
  t.async_wait(record);
  clock.run_for(io, 29s);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1], asio::error::operation_aborted);
  clock.run_for(io, 1s);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[2]) << "the new expiry is honoured";

  t.expires_never();
  t.async_wait(record);
  clock.run_for(io, 24h * 365);
  EXPECT_EQ(results.size(), 3u) << "expires_never never fires";
  EXPECT_EQ(t.cancel(), 1u);
  clock.run_for(io, 0s);
  EXPECT_EQ(results.size(), 4u);
}

TEST(SimTimerTest, ASuspendDoesNotFireATimerAsTheMonotonicClockStandsStill) {
  asio::io_context io;
  SimClock clock;
  Timer t(io, clock);
  bool fired = false;
  t.expires_after(10s);
  t.async_wait([&](error_code) { fired = true; });
  clock.suspend(72h);
  clock.run_for(io, 0s);
  EXPECT_FALSE(fired) << "three days asleep, and the 10 s timer still waits";
  clock.run_for(io, 10s);
  EXPECT_TRUE(fired);
}

// The daemon's waits race a timer against another operation (`a || b`):
// the loser is cancelled through its slot, and a destroyed timer leaves
// nothing behind.
TEST(SimTimerTest, ATimerInARaceIsCancelledWhenTheOtherSideWins) {
  using namespace asio::experimental::awaitable_operators;
  asio::io_context io;
  SimClock clock;
  Timer deadline(io, clock), event(io, clock);
  int winner = -1;
  deadline.expires_after(1h);
  event.expires_after(5s);
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto r = co_await (deadline.async_wait(asio::as_tuple(asio::use_awaitable)) ||
                           event.async_wait(asio::as_tuple(asio::use_awaitable)));
        winner = static_cast<int>(r.index());
      },
      asio::detached);
  clock.run_for(io, 5s);
  EXPECT_EQ(winner, 1);
  EXPECT_EQ(clock.pending(), 0u) << "the deadline's wait was cancelled, not left armed";

  {
    Timer gone(io, clock);
    gone.expires_after(1s);
    gone.async_wait([](error_code) {});
    EXPECT_EQ(clock.pending(), 1u);
  }
  clock.run_for(io, 0s);
  EXPECT_EQ(clock.pending(), 0u) << "a destroyed timer cancels its waits";
}

// A test that ends with waits armed: the clock may go first, and the
// timers (and a race's cancellation slot) that outlive it stay safe.
TEST(SimTimerTest, TimersAndRacesOutliveTheirClockSafely) {
  using namespace asio::experimental::awaitable_operators;
  asio::io_context io;
  auto clock = std::make_unique<SimClock>();
  Timer survivor(io, *clock);
  survivor.expires_after(1h);
  bool called = false;
  survivor.async_wait([&](error_code) { called = true; });
  {
    Timer a(io, *clock), b(io, *clock);
    a.expires_after(1h);
    b.expires_after(2h);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          co_await (a.async_wait(asio::as_tuple(asio::use_awaitable)) ||
                    b.async_wait(asio::as_tuple(asio::use_awaitable)));
        },
        asio::detached);
    clock->run_for(io, 0s);
    EXPECT_EQ(clock->pending(), 3u);
    clock.reset();  // the waits are dropped, not called
  }
  EXPECT_FALSE(called);
  EXPECT_EQ(survivor.cancel(), 0u) << "nothing left to cancel";
  survivor.expires_after(1s);  // re-armed without a clock: never fires
  survivor.async_wait([&](error_code) { called = true; });
  io.run();
  EXPECT_FALSE(called);
}

TEST(SimTimerTest, AnExpiryBeyondTheClocksRangeIsNever) {
  asio::io_context io;
  SimClock clock;
  Timer t(io, clock);
  bool fired = false;
  t.expires_after(Duration::max());
  t.async_wait([&](error_code ec) { fired = !ec; });
  clock.run_for(io, 24h * 365 * 10);
  EXPECT_FALSE(fired) << "a saturated expiry, not an overflow that fires at once";
  t.cancel();
  clock.run_for(io, 0s);
}

// A loop of 10 s waits for a simulated day: 8640 turns, no real time.
TEST(SimTimerTest, ASimulatedDayOfTenSecondTicksTakesNoRealTime) {
  asio::io_context io;
  SimClock clock;
  Timer t(io, clock);
  int ticks = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          t.expires_after(10s);
          auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
          if (ec) co_return;
          ++ticks;
        }
      },
      asio::detached);
  clock.run_for(io, 24h);
  EXPECT_EQ(ticks, 8640);
  EXPECT_EQ(clock.pending(), 1u) << "the next tick, armed";
  t.cancel();
  clock.run_for(io, 0s);
  EXPECT_EQ(clock.pending(), 0u);
}

// The real backend keeps the same contract on a real io_context.
TEST(SteadyTimerBackendTest, FiresAndCancelsOnTheRealMonotonicClock) {
  asio::io_context io;
  SystemClock clock;
  Timer t(io, clock);
  std::vector<error_code> results;
  t.expires_after(0s);
  t.async_wait([&](error_code ec) { results.push_back(ec); });
  io.run();
  io.restart();
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0]);

  t.expires_never();
  t.async_wait([&](error_code ec) { results.push_back(ec); });
  EXPECT_EQ(t.cancel(), 1u);
  io.run();
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[1], asio::error::operation_aborted);
}

}  // namespace
}  // namespace tetherd
