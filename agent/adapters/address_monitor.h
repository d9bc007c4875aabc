#pragma once
// Watches the node's own addresses come and go (rtnetlink's IPv4 and IPv6
// address groups: DHCP, SLAAC, a resume on another network, an interface
// brought up), on the Asio loop, in the network namespace where it is
// started. It reads no message: any notification, a burst of them, or lost
// ones (ENOBUFS) mean "look again", and one look is posted per burst.

#include <array>
#include <cstddef>
#include <functional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "agent/core/log.h"
#include "agent/core/result.h"

namespace tetherd {

class AddressMonitor {
 public:
  AddressMonitor(boost::asio::io_context& io, Log& log);
  // `changed` runs on the loop after a burst of address notifications.
  Result<void> start(std::function<void()> changed);
  void stop();

 private:
  void read_next();

  boost::asio::io_context& io_;
  Log& log_;
  boost::asio::posix::stream_descriptor socket_;
  std::function<void()> changed_;
  bool look_pending_ = false;
  // Only read to be emptied: what the messages say is read from the kernel
  // afresh (getifaddrs), whole.
  std::array<std::byte, 8 * 1024> buffer_;
};

}  // namespace tetherd
