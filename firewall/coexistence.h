#pragma once
// Other firewalls beside tetherd's table. An nftables `accept` ends only its
// own base chain while a `drop` anywhere is final, so a base chain elsewhere
// whose policy is drop (ufw's INPUT, a hand-written default-deny table)
// blocks the cloud even where tetherd allows it. tetherd cannot open what
// another table closes; it finds such chains and says so plainly.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"

namespace tetherd::firewall {

struct BlockingChain {
  std::string family;
  std::string table;
  std::string chain;
  std::string hook;  // input: host sockets; forward: DNAT-published ports
  bool ufw = false;  // the table is ufw's (it holds ufw-user-input)
  friend bool operator==(const BlockingChain&, const BlockingChain&) = default;
};

// Parses `nft -j list chains`: the base chains, other than tetherd's, that
// drop by default on a path the managed ports take (prerouting, input,
// forward; netdev ingress).
Result<std::vector<BlockingChain>> parse_blocking_chains(std::string_view json);

// One plain sentence for the log and `tetherctl check`.
std::string explain(const BlockingChain& chain, const std::vector<std::uint16_t>& ports);

}  // namespace tetherd::firewall
