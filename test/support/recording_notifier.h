#pragma once
// A ServiceNotifier that keeps every notification, for in-process tests. The
// real sd_notify path is tested over a real socket (sd_notifier_test.cpp).

#include <optional>
#include <string>
#include <vector>

#include "agent/core/service_notifier.h"

namespace tetherd::test {

class RecordingNotifier final : public ServiceNotifier {
 public:
  void notify(std::string_view assignments) override { messages.emplace_back(assignments); }
  std::optional<Duration> watchdog_timeout() const override { return watchdog; }

  std::vector<std::string> messages;
  std::optional<Duration> watchdog;
};

}  // namespace tetherd::test
