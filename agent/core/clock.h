#pragma once
// The three clocks that matter to a daemon on a machine that suspends.
//
// wall:      CLOCK_REALTIME. Certificates, leases and renewTime are judged
//            against it; it keeps moving while the machine sleeps.
// monotonic: CLOCK_MONOTONIC. What Asio's steady_timer runs on; it STOPS
//            during suspend, so it must never decide that something expired.
// boottime:  CLOCK_BOOTTIME. Like monotonic, but counts suspended time too;
//            boottime running ahead of monotonic means the machine slept.
//
// Everything that judges time takes a Clock (or a `now` value), so a three-day
// suspend is a unit test (see test/support/fake_clock.h); everything that
// waits makes its timers from the same Clock (core/timer.h), so a day of
// waiting is one too (test/support/sim_clock.h).

#include <chrono>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

namespace tetherd {

class TimerBackend;  // core/timer.h

using WallTime = std::chrono::system_clock::time_point;
// Monotonic and boottime are plain offsets since an arbitrary origin.
using MonoTime = std::chrono::nanoseconds;
using Duration = std::chrono::nanoseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual WallTime wall() const = 0;
  virtual MonoTime monotonic() const = 0;
  virtual MonoTime boottime() const = 0;
  // The timers that go with these clocks (core/timer.h: make a Timer, not
  // this). Asio's steady_timer unless a simulated clock says otherwise.
  virtual std::unique_ptr<TimerBackend> make_timer(
      const boost::asio::any_io_executor& executor) const;
};

}  // namespace tetherd
