#include "agent/core/resume_filter.h"

#include <cstddef>

namespace tetherd {

std::string_view resume_source_name(ResumeSource source) {
  return source == ResumeSource::kLogind ? "logind" : "clock";
}

void ResumeFilter::sleeping(MonoTime boottime) {
  sleeping_since_ = boottime;
  last_.reset();
}

std::optional<ResumeEvent> ResumeFilter::resumed(ResumeSource source, MonoTime boottime,
                                                 Duration slept_hint) {
  const auto witness = static_cast<std::size_t>(source);
  if (last_ && !last_->seen[witness] && boottime - last_->at < window_) {
    last_->seen[witness] = true;
    return std::nullopt;
  }
  ResumeEvent event{source, Duration::zero()};
  if (slept_hint > Duration::zero()) {
    event.slept = slept_hint;
  } else if (sleeping_since_ && boottime > *sleeping_since_) {
    event.slept = boottime - *sleeping_since_;
  }
  last_ = LastResume{boottime, {}};
  last_->seen[witness] = true;
  sleeping_since_.reset();
  return event;
}

}  // namespace tetherd
