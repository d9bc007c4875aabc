// The nftables backend on the real kernel, in network namespaces made by the
// test: who can connect to what, before and after updates, with DNAT, IPv6,
// someone else's `nft flush ruleset`, and bad input.

#include <array>
#include <atomic>
#include <fstream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/nft_monitor.h"
#include "firewall/firewall.h"
#include "firewall/nft_netlink.h"
#include "firewall/nftables_backend.h"
#include "test/support/netns.h"
#include "test/support/recording_log.h"

namespace tetherd::firewall {
namespace {

using namespace std::chrono_literals;
using test::Outcome;

const std::vector<std::uint16_t> kManaged = {6443, 4143, 4191};

Policy policy(Verdict verdict = Verdict::kReject) {
  Policy p;
  p.ports = kManaged;
  p.always_allow = {*parse_cidr("10.42.0.0/16")};
  p.max_sources = 16;
  p.verdict = verdict;  // reject: a refused connect is seen at once, no timeouts
  return p;
}

std::vector<boost::asio::ip::address> node_addresses() {
  std::vector<boost::asio::ip::address> out;
  for (const char* a : {"192.0.2.1", "198.51.100.1", "2001:db8:a::1", "2001:db8:b::1"}) {
    out.push_back(boost::asio::ip::make_address(a));
  }
  return out;
}

class NftablesKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces and nft tables";
    topo_ = std::make_unique<test::Topology>();
    topo_->listen_on({6443, 4143, 4191, 22, 14143});
    // The backend lives in the node's namespace, as tetherd lives in the host's.
    test::InNetns in(topo_->node);
    backend_ = std::make_unique<NftablesBackend>();
    firewall_ = std::make_unique<Firewall>(*backend_, policy(), node_addresses());
  }

  Result<void> update(const std::vector<std::string>& sources) {
    test::InNetns in(topo_->node);
    return firewall_->update({sources, {}});
  }
  std::optional<LiveTable> live() {
    test::InNetns in(topo_->node);
    auto r = backend_->read();
    EXPECT_TRUE(r.has_value()) << r.error().message;
    return r ? *r : std::nullopt;
  }
  void node_sh(const std::string& cmd) { test::sh("ip netns exec " + topo_->node + " " + cmd); }

  // Expects `peer` to get `want` on every managed port, and port 22 always.
  void expect_access(const std::string& peer, const std::string& to, Outcome want) {
    for (std::uint16_t port : kManaged) {
      EXPECT_EQ(to_string(topo_->connect_from(peer, to, port)), to_string(want))
          << peer << " -> " << to << ":" << port;
    }
    EXPECT_EQ(topo_->connect_from(peer, to, 22), Outcome::kConnected) << "port 22 is not managed";
  }

  std::unique_ptr<test::Topology> topo_;
  std::unique_ptr<NftablesBackend> backend_;
  std::unique_ptr<Firewall> firewall_;
};

TEST_F(NftablesKernel, AllowedPeerConnectsStrangerIsRefused) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
  expect_access(topo_->b, "198.51.100.1", Outcome::kRefused);
}

TEST_F(NftablesKernel, SwappingThePeersSwapsTheResult) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  ASSERT_TRUE(update({"198.51.100.0/24"}).has_value());
  expect_access(topo_->a, "192.0.2.1", Outcome::kRefused);
  expect_access(topo_->b, "198.51.100.1", Outcome::kConnected);
}

TEST_F(NftablesKernel, IPv6Likewise) {
  ASSERT_TRUE(update({"2001:db8:a::/64"}).has_value());
  expect_access(topo_->a, "2001:db8:a::1", Outcome::kConnected);
  expect_access(topo_->b, "2001:db8:b::1", Outcome::kRefused);
  ASSERT_TRUE(update({"2001:db8:b::2"}).has_value());
  expect_access(topo_->a, "2001:db8:a::1", Outcome::kRefused);
  expect_access(topo_->b, "2001:db8:b::1", Outcome::kConnected);
}

TEST_F(NftablesKernel, DnatPublishedPortIsFilteredByTheDialledPort) {
  // As k3s's servicelb/hostPort publish a port: DNAT in prerouting from the
  // port peers dial (4143) to where the service listens (14143).
  node_sh(
      "nft 'add table ip k3snat; add chain ip k3snat pre { type nat hook prerouting priority "
      "dstnat; }; add rule ip k3snat pre tcp dport 4143 dnat to :14143'");
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4143), Outcome::kConnected);
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 4143), Outcome::kRefused)
      << "a filter after DNAT would see port 14143 and let the stranger in";
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 14143), Outcome::kConnected)
      << "the unmanaged port itself stays open";
}

