#include "firewall/nft_events.h"

#include <arpa/inet.h>
#include <cstring>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <string_view>

#include "firewall/nft_ruleset.h"

namespace tetherd::firewall {
namespace {

// Netlink structures are read by copy: a datagram buffer carries no
// alignment promise.
template <typename T>
bool read_at(std::span<const std::byte> data, std::size_t offset, T& out) {
  if (offset > data.size() || data.size() - offset < sizeof(T)) return false;
  std::memcpy(&out, data.data() + offset, sizeof(T));
  return true;
}

struct Attribute {
  std::uint16_t type;
  std::span<const std::byte> payload;
};

// Finds attribute `type` among the top-level attributes in `attrs`.
bool find_attribute(std::span<const std::byte> attrs, std::uint16_t type, Attribute& out) {
  std::size_t offset = 0;
  nlattr a{};
  while (read_at(attrs, offset, a)) {
    if (a.nla_len < NLA_HDRLEN || a.nla_len > attrs.size() - offset) return false;
    if ((a.nla_type & NLA_TYPE_MASK) == type) {
      out = {type, attrs.subspan(offset + NLA_HDRLEN, a.nla_len - NLA_HDRLEN)};
      return true;
    }
    offset += NLA_ALIGN(a.nla_len);
  }
  return false;
}

// For every object message (table, chain, rule, set, element, object,
// flowtable), attribute 1 is the name of the table it belongs to.
constexpr std::uint16_t kTableNameAttribute = 1;
static_assert(NFTA_TABLE_NAME == 1 && NFTA_CHAIN_TABLE == 1 && NFTA_RULE_TABLE == 1 &&
              NFTA_SET_TABLE == 1 && NFTA_SET_ELEM_LIST_TABLE == 1 && NFTA_OBJ_TABLE == 1 &&
              NFTA_FLOWTABLE_TABLE == 1);

bool names_our_table(std::span<const std::byte> attrs) {
  Attribute a{};
  if (!find_attribute(attrs, kTableNameAttribute, a)) return false;
  std::string_view name(reinterpret_cast<const char*>(a.payload.data()), a.payload.size());
  if (!name.empty() && name.back() == '\0') name.remove_suffix(1);
  return name == kTableName;
}

}  // namespace

bool NftEventScanner::feed(std::span<const std::byte> datagram) {
  bool foreign = false;
  std::size_t offset = 0;
  nlmsghdr h{};
  while (offset < datagram.size()) {
    if (!read_at(datagram, offset, h) || h.nlmsg_len < NLMSG_HDRLEN ||
        h.nlmsg_len > datagram.size() - offset) {
      return true;  // truncated or garbled: assume the worst
    }
    const auto message = datagram.subspan(offset, h.nlmsg_len);
    offset += NLMSG_ALIGN(h.nlmsg_len);
    if ((h.nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) continue;

    nfgenmsg g{};
    if (!read_at(message, NLMSG_HDRLEN, g)) return true;
    const auto attrs = message.subspan(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
    const int kind = h.nlmsg_type & 0xff;
    if (kind == NFT_MSG_NEWGEN) {
      Attribute pid_attr{};
      std::uint32_t pid_be = 0;
      const bool ours = find_attribute(attrs, NFTA_GEN_PROC_PID, pid_attr) &&
                        read_at(pid_attr.payload, 0, pid_be) && ntohl(pid_be) == own_pid_;
      foreign = foreign || (touched_ && !ours);
      touched_ = false;
    } else if (g.nfgen_family == NFPROTO_INET && names_our_table(attrs)) {
      touched_ = true;
    }
  }
  return foreign;
}

}  // namespace tetherd::firewall
