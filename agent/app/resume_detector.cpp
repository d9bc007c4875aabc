#include "agent/app/resume_detector.h"

#include <string>

#include "agent/adapters/logind.h"
#include "agent/core/duration.h"

namespace tetherd {
namespace {

std::string whole_seconds(Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

}  // namespace

ResumeDetector::ResumeDetector(boost::asio::io_context& io, const Clock& clock, Log& log,
                               ResumeDetectorOptions options)
    : ResumeDetector(io, clock, log,
                     options.bus_address == "none"
                         ? nullptr
                         : std::make_unique<LogindSleep>(io, log, options.bus_address),
                     options) {}

ResumeDetector::ResumeDetector(boost::asio::io_context& io, const Clock& clock, Log& log,
                               std::unique_ptr<SleepSignal> sleep, ResumeDetectorOptions options)
    : clock_(clock),
      log_(log),
      options_(std::move(options)),
      filter_(options_.merge_window),
      sleep_signal_(std::move(sleep)),
      grace_(io, clock) {}

ResumeDetector::~ResumeDetector() {
  *alive_ = false;
}

void ResumeDetector::start() {
  check_clock();  // the baseline
  if (sleep_signal_) sleep_signal_->start([this](bool start) { prepare_for_sleep(start); });
}

void ResumeDetector::stop() {
  if (stopped_) return;
  stopped_ = true;
  *alive_ = false;
  holding_sleep_ = false;
  grace_.cancel();
  // Stopped, not destroyed: stop() may be running inside logind's callback.
  if (sleep_signal_) sleep_signal_->stop();
}

ResumeDetector::Stats ResumeDetector::stats() const {
  Stats s = stats_;
  s.logind = sleep_signal_ && sleep_signal_->available();
  return s;
}

void ResumeDetector::check_clock() {
  if (stopped_) return;
  const MonoTime boottime = clock_.boottime();
  if (const auto slept = clock_jump_.check(clock_.monotonic(), boottime))
    report(ResumeSource::kClockJump, boottime, *slept);
}

void ResumeDetector::prepare_for_sleep(bool start) {
  if (stopped_) return;
  if (start) {
    going_to_sleep();
  } else {
    woke();
  }
}

void ResumeDetector::going_to_sleep() {
  // A resume the tick has not seen yet belongs before this sleep, not after.
  check_clock();
  filter_.sleeping(clock_.boottime());
  ++stats_.sleeps;
  const std::uint64_t sleep = ++sleep_;
  holding_sleep_ = true;
  log_.notice("suspending", "the machine is going to sleep",
              {{"GRACE_SECONDS", whole_seconds(options_.sleep_grace)}});
  grace_.expires_after(options_.sleep_grace);
  grace_.async_wait([this, alive = alive_, sleep](const boost::system::error_code& ec) {
    if (!ec && *alive) let_sleep(sleep, true);
  });
  if (!on_sleep_) {
    let_sleep(sleep, false);
    return;
  }
  on_sleep_([this, alive = alive_, sleep] {
    if (*alive) let_sleep(sleep, false);
  });
}

void ResumeDetector::let_sleep(std::uint64_t sleep, bool grace_exceeded) {
  if (sleep != sleep_ || !holding_sleep_) return;
  holding_sleep_ = false;
  grace_.cancel();
  if (grace_exceeded) {
    log_.warning("sleep-grace-exceeded",
                 "no last status within " + format_duration(options_.sleep_grace) +
                     "; letting the machine sleep without it",
                 {{"GRACE_SECONDS", whole_seconds(options_.sleep_grace)}});
  }
  if (sleep_signal_) sleep_signal_->release_inhibitor();
}

void ResumeDetector::woke() {
  // Whatever the sleep handler still does is for a sleep that is over (or
  // that logind went ahead with without us): its done() no longer counts.
  ++sleep_;
  holding_sleep_ = false;
  grace_.cancel();
  // The clocks have already moved by now: their measure of the sleep beats
  // the signal's, which counts the time logind waited for locks too. Read
  // here, the jump is not reported a second time by the next tick.
  const MonoTime boottime = clock_.boottime();
  const auto slept = clock_jump_.check(clock_.monotonic(), boottime);
  report(ResumeSource::kLogind, boottime, slept.value_or(Duration::zero()));
}

void ResumeDetector::report(ResumeSource source, MonoTime boottime, Duration slept_hint) {
  const auto event = filter_.resumed(source, boottime, slept_hint);
  if (!event) {
    ++stats_.duplicates_merged;
    return;
  }
  ++stats_.resumes;
  const std::string name(resume_source_name(event->source));
  if (event->slept > Duration::zero()) {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(event->slept);
    log_.notice("resumed", "resumed from suspend after " + format_duration(seconds),
                {{"SLEPT_SECONDS", std::to_string(seconds.count())}, {"RESUME_SOURCE", name}});
  } else {
    // Started while the machine slept: nobody measured the sleep.
    log_.notice("resumed", "resumed from suspend (for how long is not known)",
                {{"RESUME_SOURCE", name}});
  }
  if (on_resumed_) on_resumed_(*event);
}

}  // namespace tetherd
