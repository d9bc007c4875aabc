#include "agent/app/address_change.h"

#include <algorithm>
#include <map>

#include "agent/core/duration.h"

namespace tetherd {
namespace {

std::string ports_text(const std::vector<std::uint16_t>& ports) {
  std::string s;
  for (std::size_t i = 0; i < ports.size(); ++i)
    s += (i == 0 ? "" : i + 1 == ports.size() ? " and " : ", ") + std::to_string(ports[i]);
  return s;
}

std::string span(std::chrono::seconds d) {
  return format_duration(d);
}

// The cloud's networks to name it by: as configured, else Allowlist::cloud's pieces.
std::vector<firewall::Cidr> names_of(const firewall::Allowlist& desired,
                                     const std::vector<firewall::Cidr>& networks) {
  return networks.empty() ? desired.cloud.cidrs() : networks;
}

}  // namespace

std::string AddressChangeHint::message() const {
  std::string m = stranger.to_string() + " was refused " + std::to_string(attempts) +
                  (attempts == 1 ? " time" : " times") + " on " + ports_text(ports) +
                  " in the last " + span(firewall::kEvidenceSets[0].timeout) + " while ";
  if (cloud_last) {
    m += "the cloud (" + cloud_source + ") has not connected on " + ports_text(ports) + " for " +
         span(*cloud_last);
  } else {
    // The cloud's records last a day: beyond, "never" is not known.
    m += "no cloud source has connected on " + ports_text(ports) + " in the " +
         span(std::min(watched, firewall::kEvidenceSets[2].timeout)) + " tetherd has watched";
  }
  return m + ": has the cloud's address changed?";
}

EvidenceSummary summarize(const firewall::Evidence& evidence, const firewall::Allowlist& desired,
                          const std::vector<firewall::Cidr>& networks) {
  EvidenceSummary s;
  for (const std::uint16_t port : desired.ports)
    s.ports.push_back({port, 0, 0});
  auto at = [&](std::uint16_t port) -> EvidenceSummary::PerPort* {
    const auto p = std::lower_bound(s.ports.begin(), s.ports.end(), port,
                                    [](const auto& e, std::uint16_t v) { return e.port < v; });
    return p != s.ports.end() && p->port == port ? &*p : nullptr;
  };
  for (const firewall::Sighting& r : evidence.refused)
    if (auto* p = at(r.port)) p->refused += r.packets;
  for (const firewall::Sighting& a : evidence.accepted)
    if (desired.cloud.contains(a.source))
      if (auto* p = at(a.port)) p->accepted += a.packets;
  for (const firewall::Cidr& c : names_of(desired, networks)) {
    const firewall::AddressSet net(std::vector<firewall::Cidr>{c});
    std::optional<std::chrono::seconds> last;
    for (const firewall::Sighting& a : evidence.accepted) {
      if (!net.contains(a.source) || !desired.cloud.contains(a.source)) continue;
      if (!last || a.ago < *last) last = a.ago;
    }
    if (last) s.cloud_last.push_back({c.to_string(), *last});
  }
  return s;
}

HintPolicy hint_policy(const CloudAddressHintConfig& config) {
  using std::chrono::duration_cast;
  using std::chrono::seconds;
  HintPolicy p;
  p.quiet_after = duration_cast<seconds>(config.quiet_after);
  p.min_attempts = config.attempts;
  p.trying_for = duration_cast<seconds>(config.over);
  return p;
}

std::optional<AddressChangeHint> address_change_hint(const firewall::Evidence& evidence,
                                                     const firewall::Allowlist& desired,
                                                     std::chrono::seconds watched,
                                                     const HintPolicy& policy,
                                                     const std::vector<firewall::Cidr>& networks) {
  if (desired.cloud.empty()) return std::nullopt;
  // The cloud's last connection on each managed port.
  std::map<std::uint16_t, const firewall::Sighting*> last;
  for (const firewall::Sighting& s : evidence.accepted) {
    if (!desired.cloud.contains(s.source)) continue;  // no longer the cloud
    const firewall::Sighting*& l = last[s.port];
    if (!l || s.ago < l->ago) l = &s;
  }
  // A change of the cloud's egress address moves all of its traffic: the
  // cloud is quiet when it has connected on no port for quiet_after (a
  // connection on any port says its address is still allowed; one held
  // open for hours, keep-alive, makes no new ones on its port). Then its
  // ports are those it has a record on, or all of them when it has none
  // at all (every record aged out: the address changed a day ago or more,
  // or it never came in a record watched long enough): a port the cloud
  // does not use (6443 in pull mode) is not one, and a scanner knocking
  // there says nothing.
  const bool cloud_quiet = last.empty() ? watched >= policy.quiet_after
                                        : std::all_of(last.begin(), last.end(), [&](const auto& l) {
                                            return l.second->ago >= policy.quiet_after;
                                          });
  auto quiet = [&](std::uint16_t port) {
    if (!cloud_quiet) return false;
    if (!std::binary_search(desired.ports.begin(), desired.ports.end(), port)) return false;
    // A port closed to the cloud (the tunnel carries it) says nothing of
    // its address: the cloud is not meant to connect there.
    if (std::binary_search(desired.closed_ports.begin(), desired.closed_ports.end(), port))
      return false;
    return last.empty() || last.count(port) > 0;
  };
  // Each stranger's first packets on quiet ports, and how long it has
  // been trying.
  struct Tally {
    std::uint64_t attempts = 0;
    std::chrono::seconds trying{0};
    std::vector<std::uint16_t> ports;
  };
  std::map<boost::asio::ip::address, Tally> strangers;
  for (const firewall::Sighting& s : evidence.refused) {
    if (desired.sources.contains(s.source) || !quiet(s.port)) continue;
    Tally& t = strangers[s.source];
    t.attempts += s.packets;
    t.trying = std::max(t.trying, s.ago);
    t.ports.push_back(s.port);
  }
  // The one held keeps its place while it tries at all (two strangers
  // whose records restart in turn must not take it from each other);
  // else the most attempts (the first, lowest address, of equals), if it
  // qualifies: enough first packets, over long enough that they are not
  // one connect's SYN and its retries.
  auto qualifies = [&](const Tally& t) {
    return t.attempts >= policy.min_attempts && t.trying >= policy.trying_for;
  };
  auto most = strangers.end();
  for (auto it = strangers.begin(); it != strangers.end(); ++it)
    if (qualifies(it->second) &&
        (most == strangers.end() || it->second.attempts > most->second.attempts))
      most = it;
  if (policy.prefer) {
    const auto held = strangers.find(*policy.prefer);
    if (held != strangers.end()) most = held;
  }
  if (most == strangers.end()) return std::nullopt;

  AddressChangeHint h;
  h.stranger = most->first;
  h.ports = most->second.ports;
  std::sort(h.ports.begin(), h.ports.end());
  h.ports.erase(std::unique(h.ports.begin(), h.ports.end()), h.ports.end());
  h.attempts = most->second.attempts;
  h.trying = most->second.trying;
  h.watched = watched;
  for (const std::uint16_t port : h.ports) {
    const auto l = last.find(port);
    if (l == last.end() || (h.cloud_last && *h.cloud_last <= l->second->ago)) continue;
    h.cloud_last = l->second->ago;
    for (const firewall::Cidr& c : names_of(desired, networks))
      if (firewall::AddressSet(std::vector<firewall::Cidr>{c}).contains(l->second->source)) {
        h.cloud_source = c.to_string();
        break;
      }
  }
  return h;
}

}  // namespace tetherd
