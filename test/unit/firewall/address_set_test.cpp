#include "firewall/address_set.h"

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

namespace ip = boost::asio::ip;

std::vector<Cidr> parse_all(const std::vector<std::string>& texts) {
  std::vector<Cidr> out;
  for (const auto& t : texts)
    out.push_back(*parse_cidr(t));
  return out;
}

std::vector<std::string> strings(const std::vector<Cidr>& cidrs) {
  std::vector<std::string> out;
  for (const auto& c : cidrs)
    out.push_back(c.to_string());
  return out;
}

struct Case {
  const char* name;
  std::vector<std::string> in;
  std::vector<std::string> want;
  friend std::ostream& operator<<(std::ostream& o, const Case& c) { return o << c.name; }
};

class Normalises : public ::testing::TestWithParam<Case> {};

TEST_P(Normalises, ToTheFewestCidrs) {
  EXPECT_EQ(strings(AddressSet(parse_all(GetParam().in)).cidrs()), GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Table, Normalises,
    ::testing::Values(
        Case{"Empty", {}, {}},
        Case{"Duplicates", {"192.0.2.0/24", "192.0.2.0/24"}, {"192.0.2.0/24"}},
        Case{"HostBits", {"192.0.2.77/24"}, {"192.0.2.0/24"}},
        Case{"Contained", {"192.0.2.0/24", "192.0.2.128/25", "192.0.2.7"}, {"192.0.2.0/24"}},
        Case{"SiblingsMerge", {"192.0.2.0/25", "192.0.2.128/25"}, {"192.0.2.0/24"}},
        Case{"AdjacentNonSiblings",
             {"192.0.2.128/25", "192.0.3.0/25"},
             {"192.0.2.128/25", "192.0.3.0/25"}},
        Case{"OverlapMerges",
             {"198.51.100.0/25", "198.51.100.64/26", "198.51.100.128/26", "198.51.100.192/26"},
             {"198.51.100.0/24"}},
        Case{"SortedIPv4First",
             {"2001:db8::/32", "203.0.113.0/24", "192.0.2.1"},
             {"192.0.2.1/32", "203.0.113.0/24", "2001:db8::/32"}},
        Case{"Everything",
             {"0.0.0.0/0", "192.0.2.0/24", "::/0", "2001:db8::/32"},
             {"0.0.0.0/0", "::/0"}},
        Case{"TopOfTheSpace", {"255.255.255.254/31", "255.255.255.252/31"}, {"255.255.255.252/30"}},
        Case{"IPv6Siblings", {"2001:db8::/33", "2001:db8:8000::/33"}, {"2001:db8::/32"}},
        Case{"IPv6TopOfTheSpace",
             {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"},
             {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"}}));

TEST(AddressSet, UnevenRangeDecomposesIntoAlignedBlocks) {
  // .1-.6 is not one CIDR: it takes four.
  AddressSet s(parse_all({"192.0.2.1", "192.0.2.2/31", "192.0.2.4/31", "192.0.2.6"}));
  EXPECT_EQ(strings(s.cidrs()), (std::vector<std::string>{"192.0.2.1/32", "192.0.2.2/31",
                                                          "192.0.2.4/31", "192.0.2.6/32"}));
}

TEST(AddressSet, ContainsChecksEveryFamily) {
  AddressSet s(parse_all({"192.0.2.0/24", "2001:db8::/48"}));
  EXPECT_TRUE(s.contains(ip::make_address("192.0.2.255")));
  EXPECT_FALSE(s.contains(ip::make_address("192.0.3.0")));
  EXPECT_TRUE(s.contains(ip::make_address("2001:db8:0:ffff::1")));
  EXPECT_FALSE(s.contains(ip::make_address("2001:db8:1::1")));
  EXPECT_TRUE(s.contains(ip::make_address("::ffff:192.0.2.9"))) << "v4-mapped is IPv4";
  EXPECT_FALSE(AddressSet().contains(ip::make_address("192.0.2.1")));
}

TEST(AddressSet, EqualWhateverTheSpelling) {
  EXPECT_EQ(AddressSet(parse_all({"192.0.2.0/25", "192.0.2.128/25"})),
            AddressSet(parse_all({"192.0.2.0/24"})));
  EXPECT_NE(AddressSet(parse_all({"192.0.2.0/25"})), AddressSet(parse_all({"192.0.2.0/24"})));
}

TEST(AddressSet, AddingASetIsAUnion) {
  AddressSet a(parse_all({"192.0.2.0/25"}));
  a.add(AddressSet(parse_all({"192.0.2.128/25", "2001:db8::/32"})));
  EXPECT_EQ(strings(a.cidrs()), (std::vector<std::string>{"192.0.2.0/24", "2001:db8::/32"}));
  EXPECT_EQ(strings(a.cidrs_v6()), (std::vector<std::string>{"2001:db8::/32"}));
}

TEST(AddressSet, RemovingASetIsADifference) {
  AddressSet a(parse_all({"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"}));
  a.remove(AddressSet(parse_all(
      {"192.0.2.64/26", "198.51.100.0/23", "203.0.113.255/32", "2001:db8::1/128", "10.0.0.0/8"})));
  EXPECT_EQ(strings(a.cidrs_v4()),
            (std::vector<std::string>{"192.0.2.0/26", "192.0.2.128/25", "203.0.113.0/25",
                                      "203.0.113.128/26", "203.0.113.192/27", "203.0.113.224/28",
                                      "203.0.113.240/29", "203.0.113.248/30", "203.0.113.252/31",
                                      "203.0.113.254/32"}));
  EXPECT_FALSE(a.contains(ip::make_address("2001:db8::1")));
  EXPECT_TRUE(a.contains(ip::make_address("2001:db8::2")));
  EXPECT_TRUE(a.contains(ip::make_address("2001:db8::")));
  // Every edge: the whole space, and nothing left.
  AddressSet all(parse_all({"0.0.0.0/0", "::/0"}));
  all.remove(AddressSet(parse_all({"0.0.0.0/32", "255.255.255.255/32", "::/128"})));
  EXPECT_FALSE(all.contains(ip::make_address("0.0.0.0")));
  EXPECT_FALSE(all.contains(ip::make_address("255.255.255.255")));
  EXPECT_TRUE(all.contains(ip::make_address("255.255.255.254")));
  EXPECT_TRUE(all.contains(ip::make_address("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
  all.remove(AddressSet(parse_all({"0.0.0.0/0", "::/0"})));
  EXPECT_TRUE(all.empty());
}

}  // namespace
}  // namespace tetherd::firewall