TEST_F(NftablesKernel, DropVerdictDropsSilentlyAndCounts) {
  {
    test::InNetns in(topo_->node);
    firewall_ = std::make_unique<Firewall>(*backend_, policy(Verdict::kDrop), node_addresses());
  }
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443, 300ms), Outcome::kTimedOut);
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kConnected);
  auto table = live();
  ASSERT_TRUE(table);
  EXPECT_GT(table->dropped_packets, 0u) << "the dropped SYN must show in the counter";
}

TEST_F(NftablesKernel, AStayingPeerIsNeverRefusedDuringUpdates) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  std::atomic<bool> done{false};
  std::atomic<int> attempts{0}, failures{0};
  std::array<std::atomic<int>, 4> by_outcome{};
  std::thread probe([&] {
    test::InNetns in(topo_->a);
    while (!done) {
      const Outcome o = test::tcp_connect(boost::asio::ip::make_address("192.0.2.1"), 6443, 2000ms);
      ++attempts;
      ++by_outcome[static_cast<int>(o)];
      if (o != Outcome::kConnected) ++failures;
    }
  });
  // 100 updates that keep peer a and churn everything else.
  for (int i = 0; i < 100; ++i) {
    std::vector<std::string> sources = {"192.0.2.2/32"};
    if (i % 2) sources.push_back("198.51.100.2/32");
    sources.push_back("203.0.113." + std::to_string(i) + "/32");
    ASSERT_TRUE(update(sources).has_value()) << i;
    topo_->drain();
  }
  done = true;
  probe.join();
  topo_->drain();
  EXPECT_GT(attempts.load(), 0);
  EXPECT_EQ(failures.load(), 0) << "of " << attempts.load()
                                << " connects during 100 updates: " << by_outcome[1] << " refused, "
                                << by_outcome[2] << " timed out, " << by_outcome[3] << " errors";
}

// The first apply goes as one netlink batch built with libnftnl
// (nft_netlink.h): it must make exactly the table nft makes of
// render_replace's text, listed set by set and rule by rule, for both
// verdicts, with intervals at both ends of each family, adjacent ones, and
// empty sets (the evidence sets always start empty); and the tamper check
// must find it intact.
TEST_F(NftablesKernel, TheNetlinkBatchMakesTheSameTableAsTheText) {
  test::InNetns in(topo_->node);
  auto set_of = [](std::vector<const char*> cidrs) {
    AddressSet s;
    for (const char* c : cidrs)
      s.add(*parse_cidr(c));
    return s;
  };
  Allowlist full;
  full.ports = {4143, 4191, 6443};
  full.sources =
      set_of({"0.0.0.0/8", "10.42.0.0/16", "10.43.0.0/31", "10.43.0.3/32", "192.0.2.1/32",
              "255.255.255.255/32", "::1/128", "2001:db8::/32", "ffff::/16"});
  full.cluster = set_of({"10.42.0.0/16", "2001:db8:42::/56"});
  full.cloud = set_of({"192.0.2.0/24", "198.51.100.7/32", "2001:db8:c::/48", "2001:db8:d::1/128"});
  full.closed_ports = {6443};
  full.inner = set_of({"10.42.0.0/16", "127.0.0.0/8", "::1/128", "2001:db8:42::/56"});
  Allowlist bare;  // and no cloud: its sets are empty
  bare.ports = {6443};
  bare.sources = set_of({"192.0.2.2/32"});
  for (const Allowlist& base : {full, bare}) {
    for (const Verdict v : {Verdict::kDrop, Verdict::kReject}) {
      Allowlist a = base;
      a.verdict = v;
      ASSERT_TRUE(backend_->run(render_replace(a)).has_value());
      const std::string text = backend_->run("list table inet tetherd").value();
      auto r = replace_table(a);
      ASSERT_TRUE(r.has_value()) << r.error().message;
      EXPECT_EQ(backend_->run("list table inet tetherd").value(), text);
      auto live = backend_->read();
      ASSERT_TRUE(live.has_value() && live->has_value());
      EXPECT_TRUE((*live)->rules_intact);
      EXPECT_EQ((*live)->allowlist, a);
    }
  }
  // And it filters: the cloud in, the stranger refused; and the kernel
  // records both in the evidence sets, each with its counter.
  Allowlist cloud = bare;
  cloud.ports = kManaged;
  std::sort(cloud.ports.begin(), cloud.ports.end());
  cloud.cloud = set_of({"192.0.2.2/32"});
  cloud.verdict = Verdict::kReject;
  ASSERT_TRUE(replace_table(cloud).has_value());
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kConnected);
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kRefused);
  auto live = backend_->read();
  ASSERT_TRUE(live.has_value() && live->has_value());
  const Evidence& evidence = (*live)->evidence;
  ASSERT_EQ(evidence.refused.size(), 1u);
  EXPECT_EQ(evidence.refused[0].source, boost::asio::ip::make_address("198.51.100.2"));
  EXPECT_EQ(evidence.refused[0].port, 6443);
  EXPECT_GT(evidence.refused[0].packets, 0u);
  ASSERT_EQ(evidence.accepted.size(), 1u);
  EXPECT_EQ(evidence.accepted[0].source, boost::asio::ip::make_address("192.0.2.2"));
  EXPECT_EQ(evidence.accepted[0].port, 6443);
}

