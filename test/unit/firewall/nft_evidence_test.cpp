// The evidence sets read back from nftables' listing (parse_live_table):
// what the kernel lists is taken, what tetherd cannot read is left out and
// costs nothing else (the evidence is not policy: the table is not judged
// tampered with for it).

#include <gtest/gtest.h>

#include "firewall/nft_ruleset.h"

namespace tetherd::firewall {
namespace {

namespace ip = boost::asio::ip;
using std::chrono::seconds;

// A listing of the evidence sets alone, as `nft -j list table` prints them.
constexpr const char* kListing = R"j({"nftables": [
  {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
  {"table": {"family": "inet", "name": "tetherd", "handle": 1}},
  {"set": {"family": "inet", "name": "refused4", "table": "tetherd",
    "type": ["ipv4_addr", "inet_service"], "handle": 8, "size": 2048, "flags": ["timeout"],
    "timeout": 600, "elem": [
      {"elem": {"val": {"concat": ["203.0.113.99", 4191]}, "expires": 10,
                "counter": {"packets": 40, "bytes": 2400}}},
      {"elem": {"val": {"concat": ["2001:db8::1", 4191]}, "expires": 10}},
      {"elem": {"val": {"concat": ["203.0.113.98", 70000]}, "expires": 10}},
      {"elem": {"val": {"concat": ["not an address", 6443]}}},
      {"elem": {"val": {"concat": ["203.0.113.97"]}}},
      {"elem": {"val": "203.0.113.96"}},
      "203.0.113.95",
      {"elem": {"val": {"concat": ["192.0.2.7", 6443]}, "expires": 9999,
                "counter": {"packets": 1, "bytes": 60}}},
      {"elem": {"val": {"concat": ["192.0.2.8", 6443]}, "counter": {"packets": 1, "bytes": 60}}},
      {"elem": {"val": {"concat": ["203.0.113.94", 4143]}, "expires": 5}}],
    "stmt": [{"counter": null}]}},
  {"set": {"family": "inet", "name": "accepted6", "table": "tetherd",
    "type": ["ipv6_addr", "inet_service"], "handle": 11, "size": 1024, "flags": ["timeout"],
    "timeout": 86400, "elem": [
      {"elem": {"val": {"concat": ["2001:db8:c::5", 4143]}, "expires": 86335,
                "counter": {"packets": 2, "bytes": 120}}}]}}
]})j";

TEST(NftEvidence, TheElementsAreReadWithTheirCountsAndAges) {
  auto live = parse_live_table(kListing);
  ASSERT_TRUE(live.has_value()) << live.error().message;
  // Without a counter: no packets counted. An expiry beyond the set's
  // timeout (192.0.2.7), or none: left out, not shown as "just now".
  EXPECT_EQ(live->evidence.refused,
            (std::vector<Sighting>{{ip::make_address("203.0.113.99"), 4191, 40, seconds(590)},
                                   {ip::make_address("203.0.113.94"), 4143, 0, seconds(595)}}));
  EXPECT_EQ(live->evidence.accepted,
            (std::vector<Sighting>{{ip::make_address("2001:db8:c::5"), 4143, 2, seconds(65)}}));
  EXPECT_FALSE(live->rules_intact) << "no chains listed";
  EXPECT_EQ(live->evidence.table, 1u) << "the table's handle: a new table has another";
}

TEST(NftEvidence, ATableWithoutAUsableHandleIsTableZero) {
  for (const char* table : {R"j({"family": "inet", "name": "tetherd"})j",
                            R"j({"family": "inet", "name": "tetherd", "handle": -3})j",
                            R"j({"family": "inet", "name": "tetherd", "handle": "7"})j"}) {
    auto live = parse_live_table(std::string(R"j({"nftables": [{"table": )j") + table + "}]}");
    ASSERT_TRUE(live.has_value()) << live.error().message;
    EXPECT_EQ(live->evidence.table, 0u) << table;
  }
}

TEST(NftEvidence, ASetOfAnotherShapeIsNoEvidenceAndNoError) {
  auto live = parse_live_table(R"j({"nftables": [{"set": {"family": "inet", "name": "refused6",
      "table": "tetherd", "type": "ipv6_addr", "elem": ["2001:db8::1", {"prefix":
      {"addr": "2001:db8::", "len": 64}}]}}]})j");
  ASSERT_TRUE(live.has_value()) << live.error().message;
  EXPECT_TRUE(live->evidence.refused.empty());
}

}  // namespace
}  // namespace tetherd::firewall
