#pragma once
// A clock tests move by hand. advance() is time passing while awake;
// suspend() is the machine sleeping: wall and boottime move, monotonic
// does not — exactly what the kernel does, and what fools Asio's timers.

#include "agent/core/clock.h"

namespace tetherd::test {

class FakeClock : public Clock {
 public:
  explicit FakeClock(WallTime wall = WallTime(std::chrono::hours(24 * 365 * 56))) : wall_(wall) {}

  WallTime wall() const override { return wall_; }
  MonoTime monotonic() const override { return monotonic_; }
  MonoTime boottime() const override { return boottime_; }

  void advance(Duration d) {
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
    monotonic_ += d;
    boottime_ += d;
  }
  void suspend(Duration d) {
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
    boottime_ += d;
  }
  // An NTP step or an admin's `date -s`: only the wall clock jumps.
  void step_wall(Duration d) { wall_ += std::chrono::duration_cast<WallTime::duration>(d); }

 private:
  WallTime wall_;
  MonoTime monotonic_{std::chrono::seconds(1000)};
  MonoTime boottime_{std::chrono::seconds(1000)};
};

}  // namespace tetherd::test
