#pragma once
// What one health probe found: the value the aggregation (core/health.h)
// turns into a condition. A probe that could not tell (its deadline passed,
// its input is missing) says Unknown, not False: Unknown is "no news", False
// is "known bad".

#include <string>

#include "agent/core/clock.h"
#include "agent/core/node_status.h"

namespace tetherd {

struct ProbeResult {
  ConditionStatus status = ConditionStatus::kUnknown;
  std::string reason;   // CamelCase, the condition's reason: "Ready", "Timeout", "Unreachable"
  std::string message;  // for an operator: what was asked, what answered
  Duration took{};      // how long the probe ran (monotonic)

  friend bool operator==(const ProbeResult&, const ProbeResult&) = default;
};

}  // namespace tetherd
