#pragma once
// The host's own numbers for health and EdgeNode.status.node: load, memory,
// disk space, uptime and the kernel's clock discipline. Read straight from
// the kernel (no subprocess, no privilege): one round costs a few system
// calls, well under a millisecond of CPU, so it can run every interval.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/host_health.h"

namespace tetherd {

struct LoadAverage {
  double one = 0, five = 0, fifteen = 0;
};

struct DiskSpace {
  std::string path;
  // False when the path does not exist (ENOENT): the other paths are still
  // read. `error` says any other failure (EACCES, ...).
  bool present = false;
  std::string error;
  std::uint64_t available_bytes = 0;  // to an unprivileged user (f_bavail)
  std::uint64_t total_bytes = 0;
};

struct HostFacts {
  std::optional<LoadAverage> load;  // none when getloadavg fails
  // From /proc/meminfo; none when it cannot be read or lacks the line.
  std::optional<std::uint64_t> memory_available_bytes;
  std::optional<std::uint64_t> memory_total_bytes;
  std::vector<DiskSpace> disks;  // in the order asked for
  Duration uptime{};             // CLOCK_BOOTTIME: suspended time included
  ClockDiscipline clock;
};

// Never fails as a whole: what cannot be read is left out or says why.
HostFacts read_host_facts(const std::vector<std::string>& disk_paths);

// MemAvailable and MemTotal, in bytes, from /proc/meminfo's text (kB).
// Exposed for the test of the parsing.
struct MemoryInfo {
  std::optional<std::uint64_t> available_bytes, total_bytes;
};
MemoryInfo parse_meminfo(std::string_view text);

}  // namespace tetherd
