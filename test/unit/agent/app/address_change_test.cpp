// The hint that the cloud's address may have changed, from the kernel's
// record and the allowlist (app/address_change.h).

#include "agent/app/address_change.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

namespace ip = boost::asio::ip;
namespace fw = firewall;
using namespace std::chrono_literals;

fw::Sighting seen(const char* source, std::uint16_t port, std::uint64_t packets,
                  std::chrono::seconds ago) {
  return {ip::make_address(source), port, packets, ago};
}

class AddressChange : public ::testing::Test {
 protected:
  AddressChange() {
    fw::Policy p;
    p.ports = {6443, 4143, 4191};
    p.cluster_networks = {*fw::parse_cidr("10.42.0.0/16")};
    desired_ = fw::build_allowlist(p, {*fw::parse_cidr("198.51.100.0/24")},
                                   {ip::make_address("192.0.2.1")});
  }
  fw::Allowlist desired_;
  fw::Evidence e_;
};

TEST_F(AddressChange, AStrangerRefusedWhileTheCloudIsQuietIsNamed) {
  e_.accepted = {seen("198.51.100.7", 4191, 900, 2h), seen("198.51.100.7", 6443, 3, 5min)};
  e_.refused = {seen("203.0.113.99", 4191, 40, 590s), seen("203.0.113.99", 8080, 4, 100s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h))
      << "the cloud came 5m ago on 6443: its address is still allowed";
  e_.accepted[1].ago = 3h;
  const auto h = address_change_hint(e_, desired_, 24h);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stranger, ip::make_address("203.0.113.99"));
  EXPECT_EQ(h->ports, std::vector<std::uint16_t>{4191}) << "8080 is not a filtered port";
  EXPECT_EQ(h->attempts, 40u);
  EXPECT_EQ(h->trying, 590s);
  EXPECT_EQ(h->message(),
            "203.0.113.99 was refused 40 times on 4191 in the last 10m while the cloud "
            "(198.51.100.0/24) has not connected on 4191 for 2h: has the cloud's address "
            "changed?");
}

TEST_F(AddressChange, NothingIsSaidWhileTheCloudConnects) {
  e_.accepted = {seen("198.51.100.7", 4191, 900, 3s)};
  e_.refused = {seen("203.0.113.99", 4191, 40, 590s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h));
}

TEST_F(AddressChange, NeverConnectedCountsOnlyOnceTheRecordIsOldEnough) {
  e_.refused = {seen("203.0.113.99", 4143, 3, 200s), seen("203.0.113.99", 4191, 3, 60s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 10min)) << "watched for less than 30m";
  const auto h = address_change_hint(e_, desired_, 45min);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ports, (std::vector<std::uint16_t>{4143, 4191}));
  EXPECT_EQ(h->message(),
            "203.0.113.99 was refused 6 times on 4143 and 4191 in the last 10m while no cloud "
            "source has connected on 4143 and 4191 in the 45m tetherd has watched: has the "
            "cloud's address changed?");
}

TEST_F(AddressChange, TheStrangerWithTheMostAttemptsIsNamedAndAFewAreNoFinding) {
  e_.refused = {seen("192.0.2.99", 6443, 2, 200s), seen("203.0.113.5", 6443, 9, 200s),
                seen("203.0.113.4", 6443, 9, 200s)};
  const auto h = address_change_hint(e_, desired_, 24h);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stranger, ip::make_address("203.0.113.4")) << "of equals, the lowest address";
  e_.refused = {seen("192.0.2.99", 6443, 4, 200s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h)) << "under 5 attempts";
  e_.refused = {seen("192.0.2.99", 6443, 6, 100s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h))
      << "one connect() and its SYN retries: not trying for 150s yet";
}

// A port the cloud does not use while it uses the others (6443 in pull
// mode) is not quiet: a scanner knocking there is no finding.
TEST_F(AddressChange, APortTheCloudDoesNotUseIsNotQuiet) {
  e_.accepted = {seen("198.51.100.7", 4191, 900, 3s)};
  e_.refused = {seen("203.0.113.99", 6443, 40, 590s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h));
  // And "never", after a day, is said as the day the record covers.
  e_.accepted.clear();
  const auto h = address_change_hint(e_, desired_, 72h);
  ASSERT_TRUE(h);
  EXPECT_NE(h->message().find("in the 24h tetherd has watched"), std::string::npos) << h->message();
}

// The stranger already named keeps its place while it tries at all (its
// record restarts at one packet), whoever else qualifies: two egress
// addresses of one Cloud NAT, whose records restart in turn, must not take
// it from each other (a warning and a status write each time).
// firewall.closeWhenTunnelled: the cloud reaches 6443 through the tunnel
// (from loopback), so its record there ages; a stranger knocking on the
// closed port is no sign that the cloud's address changed.
TEST_F(AddressChange, AClosedPortIsNoEvidence) {
  e_.accepted = {seen("198.51.100.7", 6443, 3, 3h)};
  e_.refused = {seen("203.0.113.99", 6443, 40, 590s)};
  ASSERT_TRUE(address_change_hint(e_, desired_, 24h)) << "open, it would be";
  desired_.closed_ports = {6443};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h));
}

