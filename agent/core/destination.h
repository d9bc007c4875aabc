#pragma once
// A "host:port" the tunnel may dial for the cloud (tunnel.destinations),
// e.g. "127.0.0.1:6443". Written one way only, so that comparing two is
// comparing their parts: an IPv6 address in brackets ("[::1]:6443"), a
// host name in lower case.

#include <cstdint>
#include <string>
#include <string_view>

#include "agent/core/result.h"

namespace tetherd {

struct Destination {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  friend bool operator==(const Destination&, const Destination&) = default;
};

Result<Destination> parse_destination(std::string_view address);
std::string to_string(const Destination& d);

}  // namespace tetherd