// firewall.closeWhenTunnelled: a closed port refuses the cloud (and says so
// in the record) and admits the inner sources; the other managed ports stay
// open to the cloud. Closing and opening are element updates of one set:
// the table, and the record it holds, stay.
TEST_F(NftablesKernel, AClosedPortRefusesTheCloudAndAdmitsTheInnerSources) {
  Policy p = policy();
  p.always_allow.push_back(*parse_cidr("198.51.100.2/32"));  // peer b
  {
    test::InNetns in(topo_->node);
    ASSERT_TRUE(firewall_->set_policy(p).has_value());
  }
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());  // peer a: the cloud
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
  const std::uint64_t table = live()->evidence.table;

  p.closed_ports = {6443};
  {
    test::InNetns in(topo_->node);
    ASSERT_TRUE(firewall_->set_policy(p).has_value());
  }
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kRefused);
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4143), Outcome::kConnected);
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4191), Outcome::kConnected);
  expect_access(topo_->b, "198.51.100.1", Outcome::kConnected);  // alwaysAllow
  EXPECT_EQ(topo_->connect_from(topo_->node, "127.0.0.1", 6443), Outcome::kConnected);
  EXPECT_EQ(topo_->connect_from(topo_->node, "192.0.2.1", 6443), Outcome::kConnected)
      << "the node's own address";
  auto closed = live();
  ASSERT_TRUE(closed);
  EXPECT_TRUE(closed->rules_intact);
  EXPECT_EQ(closed->allowlist, firewall_->desired());
  EXPECT_EQ(closed->evidence.table, table) << "closing is a set update, not a new table";
  ASSERT_EQ(closed->evidence.refused.size(), 1u);
  EXPECT_EQ(closed->evidence.refused[0].source, boost::asio::ip::make_address("192.0.2.2"));
  EXPECT_EQ(closed->evidence.refused[0].port, 6443);

  p.closed_ports.clear();
  {
    test::InNetns in(topo_->node);
    ASSERT_TRUE(firewall_->set_policy(p).has_value());
  }
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
  EXPECT_EQ(live()->evidence.table, table);

  // Made whole with the port closed (a restart while the tunnel is up).
  p.closed_ports = {6443};
  {
    test::InNetns in(topo_->node);
    backend_ = std::make_unique<NftablesBackend>();
    ASSERT_TRUE(backend_->remove().has_value());
    firewall_ = std::make_unique<Firewall>(*backend_, p, node_addresses());
  }
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kRefused);
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4143), Outcome::kConnected);
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kConnected);
}

// The batch at the configuration's limits (maxSources 65 536 and as many
// static ones, both families): one transaction, one answer (an answer per
// command overflowed the socket's receive buffer above 120 000 sources and
// reported a committed table as failed).
TEST_F(NftablesKernel, TheLargestTableIsAppliedAndAnsweredOnce) {
  test::InNetns in(topo_->node);
  Allowlist a;
  a.ports = {6443};
  std::vector<Cidr> v4, v6;
  for (std::uint32_t i = 0; i < 70000; ++i) {
    v4.push_back({boost::asio::ip::make_address_v4(0x0a000000u + 2 * i), 32});
    boost::asio::ip::address_v6::bytes_type b{0x20, 0x01, 0x0d, 0xb8};
    b[12] = static_cast<unsigned char>(i >> 16);
    b[13] = static_cast<unsigned char>(i >> 8);
    b[14] = static_cast<unsigned char>(i);
    b[15] = 0;
    v6.push_back({boost::asio::ip::address_v6(b), 128});
  }
  v4.insert(v4.end(), v6.begin(), v6.end());
  a.sources = AddressSet(v4);
  ASSERT_EQ(a.sources.cidrs().size(), 140000u);
  auto r = replace_table(a);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  auto live = backend_->read();
  ASSERT_TRUE(live.has_value() && live->has_value());
  EXPECT_EQ((*live)->allowlist.sources.cidrs().size(), 140000u);
  EXPECT_TRUE((*live)->rules_intact);
}

