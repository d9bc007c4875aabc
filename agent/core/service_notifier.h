#pragma once
// The service manager's side channel (sd_notify): READY=1, STATUS=,
// RELOADING=1, STOPPING=1, WATCHDOG=1.

#include <optional>
#include <string_view>

#include "agent/core/clock.h"

namespace tetherd {

class ServiceNotifier {
 public:
  virtual ~ServiceNotifier() = default;
  // Sends newline-separated KEY=VALUE assignments; a no-op when tetherd was
  // not started by a service manager.
  virtual void notify(std::string_view assignments) = 0;
  // The watchdog timeout the manager expects pings within, if it enabled one
  // for this process.
  virtual std::optional<Duration> watchdog_timeout() const = 0;
};

}  // namespace tetherd
