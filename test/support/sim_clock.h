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

  std::unique_ptr<TimerBackend> make_timer(
      const boost::asio::any_io_executor& executor) const override {
    return std::make_unique<SimTimer>(const_cast<SimClock&>(*this), executor);
  }

  // Runs `io` for `d` of simulated time (see the top of this file). Returns
  // the handlers run.
  std::size_t run_for(boost::asio::io_context& io, Duration d) {
    const MonoTime until = monotonic() + d;
    std::size_t ran = drain(io);
    for (;;) {
      auto next = waits_.begin();
      if (next == waits_.end() || next->first.first > until) break;
      if (next->first.first > monotonic()) advance(next->first.first - monotonic());
      fire(next, {});
      ran += drain(io);
    }
    if (until > monotonic()) advance(until - monotonic());
    return ran + drain(io);
  }
  // Waits under way (timers armed and waited on).
  std::size_t pending() const { return waits_.size(); }

 private:
  using Key = std::pair<MonoTime, std::uint64_t>;  // expiry, then the order armed
  struct Wait {
    TimerBackend::Handler handler;
    boost::asio::any_io_executor executor;
    const void* owner;  // the SimTimer waited on
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

  void fire(std::map<Key, Wait>::iterator it, boost::system::error_code ec) {
    Wait w = std::move(it->second);
    waits_.erase(it);
    auto slot = boost::asio::get_associated_cancellation_slot(w.handler);
    if (slot.is_connected()) slot.clear();
    // On the handler's own executor (a coroutine's strand, say), as Asio's
    // timers complete: post() honours the associated executor.
    boost::asio::post(w.executor, boost::asio::append(std::move(w.handler), ec));
  }

  class SimTimer final : public TimerBackend {
   public:
    SimTimer(SimClock& clock, boost::asio::any_io_executor executor)
        : clock_(clock), executor_(std::move(executor)) {}
    ~SimTimer() override { cancel(); }
    void expires_after(Duration d) override {
      cancel();
      expiry_ = clock_.monotonic() + d;
    }
    void expires_never() override {
      cancel();
      expiry_ = MonoTime::max();
    }
    std::size_t cancel() override {
      std::size_t n = 0;
      for (auto it = clock_.waits_.begin(); it != clock_.waits_.end();) {
        auto next = std::next(it);
        if (it->second.owner == this) {
          clock_.fire(it, boost::asio::error::operation_aborted);
          ++n;
        }
        it = next;
      }
      return n;
    }
    void wait(Handler handler) override {
      const Key key{expiry_, clock_.serial_++};
      auto slot = boost::asio::get_associated_cancellation_slot(handler);
      if (slot.is_connected()) {
        slot.assign([clock = &clock_, key](boost::asio::cancellation_type) {
          auto it = clock->waits_.find(key);
          if (it != clock->waits_.end()) clock->fire(it, boost::asio::error::operation_aborted);
        });
      }
      clock_.waits_.emplace(key, Wait{std::move(handler), executor_, this});
    }

   private:
    SimClock& clock_;
    boost::asio::any_io_executor executor_;
    MonoTime expiry_{};
  };

  std::map<Key, Wait> waits_;
  std::uint64_t serial_ = 0;
};

}  // namespace tetherd::test
