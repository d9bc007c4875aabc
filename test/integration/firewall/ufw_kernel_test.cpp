// The ufw backend with real ufw on the real kernel: ufw runs in the node's
// network namespace with a copy of /etc/ufw (test/support/ufw_sandbox.h),
// enabled with the user's own rule for port 22 and a default reject policy
// (so a refused connect is seen at once rather than as a timeout).

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "firewall/firewall.h"
#include "firewall/ufw_backend.h"
#include "test/support/netns.h"
#include "test/support/temp_dir.h"
#include "test/support/ufw_sandbox.h"

namespace tetherd::firewall {
namespace {

using namespace std::chrono_literals;
using test::Outcome;

const std::vector<std::uint16_t> kManaged = {6443, 4143, 4191};

class UfwKernel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces, runs ufw";
    if (!std::filesystem::exists("/usr/sbin/ufw")) GTEST_SKIP() << "ufw is not installed";
    topo_ = std::make_unique<test::Topology>();
    topo_->listen_on({6443, 4143, 4191, 22});
    ufw_ = std::make_unique<test::UfwSandbox>(topo_->node, tmp_);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"allow", "22/tcp"}, {"default", "reject", "incoming"}, {"--force", "enable"}}) {
      auto r = ufw_->ufw(args);
      ASSERT_TRUE(r.has_value()) << r.error().message;
    }
    backend_ = std::make_unique<UfwBackend>(
        kManaged, [this](const std::vector<std::string>& a) { return ufw_->ufw(a); },
        [this] { ++progress_; }, ufw_->defaults_path(), ufw_->conf_path());
    Policy p;
    p.ports = kManaged;
    p.always_allow = {*parse_cidr("10.42.0.0/16")};
    p.max_sources = 16;
    firewall_ = std::make_unique<Firewall>(*backend_, p, std::vector<boost::asio::ip::address>{});
  }

  std::string added() { return ufw_->ufw({"show", "added"}).value(); }

  void expect_access(const std::string& peer, const std::string& to, Outcome want) {
    for (std::uint16_t port : kManaged) {
      EXPECT_EQ(to_string(topo_->connect_from(peer, to, port)), to_string(want))
          << peer << " -> " << to << ":" << port << "\n"
          << added();
    }
    EXPECT_EQ(topo_->connect_from(peer, to, 22), Outcome::kConnected) << "the user's rule for 22";
  }

  test::TempDir tmp_;
  std::unique_ptr<test::Topology> topo_;
  std::unique_ptr<test::UfwSandbox> ufw_;
  std::unique_ptr<UfwBackend> backend_;
  std::unique_ptr<Firewall> firewall_;
  int progress_ = 0;
};

TEST_F(UfwKernel, AllowedPeerConnectsStrangerIsRefused) {
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32"}, {}}).has_value());
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
  expect_access(topo_->b, "198.51.100.1", Outcome::kRefused);
  EXPECT_NE(added().find("ufw allow from 192.0.2.2 to any port 4143,4191,6443 proto tcp "
                         "comment 'tetherd'"),
            std::string::npos)
      << added();
  EXPECT_GT(progress_, 0) << "the watchdog hears of each ufw run";
}

TEST_F(UfwKernel, SwappingThePeersSwapsTheResult) {
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32"}, {}}).has_value());
  ASSERT_TRUE(firewall_->update({{"198.51.100.2/32"}, {}}).has_value());
  expect_access(topo_->a, "192.0.2.1", Outcome::kRefused);
  expect_access(topo_->b, "198.51.100.1", Outcome::kConnected);
  EXPECT_EQ(added().find("192.0.2.2"), std::string::npos) << "the old rule is gone";
}

TEST_F(UfwKernel, IPv6Likewise) {
  ASSERT_TRUE(firewall_->update({{"2001:db8:a::/64"}, {}}).has_value());
  expect_access(topo_->a, "2001:db8:a::1", Outcome::kConnected);
  expect_access(topo_->b, "2001:db8:b::1", Outcome::kRefused);
}

TEST_F(UfwKernel, ReadBackEqualsWhatWasAppliedAndDriftIsRepaired) {
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32", "2001:db8:a::/64"}, {}}).has_value());
  auto live = backend_->read();
  ASSERT_TRUE(live.has_value()) << live.error().message;
  ASSERT_TRUE(live->has_value());
  EXPECT_EQ((*live)->allowlist, backend_->enforceable(firewall_->desired()))
      << "all but the cloud's evidence set, which ufw has not";
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone);

  // Someone deletes one of tetherd's rules by hand.
  ASSERT_TRUE(ufw_->ufw({"delete", "allow", "proto", "tcp", "from", "192.0.2.2", "to", "any",
                         "port", "4143,4191,6443"}));
  expect_access(topo_->a, "192.0.2.1", Outcome::kRefused);
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kRepaired);
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
}

