#include "agent/app/firewall_keeper.h"

#include <fstream>

#include <gtest/gtest.h>

#include "firewall/desired_state.h"
#include "test/support/fake_backend.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

namespace fw = firewall;

class FirewallKeeperTest : public ::testing::Test {
 protected:
  FirewallKeeper make() {
    return FirewallKeeper(log_, StateDir(tmp_.path()),
                          [this](const FirewallConfig& c) -> std::unique_ptr<fw::Backend> {
                            if (c.backend == FirewallBackend::kUfw) return nullptr;
                            auto b = std::make_unique<test::FakeBackend>();
                            backend_ = b.get();
                            return b;
                          },
                          {boost::asio::ip::make_address("192.0.2.1")});
  }
  void save(const std::string& text) {
    std::ofstream(tmp_.file(std::string(fw::kDesiredStateFile))) << text;
  }
  bool allows(const char* address) {
    return backend_->live &&
           backend_->live->allowlist.sources.contains(boost::asio::ip::make_address(address));
  }

  test::TempDir tmp_;
  test::RecordingLog log_;
  test::FakeBackend* backend_ = nullptr;
  FirewallConfig config_;
};

TEST_F(FirewallKeeperTest, BootAppliesTheStaticAllowlistWhenNothingIsSaved) {
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  EXPECT_TRUE(allows("10.42.0.1"));
  EXPECT_TRUE(allows("192.0.2.1")) << "the node's own address";
  EXPECT_TRUE(allows("127.0.0.1"));
  EXPECT_FALSE(allows("198.51.100.7"));
  EXPECT_EQ(log_.with_event("firewall-applied").size(), 1u);
}

TEST_F(FirewallKeeperTest, BootAppliesTheSavedDesiredStateFirst) {
  save(fw::encode_desired({{"198.51.100.0/24"}, {}}));
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  EXPECT_TRUE(allows("198.51.100.7")) << "offline at boot, the last good set is in force";
}

TEST_F(FirewallKeeperTest, CorruptSavedStateFallsBackToStaticAndIsKept) {
  save("{\"version\":1,\"sources\":[");
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  EXPECT_FALSE(allows("198.51.100.7"));
  EXPECT_TRUE(allows("10.42.0.1"));
  ASSERT_EQ(log_.with_event("firewall-state-invalid").size(), 1u);
  EXPECT_NE(log_.with_event("firewall-state-invalid")[0].message.find("not JSON"),
            std::string::npos);
  std::ifstream in(tmp_.file(std::string(fw::kDesiredStateFile)));
  std::string kept((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(kept, "{\"version\":1,\"sources\":[") << "evidence is not deleted";
}

TEST_F(FirewallKeeperTest, SavedStateThatNoLongerFitsFallsBackToStatic) {
  save(fw::encode_desired({{"198.51.100.0/24"}, {8443}}));
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  EXPECT_FALSE(allows("198.51.100.7"));
  EXPECT_EQ(log_.with_event("firewall-state-invalid").size(), 1u);
}

TEST_F(FirewallKeeperTest, AcceptedUpdatesArePersistedRejectedOnesAreNot) {
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  ASSERT_TRUE(keeper.update({{"198.51.100.0/24"}, {}}).has_value());
  EXPECT_TRUE(allows("198.51.100.7"));
  auto bad = keeper.update({{"198.51.100.0/24", "bogus"}, {}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(log_.with_event("firewall-rejected").size(), 1u);
  EXPECT_TRUE(allows("198.51.100.7")) << "the last good set stays in force";

  boost::system::error_code ec;
  auto saved = StateDir(tmp_.path()).read(fw::kDesiredStateFile, ec);
  ASSERT_TRUE(saved.has_value());
  EXPECT_EQ(fw::decode_desired(*saved).value().sources,
            std::vector<std::string>{"198.51.100.0/24"});
}

TEST_F(FirewallKeeperTest, OnStopKeepLeavesRulesRemoveDeletesThem) {
  {
    auto keeper = make();
    ASSERT_TRUE(keeper.start(config_).has_value());
    keeper.stop();
    EXPECT_EQ(backend_->removes, 0);
    EXPECT_TRUE(backend_->live.has_value());
  }
  config_.on_stop = OnStop::kRemove;
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  keeper.stop();
  EXPECT_EQ(backend_->removes, 1);
  EXPECT_FALSE(backend_->live.has_value());
}

TEST_F(FirewallKeeperTest, ReconfigureAppliesTheNewPolicyAndFollowsOnStop) {
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  FirewallConfig next = config_;
  next.allow = {*fw::parse_cidr("203.0.113.0/24")};
  next.on_stop = OnStop::kRemove;
  next.verdict = fw::Verdict::kReject;
  EXPECT_EQ(backend_->live->allowlist.verdict, fw::Verdict::kDrop);
  ASSERT_TRUE(keeper.reconfigure(next).has_value());
  EXPECT_TRUE(allows("203.0.113.9"));
  EXPECT_EQ(backend_->live->allowlist.verdict, fw::Verdict::kReject);
  keeper.stop();
  EXPECT_EQ(backend_->removes, 1);
}

TEST_F(FirewallKeeperTest, AnotherFirewallThatBlocksIsReportedOnceAndWhenItGoes) {
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  keeper.check_surroundings();
  EXPECT_TRUE(log_.with_event("firewall-blocked-elsewhere").empty());

  backend_->blocking = {{"ip", "filter", "INPUT", "input", true}};
  keeper.check_surroundings();
  keeper.check_surroundings();  // the same finding: not logged again
  auto warned = log_.with_event("firewall-blocked-elsewhere");
  ASSERT_EQ(warned.size(), 1u);
  EXPECT_EQ(warned[0].priority, Priority::kWarning);
  EXPECT_EQ(warned[0].fields.at("TABLE"), "ip filter");
  EXPECT_NE(warned[0].message.find("ufw is active"), std::string::npos) << warned[0].message;
  EXPECT_EQ(keeper.blocking_chains(), backend_->blocking);

  backend_->blocking.push_back({"inet", "fw", "fwd", "forward", false});
  keeper.check_surroundings();
  EXPECT_EQ(log_.with_event("firewall-blocked-elsewhere").size(), 2u) << "only the new one";

  backend_->blocking.clear();
  keeper.check_surroundings();
  EXPECT_EQ(log_.with_event("firewall-unblocked").size(), 1u);
  EXPECT_TRUE(keeper.blocking_chains().empty());
}

TEST_F(FirewallKeeperTest, CaveatsAreLoggedWhenNew) {
  auto keeper = make();
  ASSERT_TRUE(keeper.start(config_).has_value());
  backend_->caveat_list = {{false, "ufw filters host sockets only"}};
  keeper.check_surroundings();
  keeper.check_surroundings();
  backend_->caveat_list.push_back({true, "ufw is inactive"});
  keeper.check_surroundings();
  auto logged = log_.with_event("firewall-caveat");
  ASSERT_EQ(logged.size(), 2u);
  EXPECT_EQ(logged[0].priority, Priority::kNotice);
  EXPECT_EQ(logged[1].priority, Priority::kWarning);
  EXPECT_EQ(logged[1].message, "ufw is inactive");
}

TEST_F(FirewallKeeperTest, AnUnavailableBackendIsAClearError) {
  config_.backend = FirewallBackend::kUfw;
  auto keeper = make();
  auto r = keeper.start(config_);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "firewall.backend ufw is not available in this version of tetherd");
}

}  // namespace
}  // namespace tetherd
