#include "agent/adapters/node_addresses.h"

#include <algorithm>
#include <cstring>
#include <ifaddrs.h>
#include <netinet/in.h>

namespace tetherd {

std::vector<boost::asio::ip::address> node_addresses(bool* ok) {
  namespace ip = boost::asio::ip;
  std::vector<ip::address> out;
  ifaddrs* list = nullptr;
  const bool read = getifaddrs(&list) == 0;
  if (ok) *ok = read;
  if (!read) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      out.emplace_back(ip::address_v4(ntohl(sin->sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      ip::address_v6::bytes_type bytes;
      std::memcpy(bytes.data(), &sin6->sin6_addr, bytes.size());
      out.emplace_back(ip::address_v6(bytes));
    }
  }
  freeifaddrs(list);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace tetherd
