#include "agent/core/host_health.h"

#include <cstdio>

namespace tetherd {
namespace {

// "250 us", "12.3 ms", "16.0 s": what an operator compares with the bound.
std::string error_text(std::int64_t us) {
  char text[48];
  if (us < 1000) {
    std::snprintf(text, sizeof text, "%lld us", static_cast<long long>(us));
  } else if (us < 1'000'000) {
    std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(us) / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(us) / 1e6);
  }
  return text;
}

ProbeResult result(ConditionStatus status, std::string reason, std::string message) {
  return ProbeResult{status, std::move(reason), std::move(message), {}};
}

constexpr const char* kEnableNtp =
    "no NTP daemon is disciplining the clock; enable one, e.g. `timedatectl set-ntp true` "
    "(systemd-timesyncd) or chrony";

}  // namespace

ProbeResult clock_synchronized(const ClockDiscipline& clock) {
  if (!clock.error.empty())
    return result(ConditionStatus::kUnknown, "ClockStateUnknown",
                  "cannot read the kernel's clock discipline: " + clock.error);
  if ((clock.status & kClockStatusUnsync) != 0 || clock.state == kClockStateError) {
    const std::string why = (clock.status & kClockStatusUnsync) != 0
                                ? "the kernel marks the clock unsynchronized (STA_UNSYNC)"
                                : "the kernel reports the clock state TIME_ERROR";
    return result(ConditionStatus::kFalse, "NotSynchronized",
                  why + ": " + kEnableNtp + ". Certificates and leases are judged on this clock");
  }
  if (clock.max_error_us > kMaxClockError.count())
    return result(ConditionStatus::kFalse, "ClockErrorTooLarge",
                  "the clock's maximum error is " + error_text(clock.max_error_us) + ", over the " +
                      error_text(kMaxClockError.count()) +
                      " that certificates and leases tolerate; is the NTP daemon reaching its "
                      "servers? (`timedatectl timesync-status` or `chronyc tracking`)");
  return result(ConditionStatus::kTrue, "Synchronized",
                "the clock is synchronized: maximum error " + error_text(clock.max_error_us) +
                    ", estimated error " + error_text(clock.est_error_us));
}

}  // namespace tetherd
