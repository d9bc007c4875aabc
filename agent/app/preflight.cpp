#include "agent/app/preflight.h"

#include <algorithm>

#include <boost/json.hpp>

#include "agent/app/address_change.h"

namespace tetherd {
namespace {

const char* status_text(Check::Status s) {
  switch (s) {
    case Check::Status::kOk:
      return "ok";
    case Check::Status::kWarn:
      return "warn";
    case Check::Status::kFail:
      return "fail";
  }
  return "?";
}

}  // namespace

std::vector<Check> firewall_checks(const FirewallConfig& config,
                                   const Result<FirewallReport>& report) {
  using S = Check::Status;
  std::vector<Check> out;
  if (!report) {
    out.push_back({"firewall", S::kFail, report.error().message});
    return out;
  }
  const FirewallReport& r = *report;
  const std::string sources = std::to_string(r.desired.sources.cidrs().size()) + " source networks";
  switch (r.table) {
    case FirewallReport::Table::kInSync:
      out.push_back({"firewall", S::kOk, r.backend + " rules in force and in sync: " + sources});
      break;
    case FirewallReport::Table::kNotManaged:
      out.push_back({"firewall", S::kWarn,
                     "backend none: tetherd filters nothing; another tool must allow only " +
                         sources + " on the managed ports"});
      break;
    case FirewallReport::Table::kMissing:
      out.push_back({"firewall", S::kFail,
                     "tetherd's " + r.backend +
                         " rules are not in the kernel: the managed ports are open to anyone "
                         "(is tetherd running?)"});
      break;
    case FirewallReport::Table::kDrifted:
      out.push_back({"firewall", S::kFail,
                     "the live " + r.backend +
                         " rules differ from what tetherd wants (tetherctl firewall show); "
                         "tetherd repairs this when it runs"});
      break;
  }
  for (const auto& c : r.caveats)
    out.push_back({"firewall", c.serious ? S::kFail : S::kWarn, c.message});
  // The kernel's record alone: how long the daemon has watched it is not
  // known here, so a cloud that never connected in it proves nothing; one
  // that connected long ago does.
  if (r.evidence) {
    if (auto hint = address_change_hint(*r.evidence, r.desired, std::chrono::seconds(0),
                                        hint_policy(config.cloud_address_hint), r.cloud_sources))
      out.push_back({"cloud-address", S::kWarn, hint->message()});
  }
  for (const auto& b : r.blocking)
    out.push_back({"other-firewall", S::kFail, firewall::explain(b, config.ports)});
  if (r.blocking.empty() && config.backend != FirewallBackend::kNone)
    out.push_back({"other-firewall", S::kOk, "no other table drops the managed ports by default"});
  return out;
}

bool passed(const std::vector<Check>& checks) {
  return std::none_of(checks.begin(), checks.end(),
                      [](const Check& c) { return c.status == Check::Status::kFail; });
}

std::string render_checks(const std::vector<Check>& checks) {
  std::string out;
  for (const auto& c : checks) {
    std::string status = status_text(c.status);
    status.resize(6, ' ');
    std::string name = c.name;
    name.resize(std::max<std::size_t>(name.size() + 1, 16), ' ');
    out += status + name + c.message + "\n";
  }
  return out;
}

boost::json::value checks_to_json(const std::vector<Check>& checks) {
  boost::json::array items;
  for (const auto& c : checks)
    items.push_back({{"name", c.name}, {"status", status_text(c.status)}, {"message", c.message}});
  return {{"ok", passed(checks)}, {"checks", std::move(items)}};
}

}  // namespace tetherd
