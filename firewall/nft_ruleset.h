#pragma once
// tetherd's nftables table, as text for libnftables, and read back from the
// kernel's JSON listing.
//
// Layout (one table, `inet tetherd`; created whole, then updated by element
// diffs, see render_update):
//   set allowed4 / allowed6   interval sets: lookup cost does not grow with N
//   set ports                 the managed ports
//   set cluster4 / cluster6   the cluster's networks (pods behind the node)
//   set cloud4 / cloud6       the cloud's sources (Allowlist::cloud)
//   set refused4 / refused6   evidence: who was refused, on which port
//   set accepted4 / accepted6 evidence: which cloud source connected, where
//   (the evidence sets are the kernel's own, address . port, with a counter
//   per element, a timeout and a size: kEvidenceSets)
//   chain refuse4 / refuse6   records a connection's first packet in
//                             refusedN, then drops (or rejects) the packet
//   three base chains, each with two rules (IPv4, IPv6) that jump to
//   refuseN for a TCP packet from a source not in the allowed set:
//   chain prerouting  priority -110 (before DNAT): to a managed port of a
//                     local address (`fib daddr type local`), as dialled;
//   chain input       priority -10 (after DNAT): to a managed port on the
//                     node, whatever port was dialled (a NodePort, a
//                     ClusterIP or a redirect translated to 6443);
//   chain forward     priority -10 (after DNAT): to a managed port of an
//                     address in the cluster's networks routed through the
//                     node (a NodePort or ClusterIP to the linkerd gateway
//                     pod, or the pod's own address).
//   So a connection is judged by what it finally reaches, and also by the
//   port dialled on the node. Input and forward then record the cloud's new
//   connections in acceptedN (a rule without a verdict). Every packet is judged, whatever conntrack
//   says of it: `ct direction original` would spare the replies to the
//   node's and pods' own connections from a managed port, but whoever can
//   inject one packet (a forged first packet makes the stranger's later SYN
//   a "reply") or a notrack rule would pass it (README, Known limits). tetherd never accepts
//   anything: everything else falls through to the chains' accept policy and on to other tables.
//
// Coexistence: an nftables `accept` ends only its own base chain, while a
// `drop` anywhere is final. So this table can block, but it cannot open a port
// that ufw, firewalld or another table's default-deny closes; that is why the
// backend checks for such tables beside it (see DESIGN.md).

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "agent/core/result.h"
#include "firewall/allowlist.h"

namespace tetherd::firewall {

inline constexpr std::string_view kTableFamily = "inet";
inline constexpr std::string_view kTableName = "tetherd";

struct ChainLayout {
  std::string_view name;  // also its hook
  int priority;
  bool local_only;        // `fib daddr type local`
  bool cluster_only;      // `ip daddr @cluster4` / `ip6 daddr @cluster6`
  bool records_accepted;  // the cloud's new connections are recorded here
};
inline constexpr std::array<ChainLayout, 3> kChains = {{
    {"prerouting", -110, true, false, false},
    {"input", -10, false, false, true},
    {"forward", -10, false, true, true},
}};

// The evidence sets. The refused are added on their first packet and kept
// for `timeout` from then (the kernel's `add`): a flood turns over by age,
// and a full set records nobody new until the oldest expire (its size is
// the memory's bound). The accepted are refreshed by each new connection
// (`update`): an element's age is the time since the last one.
struct EvidenceSet {
  std::string_view name;
  bool v4;
  bool refused;
  std::uint32_t size;
  std::chrono::seconds timeout;
};
inline constexpr std::array<EvidenceSet, 4> kEvidenceSets = {{
    {"refused4", true, true, 2048, std::chrono::minutes(10)},
    {"refused6", false, true, 2048, std::chrono::minutes(10)},
    {"accepted4", true, false, 1024, std::chrono::hours(24)},
    {"accepted6", false, false, 1024, std::chrono::hours(24)},
}};

// One element of an evidence set: a source on a port.
struct Sighting {
  boost::asio::ip::address source;
  std::uint16_t port = 0;
  std::uint64_t packets = 0;  // refused: first packets (SYNs and their retries)
  // Refused: since the first packet of this record; accepted: since the
  // last new connection.
  std::chrono::seconds ago{0};
  friend bool operator==(const Sighting&, const Sighting&) = default;
};

struct Evidence {
  std::vector<Sighting> refused;
  std::vector<Sighting> accepted;
  // The kernel's handle of the table that holds the record: a table made
  // anew (by tetherd or by anyone, even identical) has another, and its
  // record starts afresh.
  std::uint64_t table = 0;
};

// The nft script that atomically replaces the table with `allowlist`.
std::string render_replace(const Allowlist& allowlist);
// The nft script that turns the sets of `from` into those of `to`, in one
// transaction, touching only elements that change: a source that stays is
// never absent, not even inside the transaction. Deletes come first so that
// a merged interval may replace the pieces it covers. Empty when nothing
// changes. Requires the same verdict (the rules are not touched).
std::string render_update(const Allowlist& from, const Allowlist& to);
// The nft script that removes the table if present.
std::string render_remove();

struct LiveTable {
  Allowlist allowlist;
  bool rules_intact = false;  // the chains and their rules are exactly as rendered
  std::uint64_t dropped_packets = 0;
  Evidence evidence;  // elements tetherd cannot read are left out
};

// Parses `nft -j list table inet tetherd`. An error means the JSON is not
// nftables' listing at all; a table that was tampered with parses, with
// rules_intact false.
Result<LiveTable> parse_live_table(std::string_view json);

}  // namespace tetherd::firewall
