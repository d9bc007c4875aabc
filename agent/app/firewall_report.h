#pragma once
// What `tetherctl firewall show` and `tetherctl check` report about the
// firewall: the rules live in the kernel against what tetherd wants there
// (the configuration, the saved desired state and the node's addresses),
// and other firewalls that block what tetherd allows. Built read-only,
// without the daemon; rendered as a table or as JSON.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>
#include <boost/json/value.hpp>

#include "agent/adapters/state_dir.h"
#include "agent/config/config.h"
#include "firewall/backend.h"

namespace tetherd {

struct FirewallReport {
  enum class Table { kInSync, kDrifted, kMissing, kNotManaged };

  std::string backend;
  Table table = Table::kNotManaged;
  firewall::Allowlist desired;
  std::optional<firewall::Allowlist> live;  // absent: missing, or backend none
  std::uint64_t dropped_packets = 0;
  std::string desired_from;  // where the control plane's part came from
  std::vector<firewall::BlockingChain> blocking;
  std::vector<firewall::Caveat> caveats;

  bool ok() const { return table == Table::kInSync || table == Table::kNotManaged; }
};

// Reads the backend (never writes to it) and the state directory.
Result<FirewallReport> make_firewall_report(const FirewallConfig& config,
                                            firewall::Backend& backend, const StateDir& state,
                                            const std::vector<boost::asio::ip::address>& node);

std::string render_table(const FirewallReport& report);
boost::json::value to_json(const FirewallReport& report);

}  // namespace tetherd
