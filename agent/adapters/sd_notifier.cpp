#include "agent/adapters/sd_notifier.h"

#include <string>

#include <systemd/sd-daemon.h>

namespace tetherd {

void SdNotifier::notify(std::string_view assignments) {
  // Failure to notify is not actionable: without a manager listening there is
  // nobody to tell, and with one the manager's own timeouts report it.
  (void)sd_notify(0, std::string(assignments).c_str());
}

std::optional<Duration> SdNotifier::watchdog_timeout() const {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec);
}

}  // namespace tetherd
