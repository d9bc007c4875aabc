// The real tetherd binary under a stand-in service manager: a real notify
// socket, real signals, real exit codes.

#include <filesystem>
#include <fstream>

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/nft_monitor.h"
#include "firewall/nftables_backend.h"
#include "test/support/child_process.h"
#include "test/support/netns.h"
#include "test/support/notify_socket.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"
#include "test/support/ufw_sandbox.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;
const std::string kBinary = TETHERD_BINARY;

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
}

class DaemonProcess : public ::testing::Test {
 protected:
  // The daemons started here inherit it: their status socket goes to the
  // test's directory, not the host's /run/tetherd.
  DaemonProcess() {
    std::filesystem::create_directories(tmp_.file("run"));
    setenv("RUNTIME_DIRECTORY", tmp_.file("run").c_str(), 1);
  }
  ~DaemonProcess() override { unsetenv("RUNTIME_DIRECTORY"); }

  // Tests run on the host: the firewall must not touch it (backend none),
  // nor the metrics take the host's port.
  std::string config_text(const std::string& name, const std::string& extra = "") {
    return "node: {name: " + name +
           "}\nfirewall: {backend: none}\nstate: {dir: " + tmp_.file("state") + "}\n" +
           (extra.find("metrics:") == std::string::npos ? "metrics: {listen: \"\"}\n" : "") + extra;
  }

  test::TempDir tmp_;  // before config_, which is made from it
  std::string config_ = tmp_.file("tetherd.yaml");
};

TEST_F(DaemonProcess, VersionFlag) {
  test::ChildProcess p({kBinary, "--version"}, tmp_.path());
  EXPECT_EQ(p.wait(kDeadline), 0);
  EXPECT_EQ(p.out(), "tetherd " TETHERD_VERSION "\n");
}

TEST_F(DaemonProcess, UnknownFlagIsAUsageError) {
  test::ChildProcess p({kBinary, "--frobnicate"}, tmp_.path());
  EXPECT_EQ(p.wait(kDeadline), 64);
  EXPECT_NE(p.err().find("usage: tetherd"), std::string::npos) << p.err();
}

TEST_F(DaemonProcess, CheckConfigAcceptsTheShippedExample) {
  test::ChildProcess p(
      {kBinary, "--check-config", "--config", TETHERD_SOURCE_DIR "/packaging/tetherd.yaml"},
      tmp_.path());
  EXPECT_EQ(p.wait(kDeadline), 0) << p.err();
  EXPECT_EQ(p.out(), TETHERD_SOURCE_DIR "/packaging/tetherd.yaml: OK\n");
}

TEST_F(DaemonProcess, CheckConfigPrintsEveryProblemAndExits78) {
  write_file(config_, "firewall:\n  backend: iptables\n  ports: [99999]\n");
  test::ChildProcess p({kBinary, "--check-config", "--config", config_}, tmp_.path());
  EXPECT_EQ(p.wait(kDeadline), 78);
  EXPECT_EQ(p.err(), config_ +
                         ":2:12: firewall.backend: expected one of nftables | ufw | none, got "
                         "\"iptables\"\n" +
                         config_ +
                         ":3:11: firewall.ports[0]: expected a port (1-65535), got \"99999\"\n");
}

TEST_F(DaemonProcess, ConfigErrorAtStartExits78AndSaysStopping) {
  write_file(config_, "firewall: {onStop: maybe}\n");
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}});
  EXPECT_EQ(p.wait(kDeadline), 78);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", kDeadline));
  EXPECT_NE(p.err().find("<3>configuration error: " + config_ +
                         ":1:20: firewall.onStop: expected one of keep | remove, got \"maybe\""),
            std::string::npos)
      << p.err();
}

