#include "agent/adapters/address_monitor.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <boost/asio/post.hpp>

#include "agent/adapters/netlink_subscription.h"

namespace tetherd {

AddressMonitor::AddressMonitor(boost::asio::io_context& io, Log& log)
    : io_(io), log_(log), socket_(io) {}

Result<void> AddressMonitor::start(std::function<void()> changed) {
  auto fd = subscribe_netlink(NETLINK_ROUTE, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
                              "address notifications");
  if (!fd) return fd.error();
  socket_.assign(*fd);
  changed_ = std::move(changed);
  read_next();
  return {};
}

void AddressMonitor::read_next() {
  socket_.async_read_some(
      boost::asio::buffer(buffer_), [this](const boost::system::error_code& ec, std::size_t) {
        if (ec == boost::asio::error::operation_aborted || ec == boost::asio::error::bad_descriptor)
          return;  // stopped
        if (ec && ec != boost::asio::error::no_buffer_space) {
          log_.error("address-monitor-failed",
                     "stopped watching the node's addresses: " + ec.message() +
                         "; new addresses are allowed from the next restart only");
          return;
        }
        // A burst (an interface with several addresses) is one look: the
        // look runs after the reads already queued on the loop.
        if (!look_pending_) {
          look_pending_ = true;
          boost::asio::post(io_, [this] {
            look_pending_ = false;
            if (socket_.is_open()) changed_();
          });
        }
        read_next();
      });
}

void AddressMonitor::stop() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

}  // namespace tetherd
