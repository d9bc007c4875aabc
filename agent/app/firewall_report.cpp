#include "agent/app/firewall_report.h"

#include <algorithm>
#include <map>
#include <utility>

#include <boost/json.hpp>

#include "agent/app/firewall_keeper.h"
#include "agent/app/status_view.h"

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

void pad(std::string& s, std::size_t width) {
  s.append(s.size() < width ? width - s.size() : 1, ' ');
}

// A cloud source's connections on one port: the latest, and how many the
// kernel's records hold (each address's since its record began).
struct LastSeen {
  std::optional<std::chrono::seconds> ago;
  std::uint64_t connections = 0;
};
std::vector<LastSeen> last_seen(const FirewallReport& r, const firewall::Cidr& cidr) {
  const std::vector<std::uint16_t>& ports = r.desired.ports;
  std::vector<LastSeen> out(ports.size());
  if (!r.evidence) return out;
  const firewall::AddressSet in(std::vector<firewall::Cidr>{cidr});
  for (const firewall::Sighting& s : r.evidence->accepted) {
    const auto p = std::find(ports.begin(), ports.end(), s.port);
    // In the row's source, and the cloud's (not the node's own address
    // that a wide `allow` covers).
    if (p == ports.end() || !in.contains(s.source) || !r.desired.cloud.contains(s.source)) continue;
    LastSeen& l = out[static_cast<std::size_t>(p - ports.begin())];
    if (!l.ago || s.ago < *l.ago) l.ago = s.ago;
    l.connections += s.packets;
  }
  return out;
}

// The refused, most attempts first (then by address and port, so that the
// order is stable between two runs).
std::vector<firewall::Sighting> by_attempts(std::vector<firewall::Sighting> refused) {
  std::sort(refused.begin(), refused.end(), [](const auto& a, const auto& b) {
    if (a.packets != b.packets) return a.packets > b.packets;
    if (a.source != b.source) return a.source < b.source;
    return a.port < b.port;
  });
  return refused;
}

// Whether a family's refused set is at its size: nobody new is recorded
// until the oldest records expire.
bool refused_full(const firewall::Evidence& e, bool v4) {
  const auto n = std::count_if(e.refused.begin(), e.refused.end(),
                               [v4](const auto& s) { return s.source.is_v4() == v4; });
  for (const auto& set : firewall::kEvidenceSets)
    if (set.refused && set.v4 == v4) return static_cast<std::uint32_t>(n) >= set.size;
  return false;
}

constexpr auto kRefusedWindow = firewall::kEvidenceSets[0].timeout;
constexpr auto kAcceptedWindow = firewall::kEvidenceSets[2].timeout;

}  // namespace

