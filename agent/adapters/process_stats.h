#pragma once
// The process metrics every Prometheus client library exports (process_*),
// read from /proc the way client_golang reads them, so dashboards made for
// any exporter work for tetherd too. Cheap enough for every scrape: three
// small files and one directory listing, each read bounded in size.

#include <cstdint>
#include <string>

#include "agent/core/prometheus_text.h"
#include "agent/core/result.h"

namespace tetherd {

struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t max_fds = 0;      // the soft RLIMIT_NOFILE
  double start_time_seconds = 0;  // since the Unix epoch
};

// `proc` is where procfs is mounted; tests point it at a directory of their
// own. Reads proc/self/stat, proc/self/limits, proc/self/fd and proc/stat
// (btime).
Result<ProcessStats> read_process_stats(const std::string& proc = "/proc");

// The six process_* families, with the help texts client_golang uses.
void append_process_metrics(MetricsPage& page, const ProcessStats& stats);

}  // namespace tetherd
