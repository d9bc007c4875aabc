#pragma once
// A deadline on writes that costs one timer wait per `limit`, not one per
// write. A bulk transfer writes a TLS record or a DATA packet at a time; a
// deadline armed for each (beast's tcp_stream::expires_after) is a timer
// wait and a cancel per write, and a timerfd_settime whenever it is the
// earliest timer. Here the timer runs while writes go on and looks, when it
// fires, at how long the write under way has taken: `stuck` is called once
// one has taken `limit`.

#include <functional>
#include <memory>
#include <utility>

#include <boost/asio/any_io_executor.hpp>

#include "agent/core/clock.h"
#include "agent/core/timer.h"

namespace tetherd::tunnel {

class WriteWatch {
 public:
  WriteWatch(const boost::asio::any_io_executor& executor, const Clock& clock, Duration limit,
             std::function<void()> stuck)
      : clock_(clock), timer_(executor, clock), limit_(limit), stuck_(std::move(stuck)) {}
  WriteWatch(const WriteWatch&) = delete;
  WriteWatch& operator=(const WriteWatch&) = delete;

  // A write starts now.
  void begin() {
    writing_ = true;
    began_ = clock_.monotonic();
    if (!watching_ && !stopped_) {
      watching_ = true;
      wait(limit_);
    }
  }
  // It has ended (done or failed).
  void end() { writing_ = false; }
  // Nothing more to watch (the connection closes).
  void stop() {
    stopped_ = true;
    watching_ = false;
    timer_.cancel();
  }

 private:
  void wait(Duration after) {
    timer_.expires_after(after);
    timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code e) {
      if (alive.expired() || e) return;  // gone, or stopped
      fired();
    });
  }
  void fired() {
    if (stopped_) return;  // an expiry queued before stop()
    if (!writing_) {
      watching_ = false;  // the next write watches again
      return;
    }
    const Duration taken = clock_.monotonic() - began_;
    if (taken >= limit_) {
      watching_ = false;
      stopped_ = true;
      if (stuck_) stuck_();
      return;
    }
    wait(limit_ - taken);
  }

  const Clock& clock_;
  Timer timer_;
  Duration limit_;
  std::function<void()> stuck_;
  bool watching_ = false;
  bool writing_ = false;
  bool stopped_ = false;
  MonoTime began_{};
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace tetherd::tunnel
