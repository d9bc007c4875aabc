#pragma once
// When to answer a burst of events (a file rewritten in several steps, a
// file that keeps changing): once `quiet` has passed without an event, and
// never later than `at_most` after the burst's first event, so a stream of
// events is answered at that pace rather than never, or at every event.

#include <algorithm>

#include "agent/core/clock.h"

namespace tetherd {

class Coalescer {
 public:
  Coalescer(Duration quiet, Duration at_most) : quiet_(quiet), at_most_(at_most) {}

  // An event at `now`: when to answer (the answer due before it moves no
  // later than the burst's limit).
  MonoTime event(MonoTime now) {
    if (!pending_) {
      pending_ = true;
      first_ = now;
    }
    return std::min(now + quiet_, first_ + at_most_);
  }
  // The burst was answered: the next event starts a new one.
  void answered() { pending_ = false; }
  bool pending() const { return pending_; }

 private:
  Duration quiet_;
  Duration at_most_;
  MonoTime first_{};
  bool pending_ = false;
};

}  // namespace tetherd
