// tetherctl's firewall report and checks: built from a fake backend and a
// real state directory, rendered and compared with golden text. The
// binary against the real kernel is in test/integration/tetherctl_test.cpp.

#include "agent/app/firewall_report.h"

#include <fstream>

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "agent/app/firewall_keeper.h"
#include "agent/app/preflight.h"
#include "firewall/desired_state.h"
#include "test/support/fake_backend.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

namespace fw = firewall;

class FirewallReportTest : public ::testing::Test {
 protected:
  FirewallReportTest() {
    config_.always_allow = {*fw::parse_cidr("10.42.0.0/16")};
    config_.cluster_networks = config_.always_allow;
  }
  Result<FirewallReport> report() {
    return make_firewall_report(config_, backend_, StateDir(tmp_.path()), node_);
  }
  // The kernel holding exactly what tetherd wants.
  void apply_desired() {
    auto r = report();
    ASSERT_TRUE(r.has_value());
    backend_.live = fw::LiveTable{r->desired, true, 42, {}};
  }
  void save(const std::vector<std::string>& sources) {
    std::ofstream(tmp_.file(std::string(fw::kDesiredStateFile)))
        << fw::encode_desired({sources, {}});
  }

  test::TempDir tmp_;
  FirewallConfig config_;
  test::FakeBackend backend_;
  std::vector<boost::asio::ip::address> node_ = {boost::asio::ip::make_address("192.0.2.1")};
};

TEST_F(FirewallReportTest, InSyncTable) {
  save({"198.51.100.0/24"});
  apply_desired();
  auto r = report();
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(render_table(*r),
            "backend   fake\n"
            "rules     in sync\n"
            "ports     4143 4191 6443\n"
            "verdict   drop\n"
            "dropped   42 packets\n"
            "desired   from the saved desired state (1 source from the control plane)\n"
            "\n"
            "SOURCE                                      LIVE  DESIRED\n"
            "10.42.0.0/16                                yes   yes\n"
            "127.0.0.0/8                                 yes   yes\n"
            "192.0.2.1/32                                yes   yes\n"
            "198.51.100.0/24                             yes   yes\n"
            "::1/128                                     yes   yes\n"
            "\n"
            "CLOUD SOURCE                                4143        4191        6443\n"
            "198.51.100.0/24                             -\n"
            "(last connections: not available with the fake backend)\n");
}

TEST_F(FirewallReportTest, DriftShowsWhichSideHoldsWhat) {
  apply_desired();
  save({"198.51.100.0/24"});                                             // wanted, not applied
  backend_.live->allowlist.sources.add(*fw::parse_cidr("203.0.113.7"));  // applied by hand
  auto r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->table, FirewallReport::Table::kDrifted);
  EXPECT_EQ(
      boost::json::serialize(to_json(*r)),
      R"j({"backend":"fake","rules":"drifted","inSync":false,"ports":[4143,4191,6443],)j"
      R"j("verdict":"drop","closedPorts":[],"livePorts":[4143,4191,6443],"droppedPackets":42,)j"
      R"j("desiredFrom":"the saved desired state (1 source from the control plane)",)j"
      R"j("sources":[{"cidr":"10.42.0.0/16","live":true,"desired":true},)j"
      R"j({"cidr":"127.0.0.0/8","live":true,"desired":true},)j"
      R"j({"cidr":"192.0.2.1/32","live":true,"desired":true},)j"
      R"j({"cidr":"198.51.100.0/24","live":false,"desired":true},)j"
      R"j({"cidr":"203.0.113.7/32","live":true,"desired":false},)j"
      R"j({"cidr":"::1/128","live":true,"desired":true}],"blockedBy":[],"caveats":[],)j"
      R"j("cloud":[{"cidr":"198.51.100.0/24","ports":[)j"
      R"j({"port":4143,"lastConnectedSecondsAgo":null,"connections":null},)j"
      R"j({"port":4191,"lastConnectedSecondsAgo":null,"connections":null},)j"
      R"j({"port":6443,"lastConnectedSecondsAgo":null,"connections":null}]}],)j"
      R"j("evidenceAvailable":false,"noEvidenceReason":"not available with the fake backend"})j");
}

