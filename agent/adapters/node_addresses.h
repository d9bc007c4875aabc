#pragma once
// The node's own addresses (getifaddrs): always allowed, so the node never
// locks itself out of its own API server.

#include <vector>

#include <boost/asio/ip/address.hpp>

namespace tetherd {

// Empty when they cannot be read; `ok` (when given) says which.
std::vector<boost::asio::ip::address> node_addresses(bool* ok = nullptr);

}  // namespace tetherd
