// Who reaches the node and who is refused, as the kernel records it
// (nft_ruleset.h, kEvidenceSets), on the real kernel in network namespaces:
// the cloud's connections are recorded, a stranger's attempts are, the
// node's own are not, and a flood of strangers stays within the set's size.

#include <fstream>

#include <gtest/gtest.h>

#include "agent/app/address_change.h"
#include "firewall/firewall.h"
#include "firewall/nftables_backend.h"
#include "test/support/netns.h"
#include "test/support/temp_dir.h"

namespace tetherd::firewall {
namespace {

namespace ip = boost::asio::ip;
using namespace std::chrono_literals;
using test::Outcome;

class EvidenceKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces and nft tables";
    topo_ = std::make_unique<test::Topology>();
    topo_->listen_on({6443, 4191, 22});
    Policy p;
    p.ports = {6443, 4143, 4191};
    p.cluster_networks = {*parse_cidr("10.42.0.0/16")};
    p.verdict = Verdict::kReject;  // a refused connect is seen at once
    test::InNetns in(topo_->node);
    backend_ = std::make_unique<NftablesBackend>();
    std::vector<ip::address> node;
    for (const char* a : {"192.0.2.1", "198.51.100.1", "2001:db8:a::1", "2001:db8:b::1"})
      node.push_back(ip::make_address(a));
    firewall_ = std::make_unique<Firewall>(*backend_, p, node);
    // The cloud is peer a, by the control plane's word.
    ASSERT_TRUE(firewall_->update({{"192.0.2.2/32", "2001:db8:a::2/128"}, {}}).has_value());
  }

  Evidence evidence() {
    test::InNetns in(topo_->node);
    auto r = backend_->read();
    EXPECT_TRUE(r.has_value() && r->has_value());
    return r && *r ? (*r)->evidence : Evidence{};
  }
  static const Sighting* find(const std::vector<Sighting>& in, const char* source,
                              std::uint16_t port) {
    for (const Sighting& s : in)
      if (s.source == ip::make_address(source) && s.port == port) return &s;
    return nullptr;
  }

  std::unique_ptr<test::Topology> topo_;
  std::unique_ptr<NftablesBackend> backend_;
  std::unique_ptr<Firewall> firewall_;
};

TEST_F(EvidenceKernel, TheCloudsConnectionsAreRecordedPerPort) {
  EXPECT_TRUE(evidence().accepted.empty()) << "nothing connected yet";
  ASSERT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kConnected);
  ASSERT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kConnected);
  ASSERT_EQ(topo_->connect_from(topo_->a, "2001:db8:a::1", 4191), Outcome::kConnected);
  ASSERT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 22), Outcome::kConnected);
  const Evidence e = evidence();
  const Sighting* v4 = find(e.accepted, "192.0.2.2", 6443);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(v4->packets, 2u) << "one per new connection, not per packet";
  EXPECT_LE(v4->ago, 10s) << "just now (10 s: a loaded machine between the connect and the read)";
  const Sighting* v6 = find(e.accepted, "2001:db8:a::2", 4191);
  ASSERT_NE(v6, nullptr);
  EXPECT_EQ(v6->packets, 1u);
  EXPECT_EQ(e.accepted.size(), 2u) << "port 22 is not managed: not recorded";
  EXPECT_TRUE(e.refused.empty());
}

TEST_F(EvidenceKernel, AStrangerIsRecordedAsRefusedAndTheNodeItselfIsNotTheCloud) {
  ASSERT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 4191), Outcome::kRefused);
  ASSERT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 4191), Outcome::kRefused);
  ASSERT_EQ(topo_->connect_from(topo_->b, "2001:db8:b::1", 6443), Outcome::kRefused);
  // The node to itself: allowed, and not the cloud.
  ASSERT_EQ(topo_->connect_from(topo_->node, "192.0.2.1", 6443), Outcome::kConnected);
  const Evidence e = evidence();
  const Sighting* v4 = find(e.refused, "198.51.100.2", 4191);
  ASSERT_NE(v4, nullptr);
  EXPECT_EQ(v4->packets, 2u);
  EXPECT_LE(v4->ago, 10s) << "just now (10 s: a loaded machine between the connect and the read)";
  ASSERT_NE(find(e.refused, "2001:db8:b::2", 6443), nullptr);
  EXPECT_EQ(e.refused.size(), 2u);
  EXPECT_TRUE(e.accepted.empty()) << "the node's own connection is not the cloud's";
}