TEST_F(FirewallReportTest, ACorruptSavedStateIsNamedAndTheStaticSetShown) {
  std::ofstream(tmp_.file(std::string(fw::kDesiredStateFile))) << "{nope";
  auto r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->table, FirewallReport::Table::kMissing);
  EXPECT_NE(r->desired_from.find("the static allowlist only: " + tmp_.path() +
                                 "/desired-firewall.json: "),
            std::string::npos)
      << r->desired_from;
}

TEST_F(FirewallReportTest, BackendNoneReportsWhatItWouldApply) {
  config_.backend = FirewallBackend::kNone;
  auto r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->table, FirewallReport::Table::kNotManaged);
  EXPECT_TRUE(r->ok());
  EXPECT_FALSE(r->live);
  EXPECT_TRUE(r->desired.sources.contains(boost::asio::ip::make_address("10.42.1.1")));
}

// What the kernel recorded: each cloud source's last new connection per
// port (the latest of its addresses), "never" where none; the refused, most
// attempts first; loopback and the node's own addresses are not the cloud.
TEST_F(FirewallReportTest, EvidenceSaysWhenTheCloudLastConnectedAndWhoWasRefused) {
  config_.allow = {*fw::parse_cidr("203.0.113.10/32")};
  save({"198.51.100.0/24", "2001:db8:c::/48"});
  apply_desired();
  backend_.evidence = true;
  namespace ip = boost::asio::ip;
  using std::chrono::seconds;
  backend_.live->evidence.accepted = {{ip::make_address("198.51.100.7"), 6443, 3, seconds(400)},
                                      {ip::make_address("198.51.100.8"), 6443, 1, seconds(20)},
                                      {ip::make_address("198.51.100.7"), 4191, 9, seconds(7200)},
                                      {ip::make_address("2001:db8:c::5"), 4143, 2, seconds(65)}};
  backend_.live->evidence.refused = {{ip::make_address("192.0.2.99"), 6443, 2, seconds(30)},
                                     {ip::make_address("203.0.113.99"), 4191, 40, seconds(590)},
                                     {ip::make_address("2001:db8:bad::1"), 4143, 5, seconds(3)}};
  auto r = report();
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const std::string table = render_table(*r);
  EXPECT_NE(
      table.find("CLOUD SOURCE                                4143        4191        6443\n"
                 "203.0.113.10/32                             never       never       never\n"
                 "198.51.100.0/24                             never       120m ago    20s ago\n"
                 "2001:db8:c::/48                             65s ago     never       never\n"),
      std::string::npos)
      << table;
  EXPECT_EQ(render_refused(*r, 2),
            "SOURCE                                      PORT   ATTEMPTS  SINCE\n"
            "203.0.113.99                                4191   40        9m50s ago\n"
            "2001:db8:bad::1                             4143   5         3s ago\n"
            "... and 1 more (-o json lists all)\n"
            "(first packets of new connections, retries included, in records kept 10m from "
            "each one's first)\n");
  EXPECT_EQ(boost::json::serialize(refused_json(*r)),
            R"j({"evidenceAvailable":true,"windowSeconds":600,"refused":[)j"
            R"j({"source":"203.0.113.99","port":4191,"attempts":40,"sinceSecondsAgo":590},)j"
            R"j({"source":"2001:db8:bad::1","port":4143,"attempts":5,"sinceSecondsAgo":3},)j"
            R"j({"source":"192.0.2.99","port":6443,"attempts":2,"sinceSecondsAgo":30}],)j"
            R"j("fullIPv4":false,"fullIPv6":false})j");
  const auto json = boost::json::serialize(to_json(*r));
  EXPECT_NE(json.find(R"j({"cidr":"198.51.100.0/24","ports":[)j"
                      R"j({"port":4143,"lastConnectedSecondsAgo":null,"connections":0},)j"
                      R"j({"port":4191,"lastConnectedSecondsAgo":7200,"connections":9},)j"
                      R"j({"port":6443,"lastConnectedSecondsAgo":20,"connections":4}]})j"),
            std::string::npos)
      << json;
}

