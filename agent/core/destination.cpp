#include "agent/core/destination.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tetherd {

Result<Destination> parse_destination(std::string_view address) {
  const std::string quoted = "\"" + std::string(address) + "\": ";
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return make_error(quoted + "not host:port");
  std::string_view host = address.substr(0, colon);
  const std::string_view port_text = address.substr(colon + 1);
  if (host.front() == '[') {
    if (host.back() != ']' || host.size() < 3) return make_error(quoted + "an unclosed [");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return make_error(quoted + "an IPv6 address is written in brackets, [::1]:6443");
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
    return make_error(quoted + "the port is not a number from 1 to 65535");
  Destination d;
  d.host = std::string(host);
  std::transform(d.host.begin(), d.host.end(), d.host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  d.port = static_cast<std::uint16_t>(port);
  return d;
}

std::string to_string(const Destination& d) {
  const bool v6 = d.host.find(':') != std::string::npos;
  return (v6 ? "[" + d.host + "]" : d.host) + ":" + std::to_string(d.port);
}

}  // namespace tetherd
