#pragma once
// A netlink socket subscribed to multicast groups, non-blocking, for a
// monitor to read on the Asio loop (nft_monitor, address_monitor).

#include <cstdint>
#include <string>

#include "agent/core/result.h"

namespace tetherd {

// `protocol`: NETLINK_NETFILTER, NETLINK_ROUTE, ...; `groups`: the bind
// mask; `what`: for the error ("nftables notifications"). A receive buffer
// of `rcvbuf` bytes when not 0 (SO_RCVBUFFORCE, else SO_RCVBUF). The file
// descriptor, or why not.
Result<int> subscribe_netlink(int protocol, std::uint32_t groups, const std::string& what,
                              int rcvbuf = 0);

}  // namespace tetherd
