#pragma once
// Reads nftables' netlink notifications (group NFNLGRP_NFTABLES) to tell when
// someone else changed tetherd's table: `nft flush ruleset`, `systemctl
// reload nftables`, a hand edit. The kernel sends one message per object a
// transaction touches, then NFT_MSG_NEWGEN with the pid of the committing
// process; a transaction is "foreign" when that pid is not tetherd's.
//
// Pure: datagrams in, decisions out. The socket is agent/adapters/nft_monitor.

#include <cstddef>
#include <cstdint>
#include <span>

namespace tetherd::firewall {

class NftEventScanner {
 public:
  explicit NftEventScanner(std::uint32_t own_pid) : own_pid_(own_pid) {}

  // Feeds one datagram (any number of netlink messages; a transaction may
  // span several datagrams). Returns true when it completes a transaction,
  // committed by another process, that touched table inet tetherd — or when
  // the datagram cannot be read, since then nothing can be ruled out.
  bool feed(std::span<const std::byte> datagram);

 private:
  std::uint32_t own_pid_;
  bool touched_ = false;  // the transaction under way touched our table
};

}  // namespace tetherd::firewall
