// The daemon's life cycle in-process, with recording fakes. The same paths
// through real signals and a real notify socket are in
// test/integration/daemon_process_test.cpp.

#include "agent/app/daemon.h"

#include <gtest/gtest.h>

#include "test/support/fake_backend.h"
#include "test/support/fake_clock.h"
#include "test/support/keeper_calls.h"
#include "test/support/recording_log.h"
#include "test/support/recording_notifier.h"
#include "test/support/temp_dir.h"

// Designated initializers name what a test sets; GCC 12 warns of the rest.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

Config config_named(const std::string& name) {
  auto got = parse_config("node: {name: " + name + "}", LoadOptions{"host"});
  return std::get<Config>(got);
}

class DaemonTest : public ::testing::Test {
 protected:
  Daemon make(Config initial) {
    return Daemon(io_, clock_, log_, notifier_, keeper_, "/etc/tetherd/tetherd.yaml",
                  [this] { return next_; }, std::move(initial), {.resume = &resume_});
  }

  test::TempDir tmp_;
  test::FakeBackend* backend_ = nullptr;  // owned by keeper_
  bool fail_apply_ = false;
  boost::asio::io_context io_{1};
  test::FakeClock clock_;
  test::RecordingLog log_;
  test::RecordingNotifier notifier_;
  std::variant<Config, ConfigErrors> next_;
  // The clocks alone: the D-Bus path has its own tests (test/integration/dbus).
  ResumeDetector resume_{io_, clock_, log_, {.bus_address = "none"}};
  FirewallKeeper keeper_{log_,
                         StateDir(tmp_.path()),
                         [this](const FirewallConfig&) {
                           auto b = std::make_unique<test::FakeBackend>();
                           b->fail_apply = fail_apply_;
                           backend_ = b.get();
                           return b;
                         },
                         {},
                         io_.get_executor()};
};

TEST_F(DaemonTest, StartTellsSystemdReadyWithAStatusLine) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  ASSERT_EQ(notifier_.messages.size(), 1u);
  EXPECT_EQ(notifier_.messages[0],
            "READY=1\nSTATUS=standalone; node alpha; firewall fake, 3 ports, 3 source networks");
  ASSERT_EQ(log_.with_event("started").size(), 1u);
  EXPECT_EQ(log_.with_event("started")[0].fields.at("NODE"), "alpha");
  d.stop("test");
  io_.run();  // returns only if stop() cancelled every pending operation
}

TEST_F(DaemonTest, WatchdogPingsFromTheLoopWhenEnabled) {
  notifier_.watchdog = 3s;
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  EXPECT_EQ(notifier_.messages.front(), "WATCHDOG=1");
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, AResumeIsSeenInTheClocksAndLoggedOnce) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  clock_.advance(10s);
  EXPECT_FALSE(d.check_resume());
  clock_.suspend(72h);  // monotonic stands still, as Asio's timers do
  EXPECT_TRUE(d.check_resume());
  EXPECT_FALSE(d.check_resume());
  const auto resumed = log_.with_event("resumed");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].fields.at("SLEPT_SECONDS"), "259200");
  EXPECT_EQ(resumed[0].fields.at("RESUME_SOURCE"), "clock");
  EXPECT_NE(resumed[0].message.find("72h"), std::string::npos) << resumed[0].message;
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, NoWatchdogPingsWhenDisabled) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  d.stop("test");
  io_.run();
  for (const auto& m : notifier_.messages)
    EXPECT_EQ(m.find("WATCHDOG"), std::string::npos) << m;
}

TEST_F(DaemonTest, GoodReloadTakesEffect) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  clock_.advance(5s);
  next_ = config_named("beta");
  EXPECT_TRUE(d.reload());
  EXPECT_EQ(d.config().node_name, "beta");
  ASSERT_EQ(notifier_.messages.size(), 3u);
  EXPECT_EQ(notifier_.messages[1], "RELOADING=1\nMONOTONIC_USEC=1005000000");
  EXPECT_EQ(notifier_.messages[2],
            "READY=1\nSTATUS=standalone; node beta; firewall fake, 3 ports, 3 source networks");
  EXPECT_EQ(log_.with_event("config-reloaded").size(), 1u);
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, ReloadWithoutChangesSaysSo) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  next_ = config_named("alpha");
  EXPECT_TRUE(d.reload());
  EXPECT_EQ(log_.with_event("config-unchanged").size(), 1u);
  EXPECT_TRUE(log_.with_event("config-reloaded").empty());
  d.stop("test");
  io_.run();
}

// Found by review: a standalone node renamed was said to have lost its
// control plane.
TEST_F(DaemonTest, AStandaloneRenameSaysSoAndNothingElse) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  next_ = config_named("beta");
  EXPECT_TRUE(d.reload());
  auto lines = log_.with_event("config-reloaded");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].message, "configuration reloaded: node: alpha is now beta");
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, BadReloadIsRejectedAndTheOldConfigStays) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  next_ = ConfigErrors{{3, 12, "firewall.backend: expected one of nftables | ufw | none"},
                       {7, 1, "unknown key \"extra\""}};
  EXPECT_FALSE(d.reload());
  EXPECT_EQ(d.config().node_name, "alpha");
  const auto rejected = log_.with_event("config-rejected");
  ASSERT_EQ(rejected.size(), 2u);
  EXPECT_EQ(rejected[0].priority, Priority::kErr);
  EXPECT_EQ(rejected[0].message,
            "new configuration rejected, keeping the old one: /etc/tetherd/tetherd.yaml:3:12: "
            "firewall.backend: expected one of nftables | ufw | none");
  EXPECT_EQ(notifier_.messages.back(),
            "READY=1\nSTATUS=standalone; node alpha; firewall fake, 3 ports, 3 source networks");
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, StopNotifiesOnceEvenIfCalledTwice) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  d.stop("SIGTERM");
  d.stop("SIGINT");
  io_.run();
  int stopping = 0;
  for (const auto& m : notifier_.messages)
    stopping += m.starts_with("STOPPING=1") ? 1 : 0;
  EXPECT_EQ(stopping, 1);
  EXPECT_EQ(notifier_.messages.back(), "STOPPING=1\nSTATUS=stopping (SIGTERM)");
}

