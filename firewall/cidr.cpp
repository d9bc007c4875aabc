#include "firewall/cidr.h"

#include <charconv>

#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>

namespace tetherd::firewall {
namespace {

namespace ip = boost::asio::ip;

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

}  // namespace

std::string Cidr::to_string() const {
  return network.to_string() + "/" + std::to_string(prefix);
}

Result<Cidr> parse_cidr(std::string_view text) {
  if (text.empty()) return make_error("empty CIDR");
  const auto slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  if (addr_text.find('%') != std::string_view::npos) {
    return make_error("invalid CIDR " + quoted(text) + ": zone indexes (%) are not allowed");
  }
  boost::system::error_code ec;
  const ip::address addr = ip::make_address(std::string(addr_text), ec);
  if (ec) return make_error("invalid CIDR " + quoted(text) + ": not an IP address");
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    return make_error("invalid CIDR " + quoted(text) + ": IPv4-mapped IPv6; write the IPv4 form");
  }
  const unsigned max_prefix = addr.is_v4() ? 32 : 128;

  unsigned prefix = max_prefix;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    const auto [end, err] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || err != std::errc() || end != p.data() + p.size()) {
      return make_error("invalid CIDR " + quoted(text) + ": prefix length is not a number");
    }
    if (prefix > max_prefix) {
      return make_error("invalid CIDR " + quoted(text) + ": prefix length must be 0-" +
                        std::to_string(max_prefix));
    }
  }

  Cidr out;
  out.prefix = static_cast<std::uint8_t>(prefix);
  if (addr.is_v4()) {
    out.network = ip::network_v4(addr.to_v4(), prefix).network();
  } else {
    out.network = ip::network_v6(addr.to_v6(), prefix).network();
  }
  return out;
}

}  // namespace tetherd::firewall
