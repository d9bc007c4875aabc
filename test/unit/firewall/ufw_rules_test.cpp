// `ufw show added` as ufw 0.36 (Debian 12) prints it, and the commands
// tetherd runs. The backend against real ufw: test/integration/firewall/.

#include "firewall/ufw_rules.h"

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

const std::vector<std::uint16_t> kManaged = {4143, 4191, 6443};

UfwRule rule(const char* cidr, std::vector<std::uint16_t> ports = kManaged) {
  return {*parse_cidr(cidr), std::move(ports)};
}

TEST(UfwAdded, SortsOursTheUsersAndWhatOpensToAnyone) {
  auto added = parse_ufw_added(
      "Added user rules (see 'ufw status' for running firewall):\n"
      "ufw allow 22/tcp\n"
      "ufw allow from 192.0.2.0/24 to any port 4143,4191,6443 proto tcp comment 'tetherd'\n"
      "ufw allow from 2001:db8:a::/64 to any port 4143,4191,6443 proto tcp comment 'tetherd'\n"
      "ufw allow from 198.51.100.2 to any port 4143,4191,6443 proto tcp\n"
      "ufw allow from 203.0.113.9 to any port 6443 proto tcp comment 'my laptop, thanks'\n"
      "ufw allow 6443/tcp\n"
      "ufw allow 4191\n"
      "ufw allow 4143/udp\n"
      "ufw allow to any port 4000:5000 proto tcp\n"
      "ufw deny from 192.0.2.66\n"
      "ufw allow in on eth0 from 192.0.2.0/24 to any port 6443 proto tcp comment 'tetherd'\n"
      "ufw route allow from 192.0.2.0/24\n",
      kManaged);
  ASSERT_TRUE(added.has_value()) << added.error().message;
  EXPECT_EQ(added->ours, (std::vector<UfwRule>{rule("192.0.2.0/24"), rule("2001:db8:a::/64")}));
  EXPECT_EQ(added->others,
            (std::vector<UfwRule>{rule("198.51.100.2"), rule("203.0.113.9", {6443})}));
  EXPECT_EQ(added->open_to_anyone,
            (std::vector<std::string>{"ufw allow 6443/tcp", "ufw allow 4191",
                                      "ufw allow to any port 4000:5000 proto tcp"}));
}

TEST(UfwAdded, NoRulesAtAll) {
  auto added = parse_ufw_added(
      "Added user rules (see 'ufw status' for running firewall):\n"
      "(None)\n",
      kManaged);
  ASSERT_TRUE(added.has_value());
  EXPECT_TRUE(added->ours.empty());
  EXPECT_TRUE(added->others.empty());
}

TEST(UfwAdded, OddRulesAreTheUsersBusinessNotOurs) {
  auto added = parse_ufw_added(
      "Added user rules\n"
      "ufw allow from 192.0.2.300 to any port 6443 proto tcp comment 'tetherd'\n"
      "ufw allow from 192.0.2.0/24 to any port 99999 proto tcp comment 'tetherd'\n"
      "ufw allow from 192.0.2.0/24 to any port 6443 proto udp comment 'tetherd'\n"
      "ufw allow from 192.0.2.0/24 to any port 6443, proto tcp comment 'tetherd'\n"
      "ufw allow from 192.0.2.0/24 to any port 6443 proto tcp comment 'tetherd\n"
      "ufw\n",
      kManaged);
  ASSERT_TRUE(added.has_value());
  EXPECT_TRUE(added->ours.empty());
}

TEST(UfwAdded, SomethingElseIsAnError) {
  auto added = parse_ufw_added("ERROR: You need to be root to run this script\n", kManaged);
  ASSERT_FALSE(added.has_value());
  EXPECT_EQ(added.error().message,
            "not the output of `ufw show added`: ERROR: You need to be root to run this script");
}

TEST(UfwRules, OneRulePerSourceNetworkForAllPorts) {
  Allowlist a;
  a.ports = kManaged;
  a.sources = AddressSet({*parse_cidr("10.42.0.0/16"), *parse_cidr("2001:db8::/32")});
  EXPECT_EQ(ufw_rules_for(a), (std::vector<UfwRule>{rule("10.42.0.0/16"), rule("2001:db8::/32")}));
  EXPECT_EQ(ufw_add_args(rule("10.42.0.0/16")),
            (std::vector<std::string>{"allow", "proto", "tcp", "from", "10.42.0.0/16", "to", "any",
                                      "port", "4143,4191,6443", "comment", "tetherd"}));
  EXPECT_EQ(ufw_delete_args(rule("2001:db8::/32", {6443})),
            (std::vector<std::string>{"delete", "allow", "proto", "tcp", "from", "2001:db8::/32",
                                      "to", "any", "port", "6443"}));
}

// A closed port: the inner sources keep every managed port, the rest of
// the allowed sources lose the closed ones.
TEST(UfwRules, AClosedPortIsLeftOutOfTheCloudsRules) {
  Allowlist a;
  a.ports = kManaged;
  a.sources = AddressSet({*parse_cidr("127.0.0.0/8"), *parse_cidr("198.51.100.0/24")});
  a.inner = AddressSet({*parse_cidr("127.0.0.0/8")});
  a.closed_ports = {6443};
  EXPECT_EQ(ufw_rules_for(a),
            (std::vector<UfwRule>{rule("127.0.0.0/8"), rule("198.51.100.0/24", {4143, 4191})}));
  // Every managed port closed: the cloud has no rule at all.
  a.closed_ports = kManaged;
  EXPECT_EQ(ufw_rules_for(a), (std::vector<UfwRule>{rule("127.0.0.0/8")}));
  // None closed: inner makes no difference.
  a.closed_ports.clear();
  EXPECT_EQ(ufw_rules_for(a), (std::vector<UfwRule>{rule("127.0.0.0/8"), rule("198.51.100.0/24")}));
}

// Read as ufw reads /etc/default/ufw (backend.py _get_defaults): lines
// matching ^\w+="?\w+"?, the key and value lowercased, quotes stripped.
TEST(UfwRules, IPv6IsOnUnlessTheSettingsFileSaysOtherwise) {
  EXPECT_FALSE(ufw_ipv6_enabled("")) << "absent is off, as ufw has it";
  EXPECT_TRUE(ufw_ipv6_enabled("# IPV6=no\nIPV6=yes\n"));
  EXPECT_TRUE(ufw_ipv6_enabled("IPV6=\"YES\"\n"));
  EXPECT_FALSE(ufw_ipv6_enabled("IPV6=no\n"));
  EXPECT_FALSE(ufw_ipv6_enabled("IPT_SYSCTL=/etc/ufw/sysctl.conf\nipv6=\"No\"\n"));
  EXPECT_FALSE(ufw_ipv6_enabled("IPV6=yes\nIPV6=no")) << "the last one counts";
  EXPECT_TRUE(ufw_ipv6_enabled("IPV6=yes\n  IPV6=no\n#IPV6=no\nIPV6=\nIPV6= no\nIPV6='no'\n"))
      << "lines ufw does not read";
  EXPECT_FALSE(ufw_ipv6_enabled("IPV6=yesplease\n"));
}

}  // namespace
}  // namespace tetherd::firewall