Result<FirewallReport> make_firewall_report(const FirewallConfig& config,
                                            firewall::Backend& backend, const StateDir& state,
                                            const std::vector<boost::asio::ip::address>& node,
                                            const std::vector<std::uint16_t>& tunnelled) {
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
  for (const std::vector<firewall::Cidr>* list : {&policy.allow, &std::as_const(control_plane)})
    for (const firewall::Cidr& c : *list)
      if (std::find(r.cloud_sources.begin(), r.cloud_sources.end(), c) == r.cloud_sources.end())
        r.cloud_sources.push_back(c);

  if (config.backend == FirewallBackend::kNone) {
    r.no_evidence_why = "firewall.backend is none: tetherd has no rules";
    return r;  // nothing applied, by design
  }
  auto live = backend.read();
  if (!live) return live.error();
  if (!*live) {
    r.table = FirewallReport::Table::kMissing;
  } else {
    r.live = (*live)->allowlist;
    r.dropped_packets = (*live)->dropped_packets;
    // Which ports the tunnel has closed is the daemon's to say (it knows
    // whether the tunnel holds its servers): with closeWhenTunnelled, the
    // kernel's closed ports that the tunnel serves are taken as desired.
    if (config.close_when_tunnelled) {
      firewall::Policy closing = policy;
      for (std::uint16_t p : r.live->closed_ports)
        if (std::find(tunnelled.begin(), tunnelled.end(), p) != tunnelled.end())
          closing.closed_ports.push_back(p);
      if (!closing.closed_ports.empty())
        r.desired = firewall::build_allowlist(closing, control_plane, node);
    }
    r.table = (*live)->rules_intact && *r.live == backend.enforceable(r.desired)
                  ? FirewallReport::Table::kInSync
                  : FirewallReport::Table::kDrifted;
  }
  if (auto can = backend.records_evidence(); !can) {
    r.no_evidence_why = can.error().message;
  } else if (!*live) {
    r.no_evidence_why = "tetherd's table is missing";
  } else if (!(*live)->rules_intact) {
    // A rule that records may be gone, or the listing unreadable: an empty
    // record would say "nobody" where nothing was counted.
    r.no_evidence_why =
        "tetherd's table is not as tetherd wrote it (tetherd repairs it when it runs)";
  } else {
    r.evidence = std::move((*live)->evidence);
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
  if (!r.desired.closed_ports.empty())
    line("closed", ports_text(r.desired.closed_ports) +
                       " to all but loopback, the node, the cluster and alwaysAllow (the tunnel "
                       "is up: firewall.closeWhenTunnelled)");
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
  std::string head = "CLOUD SOURCE";
  pad(head, 44);
  for (const auto port : r.desired.ports) {
    std::string p = std::to_string(port);
    pad(p, 12);
    head += p;
  }
  while (head.back() == ' ')
    head.pop_back();
  out += "\n" + head + "\n";
  for (const firewall::Cidr& cidr : r.cloud_sources) {
    std::string s = cidr.to_string();
    pad(s, 44);
    if (r.evidence) {
      for (const LastSeen& l : last_seen(r, cidr)) {
        std::string cell = l.ago ? human_duration(*l.ago) + " ago" : "never";
        pad(cell, 12);
        s += cell;
      }
    } else {
      s += "-";
    }
    while (!s.empty() && s.back() == ' ')
      s.pop_back();
    out += s + "\n";
  }
  if (r.evidence) {
    out +=
        "(each port's last new connection: its first packet, as tetherd's rules saw it; "
        "\"never\": not within " +
        human_duration(kAcceptedWindow) + ", or since tetherd's table was made)\n";
  } else {
    out += "(last connections: " + r.no_evidence_why + ")\n";
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
  o["closedPorts"] = json::value_from(r.desired.closed_ports);
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
  json::array cloud;
  for (const firewall::Cidr& cidr : r.cloud_sources) {
    json::array ports;
    const std::vector<LastSeen> seen = last_seen(r, cidr);
    for (std::size_t i = 0; i < r.desired.ports.size(); ++i) {
      json::object p{{"port", r.desired.ports[i]}};
      p["lastConnectedSecondsAgo"] =
          seen[i].ago ? json::value(seen[i].ago->count()) : json::value(nullptr);
      p["connections"] = r.evidence ? json::value(seen[i].connections) : json::value(nullptr);
      ports.push_back(std::move(p));
    }
    cloud.push_back({{"cidr", cidr.to_string()}, {"ports", std::move(ports)}});
  }
  o["cloud"] = std::move(cloud);
  o["evidenceAvailable"] = r.evidence.has_value();
  if (!r.evidence) o["noEvidenceReason"] = r.no_evidence_why;
  return o;
}

std::string render_refused(const FirewallReport& r, std::size_t limit) {
  if (!r.evidence) return "refused sources: " + r.no_evidence_why + "\n";
  const auto refused = by_attempts(r.evidence->refused);
  if (refused.empty())
    return "nobody was refused in the last " + human_duration(kRefusedWindow) + "\n";
  std::string out = "SOURCE                                      PORT   ATTEMPTS  SINCE\n";
  for (std::size_t i = 0; i < refused.size() && i < limit; ++i) {
    const firewall::Sighting& s = refused[i];
    std::string line = s.source.to_string();
    pad(line, 44);
    line += std::to_string(s.port);
    pad(line, 51);
    line += std::to_string(s.packets);
    pad(line, 61);
    out += line + human_duration(s.ago) + " ago\n";
  }
  if (refused.size() > limit)
    out += "... and " + std::to_string(refused.size() - limit) + " more (-o json lists all)\n";
  out += "(first packets of new connections, retries included, in records kept " +
         human_duration(kRefusedWindow) + " from each one's first)\n";
  for (const bool v4 : {true, false})
    if (refused_full(*r.evidence, v4))
      out += std::string("! the ") + (v4 ? "IPv4" : "IPv6") +
             " record is full: new sources are not recorded until the oldest expire\n";
  return out;
}

json::value refused_json(const FirewallReport& r) {
  json::object o;
  if (!r.evidence) {
    o["evidenceAvailable"] = false;
    o["noEvidenceReason"] = r.no_evidence_why;
    return o;
  }
  o["evidenceAvailable"] = true;
  o["windowSeconds"] = kRefusedWindow.count();
  json::array refused;
  for (const firewall::Sighting& s : by_attempts(r.evidence->refused)) {
    refused.push_back({{"source", s.source.to_string()},
                       {"port", s.port},
                       {"attempts", s.packets},
                       {"sinceSecondsAgo", s.ago.count()}});
  }
  o["refused"] = std::move(refused);
  o["fullIPv4"] = refused_full(*r.evidence, true);
  o["fullIPv6"] = refused_full(*r.evidence, false);
  return o;
}

}  // namespace tetherd