// firewall.closeWhenTunnelled with ufw: the cloud's rule names only the
// ports left open; the inner sources (here alwaysAllow: peer b) keep every
// port; read back, it is what was applied; opened again, as before.
TEST_F(UfwKernel, AClosedPortRefusesTheCloudAndReadsBackInSync) {
  Policy p;
  p.ports = kManaged;
  p.always_allow = {*parse_cidr("198.51.100.2/32")};
  p.max_sources = 16;
  ASSERT_TRUE(firewall_->set_policy(p).has_value());
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32"}, {}}).has_value());
  p.closed_ports = {6443};
  ASSERT_TRUE(firewall_->set_policy(p).has_value());
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kRefused) << added();
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 4143), Outcome::kConnected) << added();
  expect_access(topo_->b, "198.51.100.1", Outcome::kConnected);
  EXPECT_NE(added().find("ufw allow from 192.0.2.2 to any port 4143,4191 proto tcp comment "
                         "'tetherd'"),
            std::string::npos)
      << added();
  auto live = backend_->read();
  ASSERT_TRUE(live.has_value() && live->has_value());
  EXPECT_TRUE((*live)->rules_intact);
  EXPECT_EQ((*live)->allowlist, backend_->enforceable(firewall_->desired()));
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone);

  p.closed_ports.clear();
  ASSERT_TRUE(firewall_->set_policy(p).has_value());
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone);
}

// Where the rules cannot say which ports are closed (found by review: each
// reconcile "repaired" again): no cloud source at all, so every rule names
// every port; and the user's own rule that opens a closed port to a cloud
// source, which tetherd leaves alone and says so.
TEST_F(UfwKernel, AClosedPortWithNoCloudRuleOrTheUsersOwnIsNoDrift) {
  Policy p;
  p.ports = kManaged;
  p.max_sources = 16;
  p.closed_ports = {6443};
  ASSERT_TRUE(firewall_->set_policy(p).has_value());
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone) << added();
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone) << added();

  ASSERT_TRUE(ufw_->ufw(
      {"allow", "proto", "tcp", "from", "192.0.2.2", "to", "any", "port", "4143,4191,6443"}));
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32"}, {}}).has_value());
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone) << added();
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone) << added();
  EXPECT_EQ(topo_->connect_from(topo_->a, "192.0.2.1", 6443), Outcome::kConnected)
      << "the user's rule is the user's";
  const auto caveats = backend_->caveats().value();
  EXPECT_TRUE(std::any_of(caveats.begin(), caveats.end(), [](const Caveat& c) {
    return c.serious && c.message.starts_with(
                            "your ufw rule for 192.0.2.2/32 (not tetherd's) "
                            "opens 6443, which firewall.closeWhenTunnelled");
  })) << added();
}

TEST_F(UfwKernel, TheUsersOwnRulesAreNeverTouched) {
  // The user allows peer b themself, with a rule of tetherd's very shape.
  ASSERT_TRUE(ufw_->ufw(
      {"allow", "proto", "tcp", "from", "198.51.100.2", "to", "any", "port", "4143,4191,6443"}));
  ASSERT_TRUE(ufw_->ufw({"allow", "8080/tcp"}));
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32", "198.51.100.2/32"}, {}}).has_value());
  const std::string user_rule =
      "ufw allow from 198.51.100.2 to any port 4143,4191,6443 proto tcp\n";
  EXPECT_NE(added().find(user_rule), std::string::npos) << "not re-tagged: " << added();
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone) << "covered counts as live";

  ASSERT_TRUE(firewall_->update({{}, {}}).has_value());
  ASSERT_TRUE(backend_->remove().has_value());
  const std::string after = added();
  EXPECT_NE(after.find(user_rule), std::string::npos) << after;
  EXPECT_NE(after.find("ufw allow 8080/tcp"), std::string::npos) << after;
  EXPECT_NE(after.find("ufw allow 22/tcp"), std::string::npos) << after;
  EXPECT_EQ(after.find("tetherd"), std::string::npos) << after;
  expect_access(topo_->b, "198.51.100.1", Outcome::kConnected);
}

TEST_F(UfwKernel, BadInputIsRejectedWholeAndUfwIsUntouched) {
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32"}, {}}).has_value());
  const std::string before = added();
  std::vector<std::string> many;
  for (int i = 0; i < 160; ++i)
    many.push_back("203.0.113." + std::to_string(i) + "/32");
  for (const DesiredSources& bad :
       {DesiredSources{{"192.0.2.0/24", "198.51.100.300/32"}, {}}, DesiredSources{many, {}},
        DesiredSources{{"198.51.100.2/32"}, {22}}}) {
    EXPECT_FALSE(firewall_->update(bad).has_value());
    EXPECT_EQ(added(), before);
  }
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
}

