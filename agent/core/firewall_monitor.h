#pragma once
// Something that notices when someone else changed tetherd's firewall rules,
// so the daemon repairs them at once rather than at the next timer.

#include <functional>

#include "agent/core/result.h"

namespace tetherd {

class FirewallMonitor {
 public:
  virtual ~FirewallMonitor() = default;
  // Starts watching; `changed` runs on the event loop after each change.
  virtual Result<void> start(std::function<void()> changed) = 0;
  virtual void stop() = 0;
};

}  // namespace tetherd