TEST_F(DaemonProcess, ReadyWatchdogReloadAndGracefulStop) {
  write_file(config_, config_text("alpha"));
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}, {"WATCHDOG_USEC", "300000"}},
                        .watchdog_pid_is_child = true});
  std::string seen;
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline, &seen)) << seen << p.err();
  EXPECT_NE(seen.find("STATUS=standalone; node alpha"), std::string::npos) << seen;

  // WATCHDOG_USEC=300ms: pings every 100ms from the event loop.
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(notify.wait_for("WATCHDOG=1", kDeadline)) << i;

  // SIGHUP with a good new configuration: it takes effect.
  write_file(config_, config_text("beta"));
  p.signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("RELOADING=1", kDeadline));
  auto ready = notify.wait_for("READY=1", kDeadline);
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->find("STATUS=standalone; node beta"), std::string::npos) << *ready;

  // SIGHUP with a bad one: rejected with the reason, the old one stays.
  write_file(config_, "node: {name: gamma}\nfirewall: {backend: pf}\n");
  p.signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("RELOADING=1", kDeadline));
  ready = notify.wait_for("READY=1", kDeadline);
  ASSERT_TRUE(ready);
  EXPECT_NE(ready->find("STATUS=standalone; node beta"), std::string::npos) << *ready;

  p.signal(SIGTERM);
  ASSERT_TRUE(notify.wait_for("STOPPING=1", kDeadline));
  EXPECT_EQ(p.wait(kDeadline), 0);
  EXPECT_NE(p.err().find("<3>new configuration rejected, keeping the old one: " + config_ +
                         ":2:21: firewall.backend: expected one of nftables | ufw | none, got "
                         "\"pf\" [TETHERD_EVENT=config-rejected"),
            std::string::npos)
      << p.err();
  EXPECT_NE(p.err().find("<6>stopping on SIGTERM"), std::string::npos) << p.err();
}

TEST_F(DaemonProcess, SigintAlsoStopsGracefully) {
  write_file(config_, config_text("alpha"));
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << p.err();
  p.signal(SIGINT);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", kDeadline));
  EXPECT_EQ(p.wait(kDeadline), 0);
}

TEST_F(DaemonProcess, StandaloneNeedsNoNetworkAtAll) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  // In a fresh network namespace not even loopback is up.
  write_file(config_, config_text("alpha", "metrics: {listen: \"\"}\n"));
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}, .new_network_namespace = true});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << p.err();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(kDeadline), 0) << p.err();
}

// The nftables backend through the real binary, in a network namespace of
// its own: the table is in force before READY=1, the saved desired state is
// applied at boot, and onStop: remove takes the table away.
TEST_F(DaemonProcess, NftablesAppliedBeforeReadyFromTheSavedState) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  std::filesystem::create_directories(tmp_.file("state"));
  write_file(tmp_.file("state/desired-firewall.json"),
             "{\"version\":1,\"sources\":[\"198.51.100.0/24\"],\"ports\":[]}\n");
  write_file(config_, "node: {name: alpha}\nfirewall: {onStop: remove}\nstate: {dir: " +
                          tmp_.file("state") + "}\nmetrics: {listen: \"\"}\n");
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}, .new_network_namespace = true});
  auto ready = notify.wait_for("READY=1", kDeadline);
  ASSERT_TRUE(ready) << p.err();
  EXPECT_NE(ready->find("firewall nftables, 3 ports, "), std::string::npos) << *ready;
  {
    test::InNetns in("/proc/" + std::to_string(p.pid()) + "/ns/net");
    firewall::NftablesBackend nft;
    auto live = nft.read();
    ASSERT_TRUE(live.has_value()) << live.error().message;
    ASSERT_TRUE(live->has_value()) << "table inet tetherd must exist once READY=1 is sent";
    EXPECT_TRUE((*live)->rules_intact);
    EXPECT_TRUE((*live)->allowlist.sources.contains(boost::asio::ip::make_address("198.51.100.7")));
    EXPECT_FALSE((*live)->allowlist.sources.contains(boost::asio::ip::make_address("192.0.2.7")));
  }
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(kDeadline), 0) << p.err();
  EXPECT_NE(p.err().find("TETHERD_EVENT=firewall-removed"), std::string::npos) << p.err();
}

TEST_F(DaemonProcess, SomeoneElsesFlushIsRepairedWithinASecond) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  write_file(config_, "node: {name: alpha}\nfirewall: {onStop: remove}\nstate: {dir: " +
                          tmp_.file("state") + "}\n");
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}, .new_network_namespace = true});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << p.err();
  const std::string netns = "/proc/" + std::to_string(p.pid()) + "/ns/net";

  // Watch the namespace as the daemon does: first the flush, then its repair.
  boost::asio::io_context io(1);
  test::RecordingLog log;
  NftMonitor watch(io, log);
  int commits = 0;
  {
    test::InNetns in(netns);
    ASSERT_TRUE(watch.start([&] {
      if (++commits == 2) io.stop();
    }));
  }
  test::sh("nsenter --net=" + netns + " nft flush ruleset");
  const auto flushed = std::chrono::steady_clock::now();
  io.run_for(1s);
  EXPECT_EQ(commits, 2) << "the daemon did not restore its table within a second\n" << p.err();
  EXPECT_LT(std::chrono::steady_clock::now() - flushed, 1s);
  {
    test::InNetns in(netns);
    firewall::NftablesBackend nft;
    auto live = nft.read();
    ASSERT_TRUE(live.has_value()) << live.error().message;
    ASSERT_TRUE(live->has_value()) << p.err();
    EXPECT_TRUE((*live)->rules_intact);
  }
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(kDeadline), 0) << p.err();
  EXPECT_NE(p.err().find("TETHERD_EVENT=firewall-repaired BACKEND=nftables DRIFT=missing"),
            std::string::npos)
      << p.err();
}