// The cloud's namespace changes its address: its connections are refused
// from the new one, and the hint names it (with no wait for the cloud to be
// quiet: quiet_after 0); the admin allows the new address, and the hint is
// gone while the refused record is still there.
TEST_F(EvidenceKernel, TheCloudsNewAddressIsNamedUntilItIsAllowed) {
  ASSERT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4191), Outcome::kConnected);
  test::sh("ip -n " + topo_->a + " addr del 192.0.2.2/24 dev eth0");
  test::sh("ip -n " + topo_->a + " addr add 192.0.2.3/24 dev eth0");
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4191), Outcome::kRefused);
  HintPolicy now;  // with no wait for the cloud to go quiet, nor for retries
  now.quiet_after = 0s;
  now.trying_for = 0s;
  auto hint = address_change_hint(evidence(), firewall_->desired(), 24h, now);
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->stranger, ip::make_address("192.0.2.3"));
  EXPECT_EQ(hint->ports, std::vector<std::uint16_t>{4191});
  EXPECT_EQ(hint->attempts, 6u);
  EXPECT_EQ(hint->cloud_source, "192.0.2.2/32");

  {
    test::InNetns in(topo_->node);
    ASSERT_TRUE(firewall_->update({{"192.0.2.3/32", "2001:db8:a::2/128"}, {}}).has_value());
  }
  ASSERT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4191), Outcome::kConnected);
  const Evidence after = evidence();
  EXPECT_NE(find(after.refused, "192.0.2.3", 4191), nullptr) << "the record ages out by itself";
  EXPECT_NE(find(after.accepted, "192.0.2.3", 4191), nullptr);
  EXPECT_FALSE(address_change_hint(after, firewall_->desired(), 24h, now));
}

// Ten thousand strangers (addresses of peer b's network, each connecting
// once): the record holds the set's size and no more, the oldest kept, and
// the rules go on refusing everyone (a full set must not stop the verdict).
TEST_F(EvidenceKernel, AFloodOfStrangersStaysWithinTheCap) {
  test::TempDir tmp;
  constexpr int kStrangers = 10000;
  {
    std::ofstream batch(tmp.file("addresses"));
    for (int i = 0; i < kStrangers; ++i)
      batch << "address add 2001:db8:b::1:" << std::hex << i << std::dec << "/128 dev eth0 nodad\n";
  }
  test::sh("ip -n " + topo_->b + " -6 -batch " + tmp.path() + "/addresses");
  const ip::address node = ip::make_address("2001:db8:b::1");
  int sent = 0;
  {
    test::InNetns in(topo_->b);
    for (int i = 0; i < kStrangers; ++i) {
      char from[64];
      std::snprintf(from, sizeof from, "2001:db8:b::1:%x", i);
      const int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      socklen_t len = 0;
      const sockaddr_storage src = test::to_sockaddr(ip::make_address(from), 0, len);
      const sockaddr_storage dst = test::to_sockaddr(node, 4191, len);
      if (bind(fd, reinterpret_cast<const sockaddr*>(&src), len) == 0 &&
          (connect(fd, reinterpret_cast<const sockaddr*>(&dst), len) == 0 || errno == EINPROGRESS))
        ++sent;  // the SYN is out
      close(fd);
    }
  }
  ASSERT_EQ(sent, kStrangers);
  const Evidence e = evidence();
  std::size_t v6 = 0;
  for (const Sighting& s : e.refused)
    v6 += s.source.is_v6();
  const std::uint32_t cap = kEvidenceSets[1].size;
  EXPECT_EQ(v6, cap) << "full, and not beyond";
  EXPECT_NE(find(e.refused, "2001:db8:b::1:0", 4191), nullptr) << "the first are kept";
  EXPECT_EQ(find(e.refused, "2001:db8:b::1:270f", 4191), nullptr) << "the last are not recorded";
  // And a stranger past the cap is still refused; the cloud still gets in.
  // (The node's answers to the ten thousand filled its neighbour table:
  // emptied first, so that its answers to these two can go out.)
  test::sh("ip -n " + topo_->node + " -6 neigh flush all");
  EXPECT_EQ(topo_->connect_from(topo_->b, "2001:db8:b::1", 4191), Outcome::kRefused);
  EXPECT_EQ(topo_->connect_from(topo_->a, "2001:db8:a::1", 4191), Outcome::kConnected);
}

// A ruleset flush takes the evidence with the table: the repair makes it
// anew, empty (the report says "or since tetherd's table was made").
TEST_F(EvidenceKernel, AfterAFlushTheRepairedTableRecordsAfresh) {
  ASSERT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 4191), Outcome::kRefused);
  ASSERT_EQ(evidence().refused.size(), 1u);
  test::sh("ip netns exec " + topo_->node + " nft flush ruleset");
  {
    test::InNetns in(topo_->node);
    ASSERT_EQ(firewall_->reconcile().value(), Firewall::Drift::kMissing);
  }
  EXPECT_TRUE(evidence().refused.empty());
  ASSERT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 4191), Outcome::kRefused);
  EXPECT_NE(find(evidence().refused, "198.51.100.2", 4191), nullptr);
}

// Someone makes the very same table again (`nft -f` of the same ruleset,
// as a configuration tool restoring a saved one would): the same rules and
// sets, so no drift, but a new table whose record restarted. The kernel's
// handle of the table tells (the keeper restarts its watch on it).
TEST_F(EvidenceKernel, AnIdenticalTableMadeAgainHasAnotherHandle) {
  const std::uint64_t first = evidence().table;
  ASSERT_NE(first, 0u);
  const std::string file = "/tmp/tetherd-evidence-" + topo_->node + ".nft";
  std::ofstream(file) << render_replace(firewall_->desired());
  test::sh("ip netns exec " + topo_->node + " nft -f " + file);
  std::remove(file.c_str());
  {
    test::InNetns in(topo_->node);
    ASSERT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone);
  }
  EXPECT_NE(evidence().table, first);
  EXPECT_NE(evidence().table, 0u);
}

}  // namespace
}  // namespace tetherd::firewall
