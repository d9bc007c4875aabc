#include "firewall/nft_ruleset.h"

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

Allowlist allowlist(const std::vector<std::string>& sources, std::vector<std::uint16_t> ports,
                    Verdict verdict = Verdict::kDrop) {
  Allowlist a;
  for (const auto& s : sources)
    a.sources.add(*parse_cidr(s));
  a.ports = std::move(ports);
  a.verdict = verdict;
  return a;
}

TEST(RenderReplace, Golden) {
  EXPECT_EQ(render_replace(allowlist({"127.0.0.0/8", "10.42.0.0/16", "10.43.0.0/16", "192.0.2.1",
                                      "::1", "2001:db8::/32"},
                                     {4143, 4191, 6443})),
            R"(add table inet tetherd
delete table inet tetherd
table inet tetherd {
	set allowed4 {
		type ipv4_addr
		flags interval
		elements = { 10.42.0.0/15, 127.0.0.0/8, 192.0.2.1 }
	}
	set allowed6 {
		type ipv6_addr
		flags interval
		elements = { ::1, 2001:db8::/32 }
	}
	set ports {
		type inet_service
		elements = { 4143, 4191, 6443 }
	}
	chain prerouting {
		type filter hook prerouting priority -110; policy accept;
		tcp dport @ports fib daddr type local ip saddr != @allowed4 counter drop
		tcp dport @ports fib daddr type local ip6 saddr != @allowed6 counter drop
	}
}
)");
}

TEST(RenderReplace, EmptySetsHaveNoElementsLineAndRejectUsesTcpReset) {
  const std::string s = render_replace(allowlist({}, {6443}, Verdict::kReject));
  EXPECT_EQ(s.find("elements = {  }"), std::string::npos);
  EXPECT_NE(s.find("\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n"), std::string::npos);
  EXPECT_NE(s.find("counter reject with tcp reset\n"), std::string::npos);
}

TEST(RenderUpdate, TouchesOnlyWhatChangesDeletesFirst) {
  const Allowlist from = allowlist({"192.0.2.2", "198.51.100.0/25", "2001:db8:a::2"}, {4143, 6443});
  const Allowlist to = allowlist({"192.0.2.2", "198.51.100.0/24", "2001:db8:b::2"}, {6443, 4191});
  EXPECT_EQ(render_update(from, to),
            "delete element inet tetherd allowed4 { 198.51.100.0/25 }\n"
            "delete element inet tetherd allowed6 { 2001:db8:a::2 }\n"
            "delete element inet tetherd ports { 4143 }\n"
            "add element inet tetherd allowed4 { 198.51.100.0/24 }\n"
            "add element inet tetherd allowed6 { 2001:db8:b::2 }\n"
            "add element inet tetherd ports { 4191 }\n");
}

TEST(RenderUpdate, NothingToDoIsEmpty) {
  const Allowlist a = allowlist({"192.0.2.2"}, {6443});
  EXPECT_EQ(render_update(a, a), "");
}

// Shaped like nft 1.0.6's `nft -j list table inet tetherd`.
constexpr const char* kListing = R"({"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "inet", "name": "tetherd", "handle": 3}},
 {"set": {"family": "inet", "name": "allowed4", "table": "tetherd", "type": "ipv4_addr", "handle": 2,
   "flags": ["interval"], "elem": [{"prefix": {"addr": "10.42.0.0", "len": 15}}, "192.0.2.1",
   {"range": ["198.51.100.10", "198.51.100.20"]}]}},
 {"set": {"family": "inet", "name": "allowed6", "table": "tetherd", "type": "ipv6_addr", "handle": 3,
   "flags": ["interval"], "elem": ["::1"]}},
 {"set": {"family": "inet", "name": "ports", "table": "tetherd", "type": "inet_service", "handle": 4,
   "elem": [6443, 4143]}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "prerouting", "handle": 1, "type": "filter",
   "hook": "prerouting", "prio": -110, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 5, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}},
   {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
   {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed4"}},
   {"counter": {"packets": 7, "bytes": 420}}, {"drop": null}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 6, "expr": [
   {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}},
   {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
   {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@allowed6"}},
   {"counter": {"packets": 2, "bytes": 160}}, {"drop": null}]}}
]})";

TEST(ParseLiveTable, ReadsSetsRulesAndCounters) {
  auto live = parse_live_table(kListing);
  ASSERT_TRUE(live.has_value()) << live.error().message;
  EXPECT_TRUE(live->rules_intact);
  EXPECT_EQ(live->dropped_packets, 9u);
  EXPECT_EQ(live->allowlist.ports, (std::vector<std::uint16_t>{4143, 6443}));
  EXPECT_EQ(live->allowlist.verdict, Verdict::kDrop);
  std::vector<std::string> got;
  for (const auto& c : live->allowlist.sources.cidrs())
    got.push_back(c.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"10.42.0.0/15", "192.0.2.1/32", "198.51.100.10/31",
                                           "198.51.100.12/30", "198.51.100.16/30",
                                           "198.51.100.20/32", "::1/128"}));
}

TEST(ParseLiveTable, AnExtraRuleMeansTampered) {
  std::string tampered = kListing;
  const std::string extra =
      R"( {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 9,
      "expr": [{"accept": null}]}},)";
  tampered.insert(tampered.find(R"( {"rule")"), extra);
  auto live = parse_live_table(tampered);
  ASSERT_TRUE(live.has_value());
  EXPECT_FALSE(live->rules_intact);
}

TEST(ParseLiveTable, AMovedChainMeansTampered) {
  std::string moved = kListing;
  moved.replace(moved.find("\"prio\": -110"), 12, "\"prio\": 0");
  EXPECT_FALSE(parse_live_table(moved).value().rules_intact);
}

TEST(ParseLiveTable, GarbageIsAnErrorNotACrash) {
  EXPECT_EQ(parse_live_table("{").error().message.substr(0, 30), "nftables listing is not JSON: ");
  EXPECT_EQ(parse_live_table("[]").error().message, "nftables listing is not a JSON object");
  EXPECT_EQ(parse_live_table("{}").error().message, "nftables listing has no \"nftables\" array");
  EXPECT_EQ(parse_live_table(R"({"nftables":[{"set":{"name":"allowed4","elem":[{"prefix":{}}]}}]})")
                .error()
                .message,
            "unexpected element in set allowed4");
  EXPECT_EQ(
      parse_live_table(R"({"nftables":[{"set":{"name":"ports","elem":[70000]}}]})").error().message,
      "unexpected element in set ports");
}

}  // namespace
}  // namespace tetherd::firewall