TEST_F(DaemonTest, StartAppliesTheFirewallBeforeReady) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  ASSERT_NE(backend_, nullptr);
  EXPECT_EQ(backend_->applies, 1);
  ASSERT_TRUE(backend_->live.has_value());
  EXPECT_EQ(backend_->live->allowlist.ports, (std::vector<std::uint16_t>{4143, 4191, 6443}));
  d.stop("test");
  io_.run();
  EXPECT_EQ(backend_->removes, 0) << "onStop: keep is the default";
}

TEST_F(DaemonTest, AFirewallThatCannotBeAppliedFailsTheStart) {
  fail_apply_ = true;
  Daemon d = make(config_named("alpha"));
  auto r = d.start();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "fake apply failure");
  EXPECT_EQ(log_.with_event("firewall-failed").size(), 1u);
  EXPECT_TRUE(notifier_.messages.empty()) << "never READY=1 without the firewall";
}

TEST_F(DaemonTest, ReloadThatTheFirewallCannotTakeIsRejected) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  ASSERT_TRUE(test::update(io_, keeper_, {{"192.0.2.0/24"}, {4143}}).has_value());
  Config next = config_named("beta");
  next.firewall.ports = {6443};  // the saved desired state asks for 4143
  next_ = next;
  EXPECT_FALSE(d.reload());
  EXPECT_EQ(d.config().node_name, "alpha");
  ASSERT_EQ(log_.with_event("config-rejected").size(), 1u);
  EXPECT_NE(log_.with_event("config-rejected")[0].message.find("port 4143"), std::string::npos);
  d.stop("test");
  io_.run();
}

class FakeMonitor final : public FirewallMonitor {
 public:
  Result<void> start(std::function<void()> changed) override {
    if (fail) return make_error("no netlink here");
    changed_ = std::move(changed);
    return {};
  }
  void stop() override { stopped = true; }
  void fire() { changed_(); }

  bool fail = false;
  bool stopped = false;

 private:
  std::function<void()> changed_;
};

TEST_F(DaemonTest, AChangeBySomeoneElseIsRepairedOncePerBurst) {
  FakeMonitor monitor;
  Daemon d(io_, clock_, log_, notifier_, keeper_, "/etc/tetherd/tetherd.yaml",
           [this] { return next_; }, config_named("alpha"), {.monitor = &monitor});
  ASSERT_TRUE(d.start().has_value());
  const int applies = backend_->applies;
  backend_->live.reset();  // someone's `nft flush ruleset`
  monitor.fire();
  monitor.fire();  // the same burst: one reconcile
  EXPECT_EQ(backend_->applies, applies) << "repaired on the loop, not inside the callback";
  io_.poll();
  EXPECT_EQ(backend_->applies, applies + 1);
  ASSERT_TRUE(backend_->live.has_value());
  ASSERT_EQ(log_.with_event("firewall-repaired").size(), 1u);
  EXPECT_EQ(log_.with_event("firewall-repaired")[0].fields.at("DRIFT"), "missing");

  monitor.fire();  // nothing changed this time: nothing applied, nothing logged
  io_.poll();
  EXPECT_EQ(backend_->applies, applies + 1);
  EXPECT_EQ(log_.with_event("firewall-repaired").size(), 1u);

  d.stop("test");
  EXPECT_TRUE(monitor.stopped);
  io_.run();
}

TEST_F(DaemonTest, WithoutAMonitorTheDaemonStillStartsAndSaysSo) {
  FakeMonitor monitor;
  monitor.fail = true;
  Daemon d(io_, clock_, log_, notifier_, keeper_, "/etc/tetherd/tetherd.yaml",
           [this] { return next_; }, config_named("alpha"), {.monitor = &monitor});
  ASSERT_TRUE(d.start().has_value());
  ASSERT_EQ(log_.with_event("firewall-monitor-failed").size(), 1u);
  EXPECT_NE(log_.with_event("firewall-monitor-failed")[0].message.find("no netlink here"),
            std::string::npos);
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, AFailingCheckIsLoggedOncePerStreak) {
  Daemon d = make(config_named("alpha"));
  ASSERT_TRUE(d.start().has_value());
  backend_->fail_read = true;
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(test::reconcile(io_, keeper_).has_value());
  EXPECT_EQ(log_.with_event("firewall-reconcile-failed").size(), 1u);
  backend_->fail_read = false;
  EXPECT_TRUE(test::reconcile(io_, keeper_).has_value());
  EXPECT_EQ(log_.with_event("firewall-reconciled").size(), 1u);
  d.stop("test");
  io_.run();
}

TEST(StatusLine, SummarisesModeNodeAndFirewall) {
  Config c = config_named("alpha");
  c.control_plane.emplace();
  EXPECT_EQ(status_line(c, "none, 3 ports, 4 source networks"),
            "control plane configured; node alpha; firewall none, 3 ports, 4 source networks");
}

}  // namespace
}  // namespace tetherd
