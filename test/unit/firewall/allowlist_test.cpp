#include "firewall/allowlist.h"

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

namespace ip = boost::asio::ip;

std::vector<std::string> strings(const std::vector<Cidr>& cidrs) {
  std::vector<std::string> out;
  for (const auto& c : cidrs)
    out.push_back(c.to_string());
  return out;
}

Policy default_policy() {
  Policy p;
  p.ports = {6443, 4143, 4191};
  p.always_allow = {*parse_cidr("10.42.0.0/16"), *parse_cidr("10.43.0.0/16")};
  p.allow = {*parse_cidr("203.0.113.10/32")};
  p.max_sources = 4;
  return p;
}

TEST(Validate, AcceptsAndNormalisesAGoodSet) {
  auto got = validate({{"198.51.100.7/24", "2001:db8::1"}, {6443}}, default_policy());
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(strings(*got), (std::vector<std::string>{"198.51.100.0/24", "2001:db8::1/128"}));
}

struct Bad {
  const char* name;
  DesiredSources desired;
  const char* message;
  friend std::ostream& operator<<(std::ostream& o, const Bad& b) { return o << b.name; }
};

class ValidateRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(ValidateRejects, TheWholeUpdate) {
  auto got = validate(GetParam().desired, default_policy());
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().message, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidateRejects,
    ::testing::Values(
        Bad{"OneBadCidrAmongGood",
            {{"198.51.100.0/24", "198.51.100.300/32", "192.0.2.0/24"}, {}},
            "allowedSources[1]: invalid CIDR \"198.51.100.300/32\": not an IP address"},
        Bad{"TooMany",
            {{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"}, {}},
            "5 sources requested, more than maxSources (4)"},
        Bad{"TheWholeInternet",
            {{"192.0.2.0/24", "0.0.0.0/0"}, {}},
            "allowedSources[1]: 0.0.0.0/0 is wider than firewall.minPrefixLength.ipv4 (/8)"},
        Bad{"TheWholeIPv6Internet",
            {{"::/0"}, {}},
            "allowedSources[0]: ::/0 is wider than firewall.minPrefixLength.ipv6 (/32)"},
        Bad{"HalfTheInternet",
            {{"128.0.0.0/1"}, {}},
            "allowedSources[0]: 128.0.0.0/1 is wider than firewall.minPrefixLength.ipv4 (/8)"},
        Bad{"PortOutsideTheManagedSet",
            {{"192.0.2.1"}, {6443, 22}},
            "port 22 is not one of the ports tetherd manages (firewall.ports)"}));

TEST(Validate, MinPrefixLengthIsTheWidestAllowedPerFamily) {
  Policy p = default_policy();
  EXPECT_TRUE(validate({{"10.0.0.0/8", "2001:db8::/32"}, {}}, p).has_value()) << "the defaults";
  p.min_prefix_v4 = 24;
  p.min_prefix_v6 = 64;
  EXPECT_TRUE(validate({{"192.0.2.0/24", "2001:db8:1::/64"}, {}}, p).has_value());
  EXPECT_FALSE(validate({{"192.0.2.0/23"}, {}}, p).has_value());
  EXPECT_FALSE(validate({{"2001:db8::/63"}, {}}, p).has_value());
  p.min_prefix_v4 = 0;  // the operator's choice: anything goes
  EXPECT_TRUE(validate({{"0.0.0.0/0"}, {}}, p).has_value());
}

TEST(BuildAllowlist, IsTheUnionOfEverySource) {
  const auto cp = *validate({{"198.51.100.0/24"}, {}}, default_policy());
  const Allowlist a =
      build_allowlist(default_policy(), cp,
                      {ip::make_address("192.0.2.1"), ip::make_address("2001:db8::1"),
                       ip::make_address("fe80::1%1")});
  EXPECT_EQ(a.ports, (std::vector<std::uint16_t>{4143, 4191, 6443}));
  EXPECT_EQ(
      strings(a.sources.cidrs()),
      (std::vector<std::string>{"10.42.0.0/15", "127.0.0.0/8", "192.0.2.1/32", "198.51.100.0/24",
                                "203.0.113.10/32", "::1/128", "2001:db8::1/128", "fe80::1/128"}));
}

TEST(BuildAllowlist, LoopbackIsAllowedEvenWithNothingElse) {
  Policy p;
  p.ports = {6443};
  const Allowlist a = build_allowlist(p, {}, {});
  EXPECT_TRUE(a.sources.contains(ip::make_address("127.0.0.1")));
  EXPECT_TRUE(a.sources.contains(ip::make_address("::1")));
  EXPECT_FALSE(a.sources.contains(ip::make_address("192.0.2.1")));
}

TEST(BuildAllowlist, TheClusterNetworksAreSourcesAndProtectedDestinations) {
  Policy p;
  p.ports = {4143};
  p.cluster_networks = {*parse_cidr("10.42.0.0/16"), *parse_cidr("2001:db8:42::/56")};
  const Allowlist a = build_allowlist(p, {}, {});
  // Pod-to-pod traffic is the cluster's own: never locked out.
  EXPECT_TRUE(a.sources.contains(ip::make_address("10.42.7.9")));
  EXPECT_TRUE(a.sources.contains(ip::make_address("2001:db8:42::9")));
  EXPECT_EQ(strings(a.cluster.cidrs()),
            (std::vector<std::string>{"10.42.0.0/16", "2001:db8:42::/56"}));
  p.cluster_networks.pop_back();
  const AllowlistDiff d = diff(a, build_allowlist(p, {}, {}));
  EXPECT_EQ(strings(d.cluster_removed), (std::vector<std::string>{"2001:db8:42::/56"}));
  EXPECT_TRUE(d.cluster_added.empty());
  EXPECT_FALSE(d.empty());
}

// firewall.closeWhenTunnelled: a closed port admits only the inner sources
// (loopback, the node, the cluster, alwaysAllow), never the cloud's.
TEST(BuildAllowlist, AClosedPortAdmitsOnlyTheInnerSources) {
  Policy p = default_policy();
  p.cluster_networks = {*parse_cidr("10.42.0.0/16")};
  p.always_allow.push_back(*parse_cidr("198.51.100.7/32"));  // also the control plane's
  p.closed_ports = {6443, 9999};                             // 9999 is not managed: ignored
  const auto cp = *validate({{"198.51.100.0/24"}, {}}, default_policy());
  const Allowlist a = build_allowlist(p, cp, {ip::make_address("192.0.2.1")});
  EXPECT_EQ(a.closed_ports, (std::vector<std::uint16_t>{6443}));
  EXPECT_EQ(strings(a.inner.cidrs()),
            (std::vector<std::string>{"10.42.0.0/15", "127.0.0.0/8", "192.0.2.1/32",
                                      "198.51.100.7/32", "::1/128"}));
  // The cloud (allow, the control plane's) is not inner; the sources are as without.
  EXPECT_FALSE(a.inner.contains(ip::make_address("203.0.113.10")));
  EXPECT_FALSE(a.inner.contains(ip::make_address("198.51.100.8")));
  p.closed_ports.clear();
  const Allowlist open = build_allowlist(p, cp, {ip::make_address("192.0.2.1")});
  EXPECT_EQ(open.sources, a.sources);
  EXPECT_EQ(open.inner, a.inner) << "inner is made whether or not a port is closed";
  // Closing and opening is a change of the closed ports alone.
  const AllowlistDiff d = diff(open, a);
  EXPECT_EQ(d.closed_added, (std::vector<std::uint16_t>{6443}));
  EXPECT_TRUE(d.closed_removed.empty() && d.added.empty() && d.removed.empty() &&
              d.inner_added.empty() && d.inner_removed.empty());
  EXPECT_FALSE(d.empty());
  EXPECT_EQ(diff(a, open).closed_removed, (std::vector<std::uint16_t>{6443}));
}

TEST(Diff, ReportsWhatChanges) {
  Policy p = default_policy();
  const Allowlist live = build_allowlist(p, {*parse_cidr("198.51.100.0/24")}, {});
  p.ports = {6443, 4143};
  p.verdict = Verdict::kReject;
  const Allowlist desired = build_allowlist(p, {*parse_cidr("192.0.2.0/24")}, {});
  const AllowlistDiff d = diff(live, desired);
  EXPECT_EQ(strings(d.added), (std::vector<std::string>{"192.0.2.0/24"}));
  EXPECT_EQ(strings(d.removed), (std::vector<std::string>{"198.51.100.0/24"}));
  EXPECT_TRUE(d.ports_added.empty());
  EXPECT_EQ(d.ports_removed, (std::vector<std::uint16_t>{4191}));
  EXPECT_TRUE(d.verdict_changed);
  EXPECT_FALSE(d.empty());
  EXPECT_TRUE(diff(desired, desired).empty());
}

}  // namespace
}  // namespace tetherd::firewall