// tetherctl check warns when the record shows the cloud quiet for long on a
// port where a stranger keeps being refused; "never" proves nothing here
// (how long the daemon has watched is not known to tetherctl).
TEST_F(FirewallReportTest, CheckWarnsOfAStrangerWhereTheCloudWentQuiet) {
  save({"198.51.100.0/24"});
  apply_desired();
  backend_.evidence = true;
  namespace ip = boost::asio::ip;
  using std::chrono::seconds;
  backend_.live->evidence.refused = {{ip::make_address("203.0.113.99"), 4191, 40, seconds(590)}};
  EXPECT_EQ(render_checks(firewall_checks(config_, report())),
            "ok    firewall        fake rules in force and in sync: 5 source networks\n"
            "ok    other-firewall  no other table drops the managed ports by default\n")
      << "the cloud never connected in the record: proves nothing";
  backend_.live->evidence.accepted = {{ip::make_address("198.51.100.7"), 4191, 900, seconds(7200)}};
  const auto checks = firewall_checks(config_, report());
  EXPECT_TRUE(passed(checks)) << "a warning";
  EXPECT_EQ(render_checks(checks),
            "ok    firewall        fake rules in force and in sync: 5 source networks\n"
            "warn  cloud-address   203.0.113.99 was refused 40 times on 4191 in the last 10m "
            "while the cloud (198.51.100.0/24) has not connected on 4191 for 2h: has the cloud's "
            "address changed?\n"
            "ok    other-firewall  no other table drops the managed ports by default\n");
}

// Each source as configured is a row: of two neighbouring gateways (one
// /31 once merged), the one that never connects shows as such.
TEST_F(FirewallReportTest, NeighbouringCloudSourcesAreRowsOfTheirOwn) {
  save({"198.51.100.10/32", "198.51.100.11/32"});
  apply_desired();
  backend_.evidence = true;
  backend_.live->evidence.accepted = {
      {boost::asio::ip::make_address("198.51.100.10"), 6443, 1, std::chrono::seconds(20)}};
  const std::string table = render_table(report().value());
  EXPECT_NE(
      table.find("198.51.100.10/32                            never       never       20s ago\n"
                 "198.51.100.11/32                            never       never       never\n"),
      std::string::npos)
      << table;
}

TEST_F(FirewallReportTest, WithoutEvidenceTheReportSaysWhy) {
  apply_desired();
  auto r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->evidence);
  EXPECT_EQ(render_refused(*r, 20), "refused sources: not available with the fake backend\n");
  EXPECT_EQ(
      boost::json::serialize(refused_json(*r)),
      R"j({"evidenceAvailable":false,"noEvidenceReason":"not available with the fake backend"})j");
  backend_.evidence = true;
  backend_.live->rules_intact = false;
  r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(render_refused(*r, 20),
            "refused sources: tetherd's table is not as tetherd wrote it (tetherd repairs it when "
            "it runs)\n")
      << "an empty record would say nobody was refused";
  backend_.live.reset();
  r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(render_refused(*r, 20), "refused sources: tetherd's table is missing\n");
  config_.backend = FirewallBackend::kNone;
  r = report();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(render_refused(*r, 20),
            "refused sources: firewall.backend is none: tetherd has no rules\n");
}

TEST_F(FirewallReportTest, AReadFailureIsAnError) {
  backend_.fail_read = true;
  auto r = report();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "fake read failure");
}

