#pragma once
// One resume event from two witnesses. logind says PrepareForSleep(false);
// the clocks say CLOCK_BOOTTIME ran ahead of CLOCK_MONOTONIC (ClockJumpCheck).
// Either may come first, either may be missing (no logind in a container; a
// tick that has not run yet), so a resume is reported by whichever comes
// first and the other, arriving within `window`, is a duplicate.
//
// Time is judged on boottime values passed in: the window must count time
// asleep too, or a long suspend would look like no time at all.

#include <array>
#include <chrono>
#include <optional>
#include <string_view>

#include "agent/core/clock.h"

namespace tetherd {

enum class ResumeSource { kLogind, kClockJump };

// "logind" or "clock": the value of RESUME_SOURCE= in the journal.
std::string_view resume_source_name(ResumeSource source);

struct ResumeEvent {
  ResumeSource source;
  // How long the machine slept: the clocks' measure when the witness had it,
  // else boottime at the resume minus boottime at PrepareForSleep(true);
  // zero when neither is known (tetherd started while the machine slept).
  Duration slept{};

  bool operator==(const ResumeEvent&) const = default;
};

class ResumeFilter {
 public:
  explicit ResumeFilter(Duration window = std::chrono::seconds(30)) : window_(window) {}

  // PrepareForSleep(true). A resume after this is a new one even inside the
  // window of the previous: the machine went to sleep again.
  void sleeping(MonoTime boottime);

  // A witness saw a resume. `slept_hint` is what it measured (zero: nothing).
  // Returns the event when this is a new resume, nothing for a duplicate.
  // Each witness testifies once per resume: two clock jumps, or two
  // PrepareForSleep(false), are two sleeps however close together.
  std::optional<ResumeEvent> resumed(ResumeSource source, MonoTime boottime,
                                     Duration slept_hint = Duration::zero());

  // Between PrepareForSleep(true) and the resume.
  bool asleep() const { return sleeping_since_.has_value(); }

 private:
  struct LastResume {
    MonoTime at;
    std::array<bool, 2> seen{};  // by ResumeSource
  };

  Duration window_;
  std::optional<MonoTime> sleeping_since_;
  std::optional<LastResume> last_;
};

}  // namespace tetherd