TEST_F(UfwKernel, AStayingPeerIsNeverRefusedDuringUpdates) {
  ASSERT_TRUE(firewall_->update({{"192.0.2.2/32"}, {}}).has_value());
  std::atomic<bool> done = false;
  std::atomic<int> connects = 0, failures = 0;
  std::string first_failure;
  std::thread probe([&] {
    while (!done) {
      const Outcome o = topo_->connect_from(topo_->a, "192.0.2.1", 6443, 500ms);
      if (o == Outcome::kConnected) {
        ++connects;
      } else if (failures++ == 0) {
        first_failure =
            std::string(to_string(o)) + " after " + std::to_string(connects) + " connects";
      }
    }
  });
  for (int i = 0; i < 100; ++i) {
    const std::string other = "203.0.113." + std::to_string(i % 2 ? 0 : 128) + "/25";
    ASSERT_TRUE(firewall_->update({{"192.0.2.2/32", other}, {}}).has_value());
  }
  done = true;
  probe.join();
  EXPECT_GT(connects, 0);
  EXPECT_EQ(failures, 0) << "of " << connects + failures << " connects; first: " << first_failure;
}

TEST_F(UfwKernel, CaveatsSayWhatUndoesTheRules) {
  auto c = backend_->caveats();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_EQ(c->size(), 1u);
  EXPECT_FALSE((*c)[0].serious);
  // What ufw cannot filter (what k3s forwards to pods) and what to use instead.
  EXPECT_NE((*c)[0].message.find("forwards to pods"), std::string::npos) << (*c)[0].message;
  EXPECT_NE((*c)[0].message.find("firewall.backend: nftables"), std::string::npos);

  ASSERT_TRUE(ufw_->ufw({"allow", "6443/tcp"}));
  c = backend_->caveats();
  ASSERT_EQ(c->size(), 2u);
  EXPECT_TRUE((*c)[0].serious);
  EXPECT_NE((*c)[0].message.find("`ufw allow 6443/tcp` (not tetherd's) opens a managed port"),
            std::string::npos)
      << (*c)[0].message;

  ASSERT_TRUE(ufw_->ufw({"disable"}));
  c = backend_->caveats();
  EXPECT_NE((*c)[0].message.find("ufw is inactive"), std::string::npos) << (*c)[0].message;
}

// IPV6=no in /etc/default/ufw: ufw refuses every IPv6 rule ("IPv6 support
// not enabled") and drops all IPv6 but loopback. The IPv6 sources are
// skipped with one caveat; the IPv4 ones work; nothing fails or repeats.
TEST_F(UfwKernel, WithIPv6OffTheIPv6SourcesAreSkippedAndSaidSo) {
  ufw_->set_default("IPV6", "no");
  ASSERT_TRUE(ufw_->ufw({"reload"}));
  auto r = firewall_->update({{"192.0.2.2/32", "2001:db8:a::/64"}, {}});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  expect_access(topo_->a, "192.0.2.1", Outcome::kConnected);
  expect_access(topo_->b, "198.51.100.1", Outcome::kRefused);
  EXPECT_NE(topo_->connect_from(topo_->a, "2001:db8:a::1", 6443), Outcome::kConnected)
      << "ufw drops all IPv6 with IPV6=no";
  EXPECT_EQ(added().find("2001:db8"), std::string::npos) << added();
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone)
      << "what ufw cannot take is not drift, repaired on every check";

  auto c = backend_->caveats();
  ASSERT_TRUE(c.has_value()) << c.error().message;
  ASSERT_FALSE(c->empty());
  EXPECT_TRUE((*c)[0].serious);
  EXPECT_NE((*c)[0].message.find("IPV6=no"), std::string::npos) << (*c)[0].message;
  EXPECT_NE((*c)[0].message.find("1 IPv6 source networks"), std::string::npos) << (*c)[0].message;

  // A later update, and the removal, work around the IPv6 sources too.
  ASSERT_TRUE(firewall_->update({{"198.51.100.2/32", "2001:db8:b::/64"}, {}}).has_value());
  expect_access(topo_->b, "198.51.100.1", Outcome::kConnected);
  ASSERT_TRUE(backend_->remove().has_value());
  EXPECT_EQ(added().find("tetherd"), std::string::npos) << added();

  // IPv6 on again: the IPv6 sources are applied, and the caveat is gone.
  ufw_->set_default("IPV6", "yes");
  ASSERT_TRUE(ufw_->ufw({"reload"}));
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kMissing);
  EXPECT_EQ(topo_->connect_from(topo_->b, "2001:db8:b::1", 6443), Outcome::kConnected) << added();
  c = backend_->caveats();
  ASSERT_TRUE(c.has_value());
  for (const auto& caveat : *c)
    EXPECT_EQ(caveat.message.find("IPV6=no"), std::string::npos) << caveat.message;

  // ufw.conf, read after the defaults, wins: IPv6 off there is off.
  test::UfwSandbox::set_in(ufw_->conf_path(), "IPV6", "no");
  ASSERT_TRUE(ufw_->ufw({"reload"}));
  auto r2 = firewall_->update({{"192.0.2.2/32", "2001:db8:a::/64"}, {}});
  ASSERT_TRUE(r2.has_value()) << r2.error().message;
  EXPECT_EQ(added().find("2001:db8:a::"), std::string::npos) << added();
  EXPECT_EQ(firewall_->reconcile().value(), Firewall::Drift::kNone);
  ASSERT_TRUE(backend_->remove().has_value());
  EXPECT_EQ(added().find("tetherd"), std::string::npos) << added();
}

}  // namespace
}  // namespace tetherd::firewall
