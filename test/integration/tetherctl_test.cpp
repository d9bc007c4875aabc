// The real tetherctl binary: against a running tetherd's rules in the
// daemon's own network namespace, and its command line and exit codes.

#include <filesystem>
#include <fstream>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "test/support/child_process.h"
#include "test/support/netns.h"
#include "test/support/notify_socket.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

constexpr auto kDeadline = 10s;

struct CtlRun {
  int code;
  std::string out;
  std::string err;
};

class Tetherctl : public ::testing::Test {
 protected:
  // The daemons started here inherit it: their status socket goes to the
  // test's directory, not the host's /run/tetherd.
  Tetherctl() {
    std::filesystem::create_directories(tmp_.file("run"));
    setenv("RUNTIME_DIRECTORY", tmp_.file("run").c_str(), 1);
  }
  ~Tetherctl() override { unsetenv("RUNTIME_DIRECTORY"); }

  // Runs tetherctl, in the network namespace `netns` (a /proc path) if given.
  CtlRun ctl(std::vector<std::string> args, const std::string& netns = "") {
    const std::string dir = tmp_.file("ctl" + std::to_string(runs_++));
    std::filesystem::create_directories(dir);
    std::vector<std::string> argv;
    if (!netns.empty()) argv = {"/usr/bin/nsenter", "--net=" + netns};
    argv.push_back(TETHERCTL_BINARY);
    argv.insert(argv.end(), args.begin(), args.end());
    test::ChildProcess p(argv, dir);
    const int code = p.wait(kDeadline);
    return {code, p.out(), p.err()};
  }
  void write_config(const std::string& text) { std::ofstream(config_) << text; }

  test::TempDir tmp_;
  std::string config_ = tmp_.file("tetherd.yaml");
  int runs_ = 0;
};

TEST_F(Tetherctl, UsageErrors) {
  EXPECT_EQ(ctl({}).code, 64);
  auto r = ctl({"frobnicate", "now"});
  EXPECT_EQ(r.code, 64);
  EXPECT_NE(r.err.find("unknown command: frobnicate now"), std::string::npos) << r.err;
  EXPECT_EQ(ctl({"-o", "yaml", "check"}).code, 64);
  EXPECT_EQ(ctl({"--version"}).out, "tetherctl " TETHERD_VERSION "\n");
}

TEST_F(Tetherctl, ABadConfigurationIsNamedWithItsLine) {
  write_config("firewall:\n  ports: [70000]\n");
  auto show = ctl({"-c", config_, "firewall", "show"});
  EXPECT_EQ(show.code, 78);
  EXPECT_NE(show.err.find(config_ + ":2:"), std::string::npos) << show.err;
  auto check = ctl({"-c", config_, "check", "-o", "json"});
  EXPECT_EQ(check.code, 1);
  auto doc = boost::json::parse(check.out);
  EXPECT_EQ(doc.at("checks").at(0).at("status"), "fail");
}

