#pragma once
// The last good desired state from the control plane, as kept in the state
// directory (desired-firewall.json) and applied at boot before the control
// plane is reachable, so a node that restarts offline keeps its allowlist.

#include <string>
#include <string_view>

#include "agent/core/result.h"
#include "firewall/allowlist.h"

namespace tetherd::firewall {

inline constexpr std::string_view kDesiredStateFile = "desired-firewall.json";

std::string encode_desired(const DesiredSources& desired);
// Refuses anything that is not exactly what encode_desired writes.
Result<DesiredSources> decode_desired(std::string_view json);

}  // namespace tetherd::firewall