// DHCP, SLAAC, a resume on another network: an address the node gains is
// allowed within a second (it is the node's own), and one it loses leaves
// the allowed set.
TEST_F(DaemonProcess, TheNodesNewAddressesAreAllowedWithinASecondAndOldOnesLeave) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  write_file(config_, "node: {name: alpha}\nfirewall: {onStop: remove}\nstate: {dir: " +
                          tmp_.file("state") + "}\nmetrics: {listen: \"\"}\n");
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p({kBinary, "--config", config_}, tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}, .new_network_namespace = true});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << p.err();
  const std::string netns = "/proc/" + std::to_string(p.pid()) + "/ns/net";
  const auto v4 = boost::asio::ip::make_address("203.0.113.77");
  const auto v6 = boost::asio::ip::make_address("2001:db8:77::1");
  auto allowed = [&] {
    test::InNetns in(netns);
    firewall::NftablesBackend nft;
    auto live = nft.read();
    EXPECT_TRUE(live.has_value() && live->has_value()) << p.err();
    if (!live || !live->has_value()) return std::pair{false, false};
    const auto& sources = (*live)->allowlist.sources;
    return std::pair{sources.contains(v4), sources.contains(v6)};
  };
  // Runs `command` in tetherd's namespace, then waits (on tetherd's commits
  // to its table, at most a second) until the allowed set says `want`.
  auto within_a_second = [&](const std::string& command, std::pair<bool, bool> want) {
    boost::asio::io_context io(1);
    test::RecordingLog log;
    NftMonitor watch(io, log);
    {
      test::InNetns in(netns);
      EXPECT_TRUE(watch.start([&] { io.stop(); }));
    }
    test::sh("nsenter --net=" + netns + " " + command);
    const auto deadline = std::chrono::steady_clock::now() + 1s;
    while (allowed() != want && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_until(deadline);
    }
    return allowed() == want;
  };
  ASSERT_EQ(allowed(), (std::pair{false, false}));

  // A veth pair stands in for the node's link (this kernel may lack dummy).
  test::sh("nsenter --net=" + netns + " ip link add d0 type veth peer name d1");
  EXPECT_TRUE(
      within_a_second("sh -c 'ip addr add 203.0.113.77/32 dev d0 && "
                      "ip addr add 2001:db8:77::1/128 dev d0 nodad && ip link set d0 up'",
                      {true, true}))
      << p.err();
  EXPECT_TRUE(within_a_second("ip addr del 203.0.113.77/32 dev d0", {false, true})) << p.err();
  EXPECT_TRUE(within_a_second("ip link del d0", {false, false})) << p.err();

  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(kDeadline), 0) << p.err();
  EXPECT_NE(p.err().find("TETHERD_EVENT=node-addresses-changed"), std::string::npos) << p.err();
}

