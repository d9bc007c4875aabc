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
  // Who connected and who was refused, as the kernel recorded it; absent,
  // why not (ufw, no table).
  std::optional<firewall::Evidence> evidence;
  // The cloud's sources as configured (allow, then the control plane's),
  // each a row of `firewall show`: not merged, so that of two neighbouring
  // gateways the one that never connects shows.
  std::vector<firewall::Cidr> cloud_sources;
  std::string no_evidence_why;

  bool ok() const { return table == Table::kInSync || table == Table::kNotManaged; }
};

// Reads the backend (never writes to it) and the state directory.
// `tunnelled`: the ports firewall.closeWhenTunnelled may close
// (tunnelled_ports()); the kernel's closed ports among them are taken as
// tetherd's (only the daemon knows whether its tunnel is up), any other is
// drift.
Result<FirewallReport> make_firewall_report(const FirewallConfig& config,
                                            firewall::Backend& backend, const StateDir& state,
                                            const std::vector<boost::asio::ip::address>& node,
                                            const std::vector<std::uint16_t>& tunnelled = {});

// `tetherctl firewall show`: with each cloud source's last new connection
// per port ("never" within the accepted set's 24 h).
std::string render_table(const FirewallReport& report);
boost::json::value to_json(const FirewallReport& report);

// `tetherctl firewall refused`: the refused sources of the last 10 minutes,
// most attempts first; the table shows at most `limit` (JSON all of them:
// the kernel's sets are capped).
std::string render_refused(const FirewallReport& report, std::size_t limit);
boost::json::value refused_json(const FirewallReport& report);

}  // namespace tetherd