TEST_F(Tetherctl, BackendNoneShowsWhatWouldBeApplied) {
  write_config("firewall: {backend: none}\nstate: {dir: " + tmp_.file("state") + "}\n");
  auto r = ctl({"-c", config_, "firewall", "show"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("rules     not managed\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("10.42.0.0/15                                no    yes\n"),
            std::string::npos)
      << r.out;
}

TEST_F(Tetherctl, ShowsAndChecksTheRunningDaemonsRules) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  std::filesystem::create_directories(tmp_.file("state"));
  std::ofstream(tmp_.file("state/desired-firewall.json"))
      << R"({"version":1,"sources":["198.51.100.0/24"],"ports":[]})"
      << "\n";
  write_config("firewall: {onStop: remove}\nstate: {dir: " + tmp_.file("state") + "}\n");
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess daemon(
      {TETHERD_BINARY, "--config", config_}, tmp_.path(),
      {.env = {{"NOTIFY_SOCKET", notify.path()}}, .new_network_namespace = true});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << daemon.err();
  const std::string netns = "/proc/" + std::to_string(daemon.pid()) + "/ns/net";

  auto show = ctl({"-c", config_, "firewall", "show", "-o", "json"}, netns);
  ASSERT_EQ(show.code, 0) << show.out << show.err;
  auto doc = boost::json::parse(show.out);
  EXPECT_EQ(doc.at("rules"), "in sync");
  EXPECT_EQ(doc.at("backend"), "nftables");
  bool found = false;
  for (const auto& s : doc.at("sources").as_array()) {
    if (s.at("cidr") == "198.51.100.0/24") {
      found = true;
      EXPECT_EQ(s.at("live"), true);
      EXPECT_EQ(s.at("desired"), true);
    }
  }
  EXPECT_TRUE(found) << show.out;

  auto ok = ctl({"-c", config_, "check"}, netns);
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("ok    firewall        nftables rules in force and in sync"),
            std::string::npos)
      << ok.out;

  // ufw switched on beside tetherd (as iptables-nft leaves it): the check fails.
  test::sh("nsenter --net=" + netns + " nft add table ip filter");
  test::sh("nsenter --net=" + netns +
           " nft add chain ip filter INPUT '{ type filter hook input priority 0; policy drop; }'");
  test::sh("nsenter --net=" + netns + " nft add chain ip filter ufw-user-input");
  auto blocked = ctl({"-c", config_, "check"}, netns);
  EXPECT_EQ(blocked.code, 1);
  EXPECT_NE(blocked.out.find("fail  other-firewall  ufw is active (table ip filter, chain INPUT"),
            std::string::npos)
      << blocked.out;

  // The rules are the running daemon's to remove: on-stop is refused.
  auto refused =
      ctl({"-c", config_, "--socket", tmp_.file("run/tetherd.sock"), "firewall", "on-stop"}, netns);
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("tetherd is running"), std::string::npos) << refused.err;
  test::sh("nsenter --net=" + netns + " nft list table inet tetherd >/dev/null");

  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(kDeadline), 0) << daemon.err();
}

// Left behind by a tetherd that was killed: on-stop does what its stop would.
TEST_F(Tetherctl, OnStopDoesWhatTheDaemonsStopWould) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  const std::string name = "tdstop" + std::to_string(getpid());
  test::sh("ip netns add " + name);
  const std::string netns = "/run/netns/" + name;
  test::sh("ip netns exec " + name + " nft add table inet tetherd");
  auto has_table = [&] {
    return std::system(("ip netns exec " + name + " nft list table inet tetherd >/dev/null 2>&1")
                           .c_str()) == 0;
  };
  // No tetherd answers on the socket, as after a kill.
  auto on_stop = [&] {
    return ctl({"-c", config_, "--socket", tmp_.file("run/absent.sock"), "firewall", "on-stop"},
               netns);
  };

  write_config("firewall: {onStop: keep}\n");
  auto kept = on_stop();
  EXPECT_EQ(kept.code, 0) << kept.err;
  EXPECT_EQ(kept.out, "firewall.onStop is keep: tetherd's nftables rules stay in force\n");
  EXPECT_TRUE(has_table());

  write_config("firewall: {onStop: remove}\n");
  auto removed = on_stop();
  EXPECT_EQ(removed.code, 0) << removed.err;
  EXPECT_EQ(removed.out, "tetherd's nftables rules removed (firewall.onStop: remove)\n");
  EXPECT_FALSE(has_table());
  // Nothing left to remove is not an error (a second removal of the package).
  auto again = on_stop();
  EXPECT_EQ(again.code, 0) << again.err;
  test::sh("ip netns del " + name);
}

TEST_F(Tetherctl, MissingRulesAreReportedWithoutTheDaemon) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to create a network namespace";
  write_config("state: {dir: " + tmp_.file("state") + "}\n");
  const std::string name = "tdctl" + std::to_string(getpid());
  test::sh("ip netns add " + name);
  auto show = ctl({"-c", config_, "firewall", "show"}, "/run/netns/" + name);
  auto check = ctl({"-c", config_, "check"}, "/run/netns/" + name);
  test::sh("ip netns del " + name);
  EXPECT_EQ(show.code, 1) << show.err;
  EXPECT_NE(show.out.find("rules     missing\n"), std::string::npos) << show.out;
  EXPECT_EQ(check.code, 1);
  EXPECT_NE(check.out.find("the managed ports are open to anyone"), std::string::npos) << check.out;
}

}  // namespace
}  // namespace tetherd
