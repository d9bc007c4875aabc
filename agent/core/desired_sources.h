#pragma once
// The control plane's wish for the firewall (EdgeNode spec.firewall), as
// received: plain data the pure spec decoding (core/edge_node.h) produces
// and the firewall (firewall/allowlist.h) validates and applies.

#include <cstdint>
#include <string>
#include <vector>

namespace tetherd::firewall {

struct DesiredSources {
  std::vector<std::string> sources;  // CIDRs, IPv4 or IPv6
  std::vector<std::uint16_t> ports;  // optional; each must be in Policy::ports
  friend bool operator==(const DesiredSources&, const DesiredSources&) = default;
};

}  // namespace tetherd::firewall
