#include "agent/adapters/nft_monitor.h"

#include <cerrno>
#include <cstring>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace tetherd {

NftMonitor::NftMonitor(boost::asio::io_context& io, Log& log)
    : log_(log), socket_(io), scanner_(static_cast<std::uint32_t>(getpid())) {}

Result<void> NftMonitor::start(std::function<void()> changed) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  if (fd < 0)
    return make_error(std::string("cannot open a netfilter netlink socket: ") +
                      std::strerror(errno));
  // Room for a burst (a large set replaced at once); an overflow is survived.
  const int rcvbuf = 1 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = 1u << (NFNLGRP_NFTABLES - 1);
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    return make_error(std::string("cannot subscribe to nftables notifications: ") +
                      std::strerror(err));
  }
  socket_.assign(fd);
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
