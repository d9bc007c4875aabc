// The daemon's life cycle in-process, with recording fakes. The same paths
// through real signals and a real notify socket are in
// test/integration/daemon_process_test.cpp.

#include "agent/app/daemon.h"

#include <gtest/gtest.h>

#include "test/support/fake_clock.h"
#include "test/support/recording_log.h"
#include "test/support/recording_notifier.h"

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
    return Daemon(
        io_, clock_, log_, notifier_, "/etc/tetherd/tetherd.yaml", [this] { return next_; },
        std::move(initial));
  }

  boost::asio::io_context io_{1};
  test::FakeClock clock_;
  test::RecordingLog log_;
  test::RecordingNotifier notifier_;
  std::variant<Config, ConfigErrors> next_;
};

TEST_F(DaemonTest, StartTellsSystemdReadyWithAStatusLine) {
  Daemon d = make(config_named("alpha"));
  d.start();
  ASSERT_EQ(notifier_.messages.size(), 1u);
  EXPECT_EQ(
      notifier_.messages[0],
      "READY=1\nSTATUS=standalone; node alpha; firewall nftables (3 ports, 2 static sources)");
  ASSERT_EQ(log_.with_event("started").size(), 1u);
  EXPECT_EQ(log_.with_event("started")[0].fields.at("NODE"), "alpha");
  d.stop("test");
  io_.run();  // returns only if stop() cancelled every pending operation
}

TEST_F(DaemonTest, WatchdogPingsFromTheLoopWhenEnabled) {
  notifier_.watchdog = 3s;
  Daemon d = make(config_named("alpha"));
  d.start();
  EXPECT_EQ(notifier_.messages.front(), "WATCHDOG=1");
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, NoWatchdogPingsWhenDisabled) {
  Daemon d = make(config_named("alpha"));
  d.start();
  d.stop("test");
  io_.run();
  for (const auto& m : notifier_.messages)
    EXPECT_EQ(m.find("WATCHDOG"), std::string::npos) << m;
}

TEST_F(DaemonTest, GoodReloadTakesEffect) {
  Daemon d = make(config_named("alpha"));
  d.start();
  clock_.advance(5s);
  next_ = config_named("beta");
  EXPECT_TRUE(d.reload());
  EXPECT_EQ(d.config().node_name, "beta");
  ASSERT_EQ(notifier_.messages.size(), 3u);
  EXPECT_EQ(notifier_.messages[1], "RELOADING=1\nMONOTONIC_USEC=1005000000");
  EXPECT_EQ(notifier_.messages[2],
            "READY=1\nSTATUS=standalone; node beta; firewall nftables (3 ports, 2 static sources)");
  EXPECT_EQ(log_.with_event("config-reloaded").size(), 1u);
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, ReloadWithoutChangesSaysSo) {
  Daemon d = make(config_named("alpha"));
  d.start();
  next_ = config_named("alpha");
  EXPECT_TRUE(d.reload());
  EXPECT_EQ(log_.with_event("config-unchanged").size(), 1u);
  EXPECT_TRUE(log_.with_event("config-reloaded").empty());
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, BadReloadIsRejectedAndTheOldConfigStays) {
  Daemon d = make(config_named("alpha"));
  d.start();
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
  EXPECT_EQ(
      notifier_.messages.back(),
      "READY=1\nSTATUS=standalone; node alpha; firewall nftables (3 ports, 2 static sources)");
  d.stop("test");
  io_.run();
}

TEST_F(DaemonTest, StopNotifiesOnceEvenIfCalledTwice) {
  Daemon d = make(config_named("alpha"));
  d.start();
  d.stop("SIGTERM");
  d.stop("SIGINT");
  io_.run();
  int stopping = 0;
  for (const auto& m : notifier_.messages)
    stopping += m.starts_with("STOPPING=1") ? 1 : 0;
  EXPECT_EQ(stopping, 1);
  EXPECT_EQ(notifier_.messages.back(), "STOPPING=1\nSTATUS=stopping (SIGTERM)");
}

TEST(StatusLine, SummarisesModeNodeAndFirewall) {
  Config c = config_named("alpha");
  c.control_plane.emplace();
  c.firewall.backend = FirewallBackend::kNone;
  EXPECT_EQ(status_line(c), "control plane configured; node alpha; firewall none");
}

}  // namespace
}  // namespace tetherd
