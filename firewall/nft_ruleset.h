#pragma once
// tetherd's nftables table, as text for libnftables, and read back from the
// kernel's JSON listing.
//
// Layout (one table, `inet tetherd`; created whole, then updated by element
// diffs, see render_update):
//   set allowed4 / allowed6   interval sets: lookup cost does not grow with N
//   set ports                 the managed ports
//   chain prerouting          filter hook at priority -110 (dstnat - 10): it
//                             runs before DNAT, so ports k3s publishes through
//                             DNAT (servicelb, hostPort, NodePort) are matched
//                             by the port the peer dialled.
//   two rules: a TCP packet to a managed port of a local address
//   (`fib daddr type local`) from a source not in the set is dropped (or
//   rejected with a TCP reset). tetherd never accepts anything: everything
//   else falls through to the chain's accept policy and on to other tables.
//
// Coexistence: an nftables `accept` ends only its own base chain, while a
// `drop` anywhere is final. So this table can block, but it cannot open a port
// that ufw, firewalld or another table's default-deny closes; that is why the
// backend checks for such tables beside it (see DESIGN.md).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/result.h"
#include "firewall/allowlist.h"

namespace tetherd::firewall {

inline constexpr std::string_view kTableFamily = "inet";
inline constexpr std::string_view kTableName = "tetherd";
inline constexpr int kChainPriority = -110;

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
  bool rules_intact = false;  // the chain and its two rules are as rendered
  std::uint64_t dropped_packets = 0;
};

// Parses `nft -j list table inet tetherd`. An error means the JSON is not
// nftables' listing at all; a table that was tampered with parses, with
// rules_intact false.
Result<LiveTable> parse_live_table(std::string_view json);

}  // namespace tetherd::firewall