// systemctl restart, and a package upgrade's try-restart: with onStop: keep
// the table is never deleted, from one tetherd's stop to the next one's first
// apply (a diff against the kept table), so the ports are never unfiltered.
// With remove they are, from the stop until the new tetherd's first apply.
// `nft monitor` in the namespace is the witness: it prints every change to
// the tables as the kernel makes it.
TEST_F(DaemonProcess, ARestartLeavesNoUnfilteredMomentWithOnStopKeep) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  const std::string netns = "tdrs" + std::to_string(getpid());
  test::sh("ip netns add " + netns);
  struct Cleanup {
    std::string ns;
    ~Cleanup() { std::system(("ip netns del " + ns + " 2>/dev/null").c_str()); }
  } cleanup{netns};
  std::filesystem::create_directories(tmp_.file("state"));
  write_file(tmp_.file("state/desired-firewall.json"),
             "{\"version\":1,\"sources\":[\"198.51.100.0/24\"],\"ports\":[]}\n");
  const std::vector<std::string> tetherd = {"/usr/sbin/ip", "netns",    "exec", netns,
                                            kBinary,        "--config", config_};
  auto run_until_ready = [&](test::NotifySocket& notify) {
    auto p = std::make_unique<test::ChildProcess>(
        tetherd, tmp_.path(), test::ChildOptions{.env = {{"NOTIFY_SOCKET", notify.path()}}});
    EXPECT_TRUE(notify.wait_for("READY=1", kDeadline)) << p->err();
    return p;
  };
  for (const std::string on_stop : {"keep", "remove"}) {
    SCOPED_TRACE("onStop: " + on_stop);
    write_file(config_, "node: {name: alpha}\nfirewall: {onStop: " + on_stop + "}\nstate: {dir: " +
                            tmp_.file("state") + "}\nmetrics: {listen: \"\"}\n");
    test::NotifySocket first_notify(tmp_.file("notify-1-" + on_stop));
    auto first = run_until_ready(first_notify);

    // The witness, listening before the restart begins: a sentinel table it
    // has printed proves it (line-buffered: its output is a file).
    const std::string monitor_dir = tmp_.file("monitor-" + on_stop);
    std::filesystem::create_directories(monitor_dir);
    test::ChildProcess monitor(
        {"/usr/sbin/ip", "netns", "exec", netns, "stdbuf", "-oL", "nft", "monitor", "tables"},
        monitor_dir);
    const auto give_up = std::chrono::steady_clock::now() + kDeadline;
    while (monitor.out().find("sentinel") == std::string::npos &&
           std::chrono::steady_clock::now() < give_up) {
      test::sh("ip netns exec " + netns + " nft 'add table ip sentinel; delete table ip sentinel'");
      poll(nullptr, 0, 50);
    }
    ASSERT_NE(monitor.out().find("sentinel"), std::string::npos) << monitor.err();

    first->signal(SIGTERM);  // systemctl restart: stop, then start
    EXPECT_EQ(first->wait(kDeadline), 0) << first->err();
    test::NotifySocket second_notify(tmp_.file("notify-2-" + on_stop));
    auto second = run_until_ready(second_notify);
    second->signal(SIGTERM);
    EXPECT_EQ(second->wait(kDeadline), 0) << second->err();
    monitor.signal(SIGTERM);
    monitor.wait(kDeadline);

    const bool deleted = monitor.out().find("delete table inet tetherd") != std::string::npos;
    EXPECT_EQ(deleted, on_stop == "remove") << monitor.out();
    test::sh("ip netns exec " + netns + " nft delete table inet tetherd 2>/dev/null; true");
  }
}

TEST_F(DaemonProcess, UfwBackendAppliesTheSavedStateInUfwAndRemovesItOnStop) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  if (!std::filesystem::exists("/usr/sbin/ufw")) GTEST_SKIP() << "ufw is not installed";
  const std::string netns = "tdufw" + std::to_string(getpid());
  test::sh("ip netns add " + netns);
  struct Cleanup {
    std::string ns;
    ~Cleanup() { std::system(("ip netns del " + ns).c_str()); }
  } cleanup{netns};
  test::UfwSandbox ufw(netns, tmp_);
  ASSERT_TRUE(ufw.ufw({"--force", "enable"}));

  std::filesystem::create_directories(tmp_.file("state"));
  write_file(tmp_.file("state/desired-firewall.json"),
             "{\"version\":1,\"sources\":[\"198.51.100.0/24\"],\"ports\":[]}\n");
  write_file(config_,
             "node: {name: alpha}\nfirewall: {backend: ufw, onStop: remove}\n"
             "state: {dir: " +
                 tmp_.file("state") + "}\n");
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess p(ufw.argv({kBinary, "--config", config_}), tmp_.path(),
                       {.env = {{"NOTIFY_SOCKET", notify.path()}}});
  auto ready = notify.wait_for("READY=1", 60s);
  ASSERT_TRUE(ready) << p.err();
  EXPECT_NE(ready->find("firewall ufw, 3 ports, "), std::string::npos) << *ready;
  const std::string added = ufw.ufw({"show", "added"}).value();
  EXPECT_NE(added.find("ufw allow from 198.51.100.0/24 to any port 4143,4191,6443 proto tcp "
                       "comment 'tetherd'"),
            std::string::npos)
      << added;
  EXPECT_TRUE(p.err_shows("ufw filters host sockets only", 30s)) << p.err();

  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(60s), 0) << p.err();
  EXPECT_EQ(ufw.ufw({"show", "added"}).value().find("tetherd"), std::string::npos);
  EXPECT_NE(p.err().find("TETHERD_EVENT=firewall-removed"), std::string::npos) << p.err();
}

}  // namespace
}  // namespace tetherd
