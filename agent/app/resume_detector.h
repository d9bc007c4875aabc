#pragma once
// Sleep and resume, from every witness there is: logind's PrepareForSleep
// over D-Bus (with a delay lock, so a last status can go out before the
// machine sleeps) and the clocks (CLOCK_BOOTTIME running ahead of
// CLOCK_MONOTONIC), merged into one resume event (ResumeFilter).
//
// Nothing here judges expiry: after a resume, whoever listens judges it
// against the wall clock. The one timer bounds how long tetherd may hold the
// machine awake, which is time while awake, so a monotonic timer is right.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/core/clock.h"
#include "agent/core/clock_jump.h"
#include "agent/core/log.h"
#include "agent/core/resume_filter.h"
#include "agent/core/sleep_signal.h"
#include "agent/core/timer.h"

namespace tetherd {

struct ResumeDetectorOptions {
  // Where logind is: empty for the system bus, "none" to go without it (the
  // clocks alone), else a D-Bus address (tests use a private bus).
  std::string bus_address;
  // A second witness of the same resume arrives within this much boottime.
  Duration merge_window = std::chrono::seconds(30);
  // How long a sleep may wait for on_sleep's done(). Under logind's
  // InhibitDelayMaxSec (5 s by default), after which logind goes ahead
  // anyway and the lock only makes tetherd look stuck.
  Duration sleep_grace = std::chrono::seconds(3);
};

class ResumeDetector {
 public:
  struct Stats {
    std::uint64_t resumes = 0;
    std::uint64_t sleeps = 0;
    std::uint64_t duplicates_merged = 0;
    bool logind = false;  // logind is listened to and granted a delay lock
  };
  // Called as the machine is about to sleep; call done() once the last
  // status is written (from any later handler on the loop, at most once
  // counts). Sleep goes ahead without it after sleep_grace.
  using SleepHandler = std::function<void(std::function<void()> done)>;
  using ResumeHandler = std::function<void(const ResumeEvent&)>;

  ResumeDetector(boost::asio::io_context& io, const Clock& clock, Log& log,
                 ResumeDetectorOptions options = {});
  // With `sleep` as the word of sleeps and wakes instead of logind (the
  // simulation's); options.bus_address is then not used.
  ResumeDetector(boost::asio::io_context& io, const Clock& clock, Log& log,
                 std::unique_ptr<SleepSignal> sleep, ResumeDetectorOptions options = {});
  ~ResumeDetector();
  ResumeDetector(const ResumeDetector&) = delete;
  ResumeDetector& operator=(const ResumeDetector&) = delete;

  void on_sleep(SleepHandler handler) { on_sleep_ = std::move(handler); }
  void on_resumed(ResumeHandler handler) { on_resumed_ = std::move(handler); }

  // Sets the clocks' baseline and, unless options say "none", listens to
  // logind. Without logind that is logged once, and the clocks still work.
  void start();
  // Lets go of logind (and of any sleep waiting on us). Safe from handlers.
  void stop();
  // The clocks' witness: call it periodically (the daemon's tick). A resume
  // is reported at most once, whichever witness speaks first.
  void check_clock();

  Stats stats() const;

 private:
  void prepare_for_sleep(bool start);
  void going_to_sleep();
  void woke();
  void report(ResumeSource source, MonoTime boottime, Duration slept_hint);
  void let_sleep(std::uint64_t sleep, bool grace_exceeded);

  const Clock& clock_;
  Log& log_;
  ResumeDetectorOptions options_;
  ClockJumpCheck clock_jump_;
  ResumeFilter filter_;
  std::unique_ptr<SleepSignal> sleep_signal_;
  Timer grace_;
  SleepHandler on_sleep_;
  ResumeHandler on_resumed_;
  Stats stats_;
  // Counts sleeps, so a done() or a grace from an earlier one does nothing.
  std::uint64_t sleep_ = 0;
  bool holding_sleep_ = false;
  bool stopped_ = false;
  // done() may outlive the detector: it checks this, not `this`.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tetherd
