#pragma once
#include "agent/core/service_notifier.h"

namespace tetherd {

// ServiceNotifier over libsystemd's sd_notify / sd_watchdog_enabled, which
// read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
class SdNotifier final : public ServiceNotifier {
 public:
  void notify(std::string_view assignments) override;
  std::optional<Duration> watchdog_timeout() const override;
};

}  // namespace tetherd
