#include "firewall/cidr.h"

#include <algorithm>
#include <vector>

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

struct Case {
  const char* text;
  const char* want;  // normalised form, or the error message
  bool ok;
  friend std::ostream& operator<<(std::ostream& o, const Case& c) { return o << c.text; }
};

class ParseCidr : public ::testing::TestWithParam<Case> {};

TEST_P(ParseCidr, NormalisesOrExplains) {
  const Case& c = GetParam();
  auto got = parse_cidr(c.text);
  ASSERT_EQ(got.has_value(), c.ok) << c.text;
  EXPECT_EQ(c.ok ? got->to_string() : got.error().message, c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseCidr,
    ::testing::Values(
        Case{"203.0.113.0/24", "203.0.113.0/24", true},
        Case{"203.0.113.77/24", "203.0.113.0/24", true},  // host bits cleared
        Case{"198.51.100.7", "198.51.100.7/32", true},    // bare address: one host
        Case{"0.0.0.0/0", "0.0.0.0/0", true}, Case{"2001:db8::1/32", "2001:db8::/32", true},
        Case{"2001:DB8::/48", "2001:db8::/48", true}, Case{"2001:db8::5", "2001:db8::5/128", true},
        Case{"", "empty CIDR", false},
        Case{"203.0.113.0/33", "invalid CIDR \"203.0.113.0/33\": prefix length must be 0-32",
             false},
        Case{"2001:db8::/129", "invalid CIDR \"2001:db8::/129\": prefix length must be 0-128",
             false},
        Case{"203.0.113.0/", "invalid CIDR \"203.0.113.0/\": prefix length is not a number", false},
        Case{"203.0.113.0/2x", "invalid CIDR \"203.0.113.0/2x\": prefix length is not a number",
             false},
        Case{"203.0.113.0/-1", "invalid CIDR \"203.0.113.0/-1\": prefix length is not a number",
             false},
        Case{"203.0.113/24", "invalid CIDR \"203.0.113/24\": not an IP address", false},
        Case{"example.com/24", "invalid CIDR \"example.com/24\": not an IP address", false},
        Case{" 203.0.113.0/24", "invalid CIDR \" 203.0.113.0/24\": not an IP address", false},
        Case{"fe80::1%eth0/64",
             "invalid CIDR \"fe80::1%eth0/64\": zone indexes (%) are not allowed", false},
        Case{"::ffff:203.0.113.1/128",
             "invalid CIDR \"::ffff:203.0.113.1/128\": IPv4-mapped IPv6; write the IPv4 form",
             false}));

TEST(Cidr, OrdersIPv4BeforeIPv6ThenByAddressThenPrefix) {
  std::vector<Cidr> v = {*parse_cidr("2001:db8::/32"), *parse_cidr("203.0.113.0/25"),
                         *parse_cidr("198.51.100.0/24"), *parse_cidr("203.0.113.0/24")};
  std::sort(v.begin(), v.end());
  std::vector<std::string> got;
  for (const Cidr& c : v)
    got.push_back(c.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"198.51.100.0/24", "203.0.113.0/24", "203.0.113.0/25",
                                           "2001:db8::/32"}));
}

}  // namespace
}  // namespace tetherd::firewall
