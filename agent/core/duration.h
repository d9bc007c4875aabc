#pragma once
// Durations in Go / Kubernetes syntax: "10s", "1h30m", "720h", "1.5h", "250ms".
// Units: ns, us (or µs), ms, s, m, h. Configuration never needs a negative
// duration, so a sign is an error rather than a surprise.

#include <string>
#include <string_view>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

Result<Duration> parse_duration(std::string_view text);

// Shortest Go-style spelling: 90m -> "1h30m", 1500ms -> "1.5s", 0 -> "0s".
std::string format_duration(Duration d);

}  // namespace tetherd
