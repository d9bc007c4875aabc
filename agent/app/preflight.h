#pragma once
// `tetherctl check`: what would stop tetherd from doing its job on this
// host, each finding as ok, warn or fail with a plain sentence.

#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "agent/app/firewall_report.h"

namespace tetherd {

struct Check {
  enum class Status { kOk, kWarn, kFail };
  std::string name;
  Status status = Status::kOk;
  std::string message;
};

// The firewall's checks, from its report (or why there is none).
std::vector<Check> firewall_checks(const FirewallConfig& config,
                                   const Result<FirewallReport>& report);

bool passed(const std::vector<Check>& checks);  // no kFail
std::string render_checks(const std::vector<Check>& checks);
boost::json::value checks_to_json(const std::vector<Check>& checks);

}  // namespace tetherd
