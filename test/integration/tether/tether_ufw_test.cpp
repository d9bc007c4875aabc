// ufw under the tether, at scale: an EdgeNode of 1 000 sources is 1 000
// runs of /usr/sbin/ufw (minutes), applied on the firewall keeper's thread
// while the event loop goes on: the Lease keeps renewing, and the loop,
// which pings systemd's watchdog, is never held up for as long as the
// watchdog allows. Label `long`: CI runs it once, not in both presets.

#include "agent/adapters/subprocess.h"
#include "firewall/ufw_backend.h"
#include "test/integration/tether/tether_fixture.h"
#include "test/support/ufw_sandbox.h"

namespace tetherd::test {
namespace {

class TetherUfw : public TetherKernel {
 protected:
  void SetUp() override {
    TetherKernel::SetUp();
    if (IsSkipped()) return;
    if (!std::filesystem::exists("/usr/sbin/ufw")) GTEST_SKIP() << "ufw is not installed";
    ufw_ = std::make_unique<UfwSandbox>(topo_->node, tmp_);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"allow", "22/tcp"}, {"default", "reject", "incoming"}, {"--force", "enable"}}) {
      auto r = ufw_->ufw(args);
      ASSERT_TRUE(r.has_value()) << r.error().message;
    }
    config_.firewall.backend = FirewallBackend::kUfw;
    config_.control_plane->heartbeat_interval = 1s;
    config_.control_plane->lease_duration = 5s;
    config_.firewall.max_sources = 2000;
    make_backend_ = [this](const FirewallConfig& c) -> std::unique_ptr<firewall::Backend> {
      return std::make_unique<firewall::UfwBackend>(
          c.ports, [this](const std::vector<std::string>& a) { return ufw_->ufw(a); },
          std::function<void()>{}, ufw_->defaults_path());
    };
  }

  // Lease renewals the server has answered so far.
  std::size_t renewals() const {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      if (r.target == kLeaseA && r.method == "PUT" && r.status == 200) ++n;
    return n;
  }

  TempDir tmp_;
  std::unique_ptr<UfwSandbox> ufw_;
};

// What the unit promises: WatchdogSec=30s, pinged every 10 s from the loop.
constexpr auto kWatchdogPing = 10s;

TEST_F(TetherUfw, AThousandSourcesApplyWhileTheLeaseRenewsAndTheLoopRuns) {
  json::array sources = {kCloud};
  for (int i = 0; i < 999; ++i) {
    char s[48];
    std::snprintf(s, sizeof s, "2001:db8:1::%x/128", 2 * i);  // none adjacent: 999 rules
    sources.emplace_back(s);
  }
  server_->create(kEdgeNodes, edge_node("node-a", sources));

  // The loop's pulse: a 100 ms timer, and the longest gap between two beats
  // while the keeper works.
  using Clock = std::chrono::steady_clock;
  Clock::duration longest{};
  Clock::time_point last{};
  boost::asio::steady_timer pulse(io_);
  std::function<void()> beat = [&] {
    const auto now = Clock::now();
    if (keeper_ && keeper_->busy() && last != Clock::time_point{})
      longest = std::max(longest, now - last);
    last = now;
    pulse.expires_after(100ms);
    pulse.async_wait([&](boost::system::error_code ec) {
      if (!ec) beat();
    });
  };
  on_io([&] { beat(); });

  start();
  ASSERT_TRUE(eventually([&] { return keeper_->busy(); }, 60s)) << requests();
  EXPECT_TRUE(on_io([&] {
    return local_condition_is(condition_type::kFirewallInSync, ConditionStatus::kUnknown,
                              "Applying");
  }));
  const auto began = Clock::now();
  const std::size_t renewed_before = renewals();
  ASSERT_TRUE(eventually([&] { return tether_->stats().specs_applied == 1; }, 30min))
      << "the apply never ended";
  const auto took = Clock::now() - began;
  const std::size_t renewed = renewals() - renewed_before;
  on_io([&] { pulse.cancel(); });

  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(took).count();
  std::printf(
      "1000 sources through ufw: %lld s, %zu Lease renewals meanwhile, the loop's "
      "longest pause %lld ms\n",
      static_cast<long long>(seconds), renewed,
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(longest).count()));
  // Renewed every second (1 s heartbeat) while ufw ran: at least half of
  // them, against none at all if the apply held the loop.
  EXPECT_GE(renewed, static_cast<std::size_t>(seconds / 2));
  EXPECT_LT(longest, kWatchdogPing) << "the watchdog would have been missed";
  EXPECT_TRUE(cloud_allowed());
  EXPECT_FALSE(stranger_allowed());
  EXPECT_TRUE(eventually([&] { return condition_is("FirewallInSync", "True", "Applied"); }));
  const std::string added = ufw_->ufw({"show", "added"}).value();
  std::size_t ours = 0;
  for (std::size_t at = added.find("comment 'tetherd'"); at != std::string::npos;
       at = added.find("comment 'tetherd'", at + 1))
    ++ours;
  EXPECT_GE(ours, 1000u);
}

}  // namespace
}  // namespace tetherd::test
