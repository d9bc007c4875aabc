#pragma once
// Runs a helper program (ufw) the way a daemon must: no shell, stdin from
// /dev/null, systemd's notify and watchdog variables removed from its
// environment (they are tetherd's, not the child's), output bounded in size
// and the whole run bounded in time (then the child is killed).

#include <cstddef>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

struct CommandOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

struct CommandLimits {
  Duration timeout = std::chrono::seconds(30);
  std::size_t max_output = 16 << 20;  // stdout and stderr each
};

// argv[0] is an absolute path. An error means the command could not be
// run to completion: not started, timed out, or too much output.
Result<CommandOutput> run_command(const std::vector<std::string>& argv, CommandLimits limits = {});

}  // namespace tetherd