TEST_F(FirewallReportTest, ChecksFailOnMissingRulesAndOnAnotherFirewall) {
  backend_.blocking = {{"ip", "filter", "INPUT", "input", true}};
  auto checks = firewall_checks(config_, report());
  EXPECT_FALSE(passed(checks));
  EXPECT_EQ(render_checks(checks),
            "fail  firewall        tetherd's fake rules are not in the kernel: the managed ports "
            "are open to anyone (is tetherd running?)\n"
            "fail  other-firewall  " +
                fw::explain(backend_.blocking[0], config_.ports) + "\n");
}

TEST_F(FirewallReportTest, CaveatsAreShownAndSeriousOnesFailTheCheck) {
  apply_desired();
  backend_.caveat_list = {{true, "ufw is inactive"}, {false, "ufw filters host sockets only"}};
  auto r = report();
  ASSERT_TRUE(r.has_value());
  const std::string table = render_table(*r);
  EXPECT_NE(table.find("\ncaveats:\n  ! ufw is inactive\n  - ufw filters host sockets only\n"),
            std::string::npos)
      << table;
  auto checks = firewall_checks(config_, r);
  EXPECT_FALSE(passed(checks));
  EXPECT_EQ(render_checks(checks),
            "ok    firewall        fake rules in force and in sync: 4 source networks\n"
            "fail  firewall        ufw is inactive\n"
            "warn  firewall        ufw filters host sockets only\n"
            "ok    other-firewall  no other table drops the managed ports by default\n");
}

// firewall.closeWhenTunnelled: a port the tunnel serves, closed in the
// kernel, is tetherd's doing; another closed port is drift.
TEST_F(FirewallReportTest, AClosedPortIsTetherdsOnlyWhenTheTunnelServesIt) {
  config_.close_when_tunnelled = true;
  save({"198.51.100.0/24"});
  apply_desired();
  fw::Policy closing = firewall_policy(config_);
  closing.closed_ports = {6443};
  backend_.live->allowlist =
      fw::build_allowlist(closing, {*fw::parse_cidr("198.51.100.0/24")}, node_);
  auto r = make_firewall_report(config_, backend_, StateDir(tmp_.path()), node_, {6443});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->table, FirewallReport::Table::kInSync);
  EXPECT_NE(render_table(*r).find("\nclosed    6443 to all but loopback"), std::string::npos)
      << render_table(*r);
  // 4143 is no port of the tunnel's: closing it is someone else's edit.
  closing.closed_ports = {4143, 6443};
  backend_.live->allowlist =
      fw::build_allowlist(closing, {*fw::parse_cidr("198.51.100.0/24")}, node_);
  r = make_firewall_report(config_, backend_, StateDir(tmp_.path()), node_, {6443});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->table, FirewallReport::Table::kDrifted);
  // Without the key, any closed port is drift.
  config_.close_when_tunnelled = false;
  closing.closed_ports = {6443};
  backend_.live->allowlist =
      fw::build_allowlist(closing, {*fw::parse_cidr("198.51.100.0/24")}, node_);
  r = make_firewall_report(config_, backend_, StateDir(tmp_.path()), node_, {6443});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->table, FirewallReport::Table::kDrifted);
}

TEST_F(FirewallReportTest, ChecksPassWhenInSyncAndAlone) {
  apply_desired();
  auto checks = firewall_checks(config_, report());
  EXPECT_TRUE(passed(checks));
  EXPECT_EQ(boost::json::serialize(checks_to_json(checks)),
            R"j({"ok":true,"checks":[{"name":"firewall","status":"ok","message":)j"
            R"j("fake rules in force and in sync: 4 source networks"},)j"
            R"j({"name":"other-firewall","status":"ok","message":)j"
            R"j("no other table drops the managed ports by default"}]})j");
  EXPECT_FALSE(passed(firewall_checks(config_, make_error("cannot read"))));
}

}  // namespace
}  // namespace tetherd