TEST_F(AddressChange, TheNamedStrangerHoldsItsPlace) {
  HintPolicy held;
  held.prefer = ip::make_address("203.0.113.99");
  e_.refused = {seen("203.0.113.99", 4191, 1, 2s), seen("192.0.2.77", 4191, 2, 200s)};
  auto h = address_change_hint(e_, desired_, 24h, held);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stranger, ip::make_address("203.0.113.99"));
  e_.refused.push_back(seen("192.0.2.78", 4191, 9, 200s));
  h = address_change_hint(e_, desired_, 24h, held);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stranger, ip::make_address("203.0.113.99"));
  held.prefer.reset();
  h = address_change_hint(e_, desired_, 24h, held);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->stranger, ip::make_address("192.0.2.78")) << "held by none: the most attempts";
}

// The admin's fix: the new address allowed (its refused records age out
// over the next 10 minutes, and say nothing meanwhile); and connections
// from an address no longer the cloud's do not keep a port from being quiet.
TEST_F(AddressChange, TheFixEndsTheFindingAndAFormerCloudSourceDoesNotCount) {
  e_.refused = {seen("203.0.113.99", 4191, 40, 590s)};
  e_.accepted = {seen("192.0.2.50", 4191, 10, 1s)};
  ASSERT_TRUE(address_change_hint(e_, desired_, 24h)) << "192.0.2.50 is not the cloud now";
  fw::Policy p;
  p.ports = {6443, 4143, 4191};
  desired_ = fw::build_allowlist(
      p, {*fw::parse_cidr("198.51.100.0/24"), *fw::parse_cidr("203.0.113.99/32")}, {});
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h));
}

TEST_F(AddressChange, WithoutACloudInTheAllowlistNothingIsCompared) {
  fw::Policy p;
  p.ports = {6443};
  e_.refused = {seen("203.0.113.99", 6443, 40, 590s)};
  EXPECT_FALSE(address_change_hint(e_, fw::build_allowlist(p, {}, {}), 24h));
  // Nor on a port that is not managed (a record left from before a reload).
  e_.refused = {seen("203.0.113.99", 8443, 40, 590s)};
  EXPECT_FALSE(address_change_hint(e_, desired_, 24h));
}

TEST_F(AddressChange, TheSummaryCountsPerPortAndDatesEachCloudNetwork) {
  e_.accepted = {seen("198.51.100.7", 4191, 900, 2h), seen("198.51.100.8", 4191, 3, 5min),
                 seen("192.0.2.50", 6443, 10, 1s)};  // no longer the cloud: not counted
  e_.refused = {seen("203.0.113.99", 4191, 40, 590s), seen("203.0.113.98", 4191, 2, 5s),
                seen("203.0.113.99", 8443, 7, 5s)};  // not a filtered port now
  const EvidenceSummary s = summarize(e_, desired_);
  EXPECT_EQ(s.ports,
            (std::vector<EvidenceSummary::PerPort>{{4143, 0, 0}, {4191, 42, 903}, {6443, 0, 0}}));
  EXPECT_EQ(s.cloud_last, (std::vector<EvidenceSummary::LastSeen>{{"198.51.100.0/24", 5min}}));
}

// The node's own address inside the cloud's network cuts the cloud set
// into pieces: the metrics and the hint name the network as configured.
TEST_F(AddressChange, TheCloudIsNamedAsConfiguredNotByThePiecesTheNodeCutsOut) {
  fw::Policy p;
  p.ports = {4191};
  const std::vector<fw::Cidr> configured = {*fw::parse_cidr("198.51.100.0/24")};
  desired_ = fw::build_allowlist(p, configured, {ip::make_address("198.51.100.1")});
  ASSERT_GT(desired_.cloud.cidrs().size(), 1u) << "cut up by the node's own address";
  e_.accepted = {seen("198.51.100.200", 4191, 3, 2h), seen("198.51.100.1", 4191, 9, 1s)};
  e_.refused = {seen("203.0.113.99", 4191, 40, 590s)};
  const EvidenceSummary s = summarize(e_, desired_, configured);
  EXPECT_EQ(s.cloud_last, (std::vector<EvidenceSummary::LastSeen>{{"198.51.100.0/24", 2h}}))
      << "the node's own connection is not the cloud's";
  EXPECT_EQ(s.ports, (std::vector<EvidenceSummary::PerPort>{{4191, 40, 3}}));
  const auto h = address_change_hint(e_, desired_, 24h, {}, configured);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->cloud_source, "198.51.100.0/24");
}

}  // namespace
}  // namespace tetherd
