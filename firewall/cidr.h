#pragma once
// An IPv4 or IPv6 network in CIDR notation, normalised: host bits cleared.
// A bare address is a single host (/32 or /128).

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/ip/address.hpp>

#include "agent/core/result.h"

namespace tetherd::firewall {

struct Cidr {
  boost::asio::ip::address network;  // host bits are zero
  std::uint8_t prefix = 0;

  bool is_v4() const { return network.is_v4(); }
  std::string to_string() const;
  friend auto operator<=>(const Cidr& a, const Cidr& b) {
    // IPv4 first.
    if (auto c = b.network.is_v4() <=> a.network.is_v4(); c != 0) return c;
    if (a.network < b.network) return std::strong_ordering::less;
    if (b.network < a.network) return std::strong_ordering::greater;
    return a.prefix <=> b.prefix;
  }
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

Result<Cidr> parse_cidr(std::string_view text);

}  // namespace tetherd::firewall
