#pragma once
// Simulated time: a FakeClock whose timers fire when the test moves it, not
// when the wall clock does. run_for(io, d) runs the event loop for `d` of
// simulated time: whatever is runnable runs; when nothing is, the clock
// jumps to the next timer's expiry. A day of 10 s heartbeats is a loop of
// 8640 steps and no sleeping.
//
// suspend() moves wall and boottime only, as in FakeClock: a timer does
// not fire during a sleep, exactly as Asio's steady_timer does not.
// Real I/O (sockets) still takes real time; this is for what waits on time.

#include <cstdint>
#include <map>
#include <memory>
#include <utility>

#include <boost/asio/append.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "agent/core/timer.h"
#include "test/support/fake_clock.h"

namespace tetherd::test {

class SimClock final : public FakeClock {
 public:
  using FakeClock::FakeClock;
  // Waits still armed are dropped (their handlers destroyed, not called);
  // timers that outlive the clock find nothing left to cancel.
  ~SimClock() override {
    state_->clock = nullptr;
    auto waits = std::move(state_->waits);
    state_->waits.clear();
  }

  std::unique_ptr<TimerBackend> make_timer(
      const boost::asio::any_io_executor& executor) const override {
    return std::make_unique<SimTimer>(state_, executor);
  }

  // Runs `io` for `d` of simulated time (see the top of this file). Returns
  // the handlers run.
  std::size_t run_for(boost::asio::io_context& io, Duration d) {
    const MonoTime until = monotonic() + d;
    std::size_t ran = drain(io);
    for (;;) {
      auto next = state_->waits.begin();
      if (next == state_->waits.end() || next->first.first > until) break;
      if (next->first.first > monotonic()) advance(next->first.first - monotonic());
      fire(*state_, next, {}, /*clear_slot=*/true);
      ran += drain(io);
    }
    if (until > monotonic()) advance(until - monotonic());
    return ran + drain(io);
  }
  // Waits under way (timers armed and waited on).
  std::size_t pending() const { return state_->waits.size(); }

 private:
  using Key = std::pair<MonoTime, std::uint64_t>;  // expiry, then the order armed
  struct Wait {
    TimerBackend::Handler handler;
    boost::asio::any_io_executor executor;
    const void* owner;  // the SimTimer waited on
  };
  // Shared with the timers, so a timer (or a cancellation slot) that
  // outlives the clock touches live memory.
  struct State {
    std::map<Key, Wait> waits;
    std::uint64_t serial = 0;
    const SimClock* clock = nullptr;  // null once the clock is gone
  };

  static std::size_t drain(boost::asio::io_context& io) {
    std::size_t ran = 0;
    for (;;) {
      io.restart();
      const std::size_t n = io.poll();
      if (n == 0) return ran;
      ran += n;
    }
  }

  // `clear_slot`: false when called from the slot's own handler, which must
  // not destroy itself while it runs.
  static void fire(State& state, std::map<Key, Wait>::iterator it, boost::system::error_code ec,
                   bool clear_slot) {
    Wait w = std::move(it->second);
    state.waits.erase(it);
    if (clear_slot) {
      auto slot = boost::asio::get_associated_cancellation_slot(w.handler);
      if (slot.is_connected()) slot.clear();
    }
    // On the handler's own executor (a coroutine's strand, say), as Asio's
    // timers complete: post() honours the associated executor.
    boost::asio::post(w.executor, boost::asio::append(std::move(w.handler), ec));
  }

  class SimTimer final : public TimerBackend {
   public:
    SimTimer(std::shared_ptr<State> state, boost::asio::any_io_executor executor)
        : state_(std::move(state)), executor_(std::move(executor)) {}
    ~SimTimer() override { cancel(); }
    void expires_after(Duration d) override {
      cancel();
      // Saturated, as steady_timer's expiry is; never, once the clock is
      // gone (there is no one to run it).
      if (state_->clock == nullptr) {
        expiry_ = MonoTime::max();
        return;
      }
      const MonoTime now = state_->clock->monotonic();
      expiry_ = d >= MonoTime::max() - now ? MonoTime::max() : now + d;
    }
    void expires_never() override {
      cancel();
      expiry_ = MonoTime::max();
    }
    std::size_t cancel() override {
      std::size_t n = 0;
      for (auto it = state_->waits.begin(); it != state_->waits.end();) {
        auto next = std::next(it);
        if (it->second.owner == this) {
          fire(*state_, it, boost::asio::error::operation_aborted, /*clear_slot=*/true);
          ++n;
        }
        it = next;
      }
      return n;
    }
    void wait(Handler handler) override {
      const Key key{expiry_, state_->serial++};
      auto slot = boost::asio::get_associated_cancellation_slot(handler);
      if (slot.is_connected()) {
        slot.assign([weak = std::weak_ptr<State>(state_), key](boost::asio::cancellation_type) {
          auto state = weak.lock();
          if (!state) return;
          auto it = state->waits.find(key);
          if (it != state->waits.end())
            fire(*state, it, boost::asio::error::operation_aborted, /*clear_slot=*/false);
        });
      }
      state_->waits.emplace(key, Wait{std::move(handler), executor_, this});
    }

   private:
    std::shared_ptr<State> state_;
    boost::asio::any_io_executor executor_;
    MonoTime expiry_{};
  };

  std::shared_ptr<State> state_ = std::make_shared<State>(State{{}, 0, this});
};

}  // namespace tetherd::test
