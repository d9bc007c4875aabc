#include "agent/adapters/nft_monitor.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <unistd.h>

#include "agent/adapters/netlink_subscription.h"

namespace tetherd {

NftMonitor::NftMonitor(boost::asio::io_context& io, Log& log)
    : log_(log), socket_(io), scanner_(static_cast<std::uint32_t>(getpid())) {}

Result<void> NftMonitor::start(std::function<void()> changed) {
  // Room for a burst (a large set replaced at once); an overflow is survived.
  auto fd = subscribe_netlink(NETLINK_NETFILTER, 1u << (NFNLGRP_NFTABLES - 1),
                              "nftables notifications", 1 << 20);
  if (!fd) return fd.error();
  socket_.assign(*fd);
  changed_ = std::move(changed);
  read_next();
  return {};
}

void NftMonitor::read_next() {
  socket_.async_read_some(
      boost::asio::buffer(buffer_), [this](const boost::system::error_code& ec, std::size_t n) {
        if (ec == boost::asio::error::operation_aborted || ec == boost::asio::error::bad_descriptor)
          return;  // stopped
        if (ec == boost::asio::error::no_buffer_space) {
          changed_();  // notifications were lost
        } else if (ec) {
          log_.error("firewall-monitor-failed",
                     "stopped watching nftables notifications: " + ec.message() +
                         "; drift is now repaired by the periodic check only");
          return;
        } else if (scanner_.feed(std::span<const std::byte>(buffer_.data(), n))) {
          changed_();
        }
        read_next();
      });
}

void NftMonitor::stop() {
  boost::system::error_code ignored;
  socket_.close(ignored);
}

}  // namespace tetherd
