#pragma once
// tetherd's nftables table, as text for libnftables, and read back from the
// kernel's JSON listing.
//
// Layout (one table, `inet tetherd`; created whole, then updated by element
// diffs, see render_update):
//   set allowed4 / allowed6   interval sets: lookup cost does not grow with N
//   set ports                 the managed ports
//   set cluster4 / cluster6   the cluster's networks (pods behind the node)
//   three base chains, each with two rules (IPv4, IPv6) that drop (or reject
//   with a TCP reset) a TCP packet from a source not in the allowed set:
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
//   port dialled on the node. Every packet is judged, whatever conntrack
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
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/result.h"
#include "firewall/allowlist.h"

namespace tetherd::firewall {

inline constexpr std::string_view kTableFamily = "inet";
inline constexpr std::string_view kTableName = "tetherd";

struct ChainLayout {
  std::string_view name;  // also its hook
  int priority;
  bool local_only;    // `fib daddr type local`
  bool cluster_only;  // `ip daddr @cluster4` / `ip6 daddr @cluster6`
};
inline constexpr std::array<ChainLayout, 3> kChains = {{
    {"prerouting", -110, true, false},
    {"input", -10, false, false},
    {"forward", -10, false, true},
}};

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
};

// Parses `nft -j list table inet tetherd`. An error means the JSON is not
// nftables' listing at all; a table that was tampered with parses, with
// rules_intact false.
Result<LiveTable> parse_live_table(std::string_view json);

}  // namespace tetherd::firewall
