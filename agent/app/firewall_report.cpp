#include "agent/app/firewall_report.h"

#include <algorithm>
#include <map>

#include <boost/json.hpp>

#include "agent/app/firewall_keeper.h"

namespace tetherd {
namespace {

namespace json = boost::json;
using firewall::Verdict;

const char* table_text(FirewallReport::Table t) {
  switch (t) {
    case FirewallReport::Table::kInSync:
      return "in sync";
    case FirewallReport::Table::kDrifted:
      return "drifted";
    case FirewallReport::Table::kMissing:
      return "missing";
    case FirewallReport::Table::kNotManaged:
      return "not managed";
  }
  return "?";
}

const char* verdict_text(Verdict v) {
  return v == Verdict::kDrop ? "drop" : "reject";
}

// Every source either side holds, with where it is.
struct SourceRow {
  bool live = false;
  bool desired = false;
};
std::map<firewall::Cidr, SourceRow> source_rows(const FirewallReport& r) {
  std::map<firewall::Cidr, SourceRow> rows;
  for (const auto& c : r.desired.sources.cidrs())
    rows[c].desired = true;
  if (r.live) {
    for (const auto& c : r.live->sources.cidrs())
      rows[c].live = true;
  }
  return rows;
}

std::string ports_text(const std::vector<std::uint16_t>& ports) {
  std::string s;
  for (auto p : ports)
    s += (s.empty() ? "" : " ") + std::to_string(p);
  return s;
}

}  // namespace

Result<FirewallReport> make_firewall_report(const FirewallConfig& config,
                                            firewall::Backend& backend, const StateDir& state,
                                            const std::vector<boost::asio::ip::address>& node) {
  FirewallReport r;
  r.backend = std::string(backend.name());
  const firewall::Policy policy = firewall_policy(config);
  std::vector<firewall::Cidr> control_plane;
  r.desired_from = "the static allowlist only (no saved desired state)";
  auto saved = read_saved_desired(state);
  if (!saved) {
    r.desired_from = "the static allowlist only: " + saved.error().message;
  } else if (*saved) {
    auto valid = firewall::validate(**saved, policy);
    if (valid) {
      control_plane = std::move(*valid);
      const std::size_t n = control_plane.size();
      r.desired_from = "the saved desired state (" + std::to_string(n) +
                       (n == 1 ? " source" : " sources") + " from the control plane)";
    } else {
      r.desired_from = "the static allowlist only: the saved desired state does not fit: " +
                       valid.error().message;
    }
  }
  r.desired = firewall::build_allowlist(policy, control_plane, node);

  if (config.backend == FirewallBackend::kNone) return r;  // nothing applied, by design
  auto live = backend.read();
  if (!live) return live.error();
  if (!*live) {
    r.table = FirewallReport::Table::kMissing;
  } else {
    r.live = (*live)->allowlist;
    r.dropped_packets = (*live)->dropped_packets;
    r.table = (*live)->rules_intact && *r.live == r.desired ? FirewallReport::Table::kInSync
                                                            : FirewallReport::Table::kDrifted;
  }
  auto blocking = backend.blocking_chains();
  if (!blocking) return blocking.error();
  r.blocking = std::move(*blocking);
  auto caveats = backend.caveats();
  if (!caveats) return caveats.error();
  r.caveats = std::move(*caveats);
  return r;
}

std::string render_table(const FirewallReport& r) {
  std::string out;
  auto line = [&out](std::string_view key, const std::string& value) {
    out += std::string(key);
    out.append(key.size() < 10 ? 10 - key.size() : 1, ' ');
    out += value + "\n";
  };
  line("backend", r.backend);
  line("rules", table_text(r.table));
  line("ports", ports_text(r.desired.ports) + (r.live && r.live->ports != r.desired.ports
                                                   ? " (live: " + ports_text(r.live->ports) + ")"
                                                   : ""));
  line("verdict", verdict_text(r.desired.verdict));
  if (r.live) line("dropped", std::to_string(r.dropped_packets) + " packets");
  line("desired", "from " + r.desired_from);
  out += "\nSOURCE                                      LIVE  DESIRED\n";
  for (const auto& [cidr, row] : source_rows(r)) {
    std::string s = cidr.to_string();
    s.append(s.size() < 44 ? 44 - s.size() : 1, ' ');
    s += row.live ? "yes   " : "no    ";
    s += row.desired ? "yes" : "no";
    out += s + "\n";
  }
  if (!r.blocking.empty()) {
    out += "\nblocked elsewhere:\n";
    for (const auto& b : r.blocking)
      out += "  " + firewall::explain(b, r.desired.ports) + "\n";
  }
  if (!r.caveats.empty()) {
    out += "\ncaveats:\n";
    for (const auto& c : r.caveats)
      out += std::string(c.serious ? "  ! " : "  - ") + c.message + "\n";
  }
  return out;
}

json::value to_json(const FirewallReport& r) {
  json::object o;
  o["backend"] = r.backend;
  o["rules"] = table_text(r.table);
  o["inSync"] = r.ok();
  o["ports"] = json::value_from(r.desired.ports);
  o["verdict"] = verdict_text(r.desired.verdict);
  if (r.live) {
    o["livePorts"] = json::value_from(r.live->ports);
    o["droppedPackets"] = r.dropped_packets;
  }
  o["desiredFrom"] = r.desired_from;
  json::array sources;
  for (const auto& [cidr, row] : source_rows(r))
    sources.push_back({{"cidr", cidr.to_string()}, {"live", row.live}, {"desired", row.desired}});
  o["sources"] = std::move(sources);
  json::array blocking;
  for (const auto& b : r.blocking) {
    blocking.push_back({{"family", b.family},
                        {"table", b.table},
                        {"chain", b.chain},
                        {"hook", b.hook},
                        {"ufw", b.ufw},
                        {"message", firewall::explain(b, r.desired.ports)}});
  }
  o["blockedBy"] = std::move(blocking);
  json::array caveats;
  for (const auto& c : r.caveats)
    caveats.push_back({{"serious", c.serious}, {"message", c.message}});
  o["caveats"] = std::move(caveats);
  return o;
}

}  // namespace tetherd
