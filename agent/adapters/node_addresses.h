#pragma once
// The node's own addresses (getifaddrs): always allowed, so the node never
// locks itself out of its own API server.

#include <vector>

#include <boost/asio/ip/address.hpp>

namespace tetherd {

std::vector<boost::asio::ip::address> node_addresses();

}  // namespace tetherd