TEST_F(NftablesKernel, ReadBackEqualsWhatWasApplied) {
  ASSERT_TRUE(update({"198.51.100.0/25", "198.51.100.128/25", "2001:db8:b::/48"}).has_value());
  auto table = live();
  ASSERT_TRUE(table);
  EXPECT_TRUE(table->rules_intact);
  EXPECT_EQ(table->allowlist, firewall_->desired());
}

TEST_F(NftablesKernel, FlushRulesetIsDetectedAndRepaired) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  node_sh("nft flush ruleset");
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kConnected)
      << "with the table gone the stranger gets in: this is what must be repaired";
  test::InNetns in(topo_->node);
  auto drift = firewall_->reconcile();
  ASSERT_TRUE(drift.has_value()) << drift.error().message;
  EXPECT_EQ(*drift, Firewall::Drift::kMissing);
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone);
}

// The daemon's path: the netlink monitor notices another process's
// transaction and the firewall is reconciled at once, not at the next timer.
class NftablesMonitored : public NftablesKernel {
 protected:
  void SetUp() override {
    NftablesKernel::SetUp();
    if (IsSkipped()) return;
    ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
    test::InNetns in(topo_->node);  // the socket belongs to the node's namespace
    auto started = monitor_.start([this] {
      ++changes_;
      test::InNetns in(topo_->node);
      drift_ = firewall_->reconcile();
      repaired_at_ = std::chrono::steady_clock::now();
      io_.stop();
    });
    ASSERT_TRUE(started.has_value()) << started.error().message;
  }
  void TearDown() override { monitor_.stop(); }

  // Runs `command` in the node's namespace as another process, then waits
  // for the monitor's repair: at most a second, as DESIGN.md promises.
  void expect_repaired_within_a_second(const std::string& command, Firewall::Drift want) {
    node_sh(command);
    const auto done = std::chrono::steady_clock::now();
    io_.run_for(1s);  // returns at once when the repair stops it
    ASSERT_EQ(changes_, 1) << "no notification within a second of: " << command;
    ASSERT_TRUE(drift_.has_value()) << drift_.error().message;
    EXPECT_EQ(*drift_, want);
    EXPECT_LT(repaired_at_ - done, 1s);
    const auto table = live();
    ASSERT_TRUE(table);
    EXPECT_TRUE(table->rules_intact);
    EXPECT_EQ(table->allowlist, firewall_->desired());
    expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
    expect_access(topo_->b, "198.51.100.1", Outcome::kRefused);
  }

  boost::asio::io_context io_{1};
  test::RecordingLog log_;
  NftMonitor monitor_{io_, log_};
  int changes_ = 0;
  Result<Firewall::Drift> drift_ = make_error("not reconciled");
  std::chrono::steady_clock::time_point repaired_at_;
};

TEST_F(NftablesMonitored, FlushRulesetIsRepairedWithinASecond) {
  expect_repaired_within_a_second("nft flush ruleset", Firewall::Drift::kMissing);
}

TEST_F(NftablesMonitored, ReloadOfNftablesConfIsRepairedWithinASecond) {
  // What `systemctl reload nftables` runs: a file that flushes and loads.
  const std::string conf = "/tmp/tetherd-test-nftables-" + std::to_string(getpid()) + ".conf";
  std::ofstream(conf) << "flush ruleset\n"
                         "table inet filter {\n"
                         "  chain input { type filter hook input priority 0; policy accept; }\n"
                         "}\n";
  expect_repaired_within_a_second("nft -f " + conf, Firewall::Drift::kMissing);
  std::remove(conf.c_str());
}

TEST_F(NftablesMonitored, AnEditedSetIsRepairedWithinASecond) {
  expect_repaired_within_a_second("nft add element inet tetherd allowed4 '{ 198.51.100.2 }'",
                                  Firewall::Drift::kRepaired);
}

