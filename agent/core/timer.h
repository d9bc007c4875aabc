#pragma once
// Timers on the injected clock. A Timer is made from the Clock that judges
// time (core/clock.h), so whoever hands a part its clock hands it its
// timers too: the daemon's are Asio's steady_timer on CLOCK_MONOTONIC
// (stopping during suspend, as the kernel's monotonic clock does); a
// simulated clock's fire when the test advances it, so a day of heartbeats,
// health rounds and backoffs takes no real time (test/support/sim_clock.h).
// Envoy's TimeSource and its simulated time system are the model.
//
// The interface is steady_timer's, cut to what tetherd uses: expires_after
// (which cancels a wait under way), expires_never, cancel, and async_wait
// with any completion token (a callback, use_awaitable, as_tuple; a wait
// inside `a || b` is cancelled through its cancellation slot).

#include <cstddef>
#include <memory>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/system/error_code.hpp>

#include "agent/core/clock.h"

namespace tetherd {

class TimerBackend {
 public:
  using Handler = boost::asio::any_completion_handler<void(boost::system::error_code)>;
  virtual ~TimerBackend() = default;
  // Sets the expiry `d` from the clock's monotonic now; a wait under way
  // ends with operation_aborted.
  virtual void expires_after(Duration d) = 0;
  // An expiry that never comes (a wait only cancel() ends).
  virtual void expires_never() = 0;
  // Ends every wait under way with operation_aborted; returns how many.
  virtual std::size_t cancel() = 0;
  // Calls `handler` at the expiry (success) or on cancel (operation_aborted),
  // through the handler's associated executor, never from within wait().
  virtual void wait(Handler handler) = 0;
};

// The real one: Asio's steady_timer on `executor`.
std::unique_ptr<TimerBackend> make_steady_timer(const boost::asio::any_io_executor& executor);

class Timer {
 public:
  Timer(const boost::asio::any_io_executor& executor, const Clock& clock)
      : backend_(clock.make_timer(executor)) {}
  template <class ExecutionContext>
  requires requires(ExecutionContext& c) { c.get_executor(); }
  Timer(ExecutionContext& context, const Clock& clock)
      : Timer(boost::asio::any_io_executor(context.get_executor()), clock) {}

  void expires_after(Duration d) { backend_->expires_after(d); }
  void expires_never() { backend_->expires_never(); }
  std::size_t cancel() { return backend_->cancel(); }

  template <class CompletionToken>
  auto async_wait(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
        [](auto handler, TimerBackend* backend) { backend->wait(std::move(handler)); }, token,
        backend_.get());
  }

 private:
  std::unique_ptr<TimerBackend> backend_;
};

}  // namespace tetherd
