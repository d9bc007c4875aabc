#pragma once
// logind's PrepareForSleep as a test drives it (SleepSignal): prepare(true)
// before a sleep, which then waits on the lock until the listener lets go
// of it, prepare(false) after the wake. No bus, no thread: on the caller's
// loop and clock, simulated or not.

#include <functional>
#include <utility>

#include "agent/core/sleep_signal.h"

namespace tetherd::test {

class FakeSleepSignal final : public SleepSignal {
 public:
  bool start(std::function<void(bool start)> on_prepare) override {
    on_prepare_ = std::move(on_prepare);
    return true;
  }
  // Safe from inside on_prepare: the running function is not destroyed.
  void stop() override { stopped_ = std::exchange(on_prepare_, nullptr); }
  void release_inhibitor() override {
    holding_ = false;
    ++releases_;
  }
  bool available() const override { return listening(); }

  void prepare(bool start) {
    holding_ = start && on_prepare_;
    if (on_prepare_) on_prepare_(start);
  }
  bool listening() const { return static_cast<bool>(on_prepare_); }
  // A sleep waits on the listener's lock.
  bool holding() const { return holding_; }
  int releases() const { return releases_; }

 private:
  std::function<void(bool start)> on_prepare_;
  std::function<void(bool start)> stopped_;  // kept alive: stop() may be called from it
  bool holding_ = false;
  int releases_ = 0;
};

}  // namespace tetherd::test