TEST_F(NftablesMonitored, OwnUpdatesAndOtherTablesWakeNothing) {
  ASSERT_TRUE(update({"192.0.2.2/32", "203.0.113.0/24"}).has_value());
  node_sh("nft add table ip k3s-like");
  node_sh("nft add chain ip k3s-like c");
  io_.run_for(100ms);  // bounded: proves nothing arrived, and cannot hang
  EXPECT_EQ(changes_, 0);
}

TEST_F(NftablesKernel, ADefaultDropTableBesideOursIsFoundAndDoesBlock) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  {
    test::InNetns in(topo_->node);
    EXPECT_TRUE(backend_->blocking_chains().value().empty());
  }
  // What an enabled ufw leaves in the kernel (iptables-nft), minus the rules.
  node_sh("nft add table ip filter");
  node_sh("nft add chain ip filter INPUT '{ type filter hook input priority 0; policy drop; }'");
  node_sh("nft add chain ip filter ufw-user-input");
  test::InNetns in(topo_->node);
  auto found = backend_->blocking_chains();
  ASSERT_TRUE(found.has_value()) << found.error().message;
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0], (BlockingChain{"ip", "filter", "INPUT", "input", true}));
  // What the warning claims is true: tetherd allows peer a, yet it is blocked.
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443, 300ms), Outcome::kTimedOut);
}

TEST_F(NftablesKernel, EditedSetIsDetectedAndRepaired) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  node_sh("nft add element inet tetherd allowed4 '{ 198.51.100.2 }'");
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kConnected);
  {
    test::InNetns in(topo_->node);
    EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kRepaired);
  }
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kRefused);
}

// Elements tetherd never writes (a comment, here) make a listing it cannot
// read as its own: that is tampering too, and the table is replaced, not
// left as it is with the reconcile failing for ever.
TEST_F(NftablesKernel, AnElementTetherdCannotReadIsRepaired) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  node_sh("nft add element inet tetherd allowed4 '{ 198.51.100.2 comment \"x\" }'");
  node_sh("nft add element inet tetherd cluster4 '{ 198.51.100.0/24 comment \"x\" }'");
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kConnected);
  {
    test::InNetns in(topo_->node);
    EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kRepaired);
    EXPECT_TRUE(backend_->read().value()->rules_intact);
  }
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kRefused);
}

TEST_F(NftablesKernel, ExtraRuleInOurChainIsRepaired) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  node_sh("nft insert rule inet tetherd prerouting ip saddr 198.51.100.2 accept");
  test::InNetns in(topo_->node);
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kRepaired);
  EXPECT_TRUE(backend_->read().value()->rules_intact);
}

TEST_F(NftablesKernel, BadInputIsRejectedWholeAndTheKernelIsUntouched) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  const auto before = live();
  ASSERT_TRUE(before);

  std::vector<std::string> ten_times_max;
  for (int i = 0; i < 160; ++i)
    ten_times_max.push_back("203.0.113." + std::to_string(i % 256));
  const std::vector<std::pair<DesiredSources, std::string>> bad = {
      {{{"198.51.100.2/32", "198.51.100.300/32"}, {}}, "invalid CIDR \"198.51.100.300/32\""},
      {{ten_times_max, {}}, "160 sources requested, more than maxSources (16)"},
      {{{"198.51.100.2/32"}, {6443, 8080}}, "port 8080 is not one of the ports"},
  };
  for (const auto& [desired, why] : bad) {
    test::InNetns in(topo_->node);
    auto r = firewall_->update(desired);
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
  }
  const auto after = live();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->allowlist, before->allowlist);
  EXPECT_EQ(firewall_->last_good().sources, std::vector<std::string>{"192.0.2.2/32"});
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kRefused);
}

TEST_F(NftablesKernel, RemoveDeletesTheTable) {
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  {
    test::InNetns in(topo_->node);
    ASSERT_TRUE(backend_->remove().has_value());
    ASSERT_TRUE(backend_->remove().has_value()) << "removing twice is fine";
  }
  EXPECT_FALSE(live().has_value());
  EXPECT_EQ(topo_->connect_from(topo_->b, "198.51.100.1", 6443), Outcome::kConnected);
}

TEST_F(NftablesKernel, OtherTablesAreLeftAlone) {
  node_sh(
      "nft 'add table inet mine; add chain inet mine input { type filter hook input priority 0; "
      "}'");
  ASSERT_TRUE(update({"192.0.2.2/32"}).has_value());
  {
    test::InNetns in(topo_->node);
    ASSERT_TRUE(backend_->remove().has_value());
  }
  node_sh("nft list table inet mine");  // throws if it was touched
}

}  // namespace
}  // namespace tetherd::firewall
