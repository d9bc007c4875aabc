#pragma once
// Watches nftables' netlink notifications (NFNLGRP_NFTABLES) in the network
// namespace where it is started, on the Asio loop, and reports transactions
// by other processes that touched table inet tetherd (firewall/nft_events.h).
// Lost notifications (ENOBUFS: the receive buffer overflowed) are reported
// as a change too, since nothing can then be ruled out.
//
// Needs CAP_NET_ADMIN. Under a PID namespace the kernel reports pids that do
// not match getpid(), so tetherd's own commits are reported too; each then
// costs one read of the table that finds nothing to repair.

#include <array>
#include <cstddef>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "agent/core/firewall_monitor.h"
#include "agent/core/log.h"
#include "firewall/nft_events.h"

namespace tetherd {

class NftMonitor final : public FirewallMonitor {
 public:
  NftMonitor(boost::asio::io_context& io, Log& log);
  Result<void> start(std::function<void()> changed) override;
  void stop() override;

 private:
  void read_next();

  Log& log_;
  boost::asio::posix::stream_descriptor socket_;
  firewall::NftEventScanner scanner_;
  std::function<void()> changed_;
  // A datagram larger than this is truncated, which the scanner treats as a
  // change: the bound costs at most a needless read of the table. The kernel
  // sends each notification in one skb of at most a page or two. Left
  // uninitialised: pages the kernel never writes are never resident.
  std::array<std::byte, 16 * 1024> buffer_;
};

}  // namespace tetherd
