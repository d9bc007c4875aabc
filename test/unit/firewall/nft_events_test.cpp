// Notifications built byte by byte as the kernel sends them (nf_tables_api.c:
// one message per object, then NFT_MSG_NEWGEN with the committing pid). The
// scanner against the real kernel: test/integration/firewall/.

#include "firewall/nft_events.h"

#include <arpa/inet.h>
#include <cstring>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

constexpr std::uint32_t kSelf = 4242;
constexpr std::uint32_t kOther = 77;

class Datagram {
 public:
  // One nftables message with a table-name attribute (attribute 1).
  Datagram& object(int kind, int family, const std::string& table) {
    std::vector<std::byte> attr = attribute(1, table.c_str(), table.size() + 1);
    return message(kind, family, attr);
  }
  Datagram& newgen(std::optional<std::uint32_t> pid) {
    std::vector<std::byte> attrs = attribute(NFTA_GEN_ID, "\0\0\0\1", 4);
    if (pid) {
      const std::uint32_t be = htonl(*pid);
      auto a = attribute(NFTA_GEN_PROC_PID, &be, 4);
      attrs.insert(attrs.end(), a.begin(), a.end());
    }
    return message(NFT_MSG_NEWGEN, AF_UNSPEC, attrs);
  }
  Datagram& raw(std::vector<std::byte> bytes) {
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    return *this;
  }
  std::span<const std::byte> bytes() const { return bytes_; }
  std::vector<std::byte>& mutable_bytes() { return bytes_; }

 private:
  static std::vector<std::byte> attribute(std::uint16_t type, const void* data, std::size_t n) {
    std::vector<std::byte> out(NLA_ALIGN(NLA_HDRLEN + n));
    nlattr a{static_cast<std::uint16_t>(NLA_HDRLEN + n), type};
    std::memcpy(out.data(), &a, sizeof a);
    std::memcpy(out.data() + NLA_HDRLEN, data, n);
    return out;
  }
  Datagram& message(int kind, int family, const std::vector<std::byte>& attrs) {
    nlmsghdr h{};
    h.nlmsg_len = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)) + attrs.size();
    h.nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | kind);
    nfgenmsg g{static_cast<std::uint8_t>(family), NFNETLINK_V0, 0};
    const std::size_t at = bytes_.size();
    bytes_.resize(at + NLMSG_ALIGN(h.nlmsg_len));
    std::memcpy(bytes_.data() + at, &h, sizeof h);
    std::memcpy(bytes_.data() + at + NLMSG_HDRLEN, &g, sizeof g);
    std::memcpy(bytes_.data() + at + NLMSG_HDRLEN + NLMSG_ALIGN(sizeof g), attrs.data(),
                attrs.size());
    return *this;
  }
  std::vector<std::byte> bytes_;
};

TEST(NftEventScanner, AFlushBySomeoneElseIsAChange) {
  NftEventScanner s(kSelf);
  EXPECT_TRUE(s.feed(Datagram()
                         .object(NFT_MSG_DELTABLE, NFPROTO_INET, "tetherd")
                         .object(NFT_MSG_DELTABLE, NFPROTO_IPV4, "filter")
                         .newgen(kOther)
                         .bytes()));
}

TEST(NftEventScanner, OurOwnCommitIsNot) {
  NftEventScanner s(kSelf);
  EXPECT_FALSE(
      s.feed(Datagram().object(NFT_MSG_NEWSETELEM, NFPROTO_INET, "tetherd").newgen(kSelf).bytes()));
}

TEST(NftEventScanner, OtherTablesAreNotOurs) {
  NftEventScanner s(kSelf);
  // kube-proxy or flannel busy with their own tables: nothing to check.
  EXPECT_FALSE(s.feed(Datagram()
                          .object(NFT_MSG_NEWRULE, NFPROTO_IPV4, "nat")
                          .object(NFT_MSG_NEWRULE, NFPROTO_IPV4, "tetherd")  // ip, not inet
                          .object(NFT_MSG_NEWCHAIN, NFPROTO_INET, "tetherd2")
                          .newgen(kOther)
                          .bytes()));
}

TEST(NftEventScanner, ATransactionMaySpanDatagrams) {
  NftEventScanner s(kSelf);
  EXPECT_FALSE(s.feed(Datagram().object(NFT_MSG_DELRULE, NFPROTO_INET, "tetherd").bytes()));
  EXPECT_FALSE(s.feed(Datagram().object(NFT_MSG_DELCHAIN, NFPROTO_IPV4, "x").bytes()));
  EXPECT_TRUE(s.feed(Datagram().newgen(kOther).bytes()));
  // The next transaction starts clean.
  EXPECT_FALSE(s.feed(Datagram().newgen(kOther).bytes()));
}

TEST(NftEventScanner, ACommitWithoutAPidIsSomeoneElses) {
  NftEventScanner s(kSelf);
  EXPECT_TRUE(s.feed(
      Datagram().object(NFT_MSG_DELSET, NFPROTO_INET, "tetherd").newgen(std::nullopt).bytes()));
}

TEST(NftEventScanner, GarbleIsTreatedAsAChange) {
  NftEventScanner s(kSelf);
  Datagram d;
  d.object(NFT_MSG_DELTABLE, NFPROTO_INET, "tetherd");
  d.mutable_bytes().resize(d.mutable_bytes().size() - 3);  // truncated
  EXPECT_TRUE(s.feed(d.bytes()));

  Datagram huge;
  huge.object(NFT_MSG_NEWTABLE, NFPROTO_INET, "x");
  nlmsghdr h{};
  std::memcpy(&h, huge.mutable_bytes().data(), sizeof h);
  h.nlmsg_len = 1u << 30;  // claims more than the datagram holds
  std::memcpy(huge.mutable_bytes().data(), &h, sizeof h);
  EXPECT_TRUE(s.feed(huge.bytes()));

  EXPECT_TRUE(s.feed(Datagram().raw({std::byte{1}, std::byte{2}}).bytes()));
}

TEST(NftEventScanner, MessagesOfOtherSubsystemsAreSkipped) {
  NftEventScanner s(kSelf);
  Datagram d;
  d.object(NFT_MSG_DELTABLE, NFPROTO_INET, "tetherd");
  nlmsghdr h{};
  std::memcpy(&h, d.mutable_bytes().data(), sizeof h);
  h.nlmsg_type = NLMSG_NOOP;
  std::memcpy(d.mutable_bytes().data(), &h, sizeof h);
  EXPECT_FALSE(s.feed(d.newgen(kOther).bytes()));
  EXPECT_FALSE(s.feed({}));
}

}  // namespace
}  // namespace tetherd::firewall
