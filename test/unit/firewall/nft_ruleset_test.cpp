#include "firewall/nft_ruleset.h"

#include <boost/json.hpp>
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
  Allowlist a = allowlist(
      {"127.0.0.0/8", "10.42.0.0/16", "10.43.0.0/16", "192.0.2.1", "::1", "2001:db8::/32"},
      {4143, 4191, 6443});
  a.cluster.add(*parse_cidr("10.42.0.0/16"));
  a.cluster.add(*parse_cidr("2001:db8:42::/56"));
  a.closed_ports = {6443};
  a.inner = AddressSet({*parse_cidr("127.0.0.0/8"), *parse_cidr("10.42.0.0/16"),
                        *parse_cidr("10.43.0.0/16"), *parse_cidr("::1/128")});
  EXPECT_EQ(render_replace(a),
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
	set cluster4 {
		type ipv4_addr
		flags interval
		elements = { 10.42.0.0/16 }
	}
	set cluster6 {
		type ipv6_addr
		flags interval
		elements = { 2001:db8:42::/56 }
	}
	set cloud4 {
		type ipv4_addr
		flags interval
	}
	set cloud6 {
		type ipv6_addr
		flags interval
	}
	set closed {
		type inet_service
		elements = { 6443 }
	}
	set inner4 {
		type ipv4_addr
		flags interval
		elements = { 10.42.0.0/15, 127.0.0.0/8 }
	}
	set inner6 {
		type ipv6_addr
		flags interval
		elements = { ::1 }
	}
	set refused4 {
		type ipv4_addr . inet_service
		size 2048
		flags dynamic,timeout
		timeout 600s
		counter
	}
	set refused6 {
		type ipv6_addr . inet_service
		size 2048
		flags dynamic,timeout
		timeout 600s
		counter
	}
	set accepted4 {
		type ipv4_addr . inet_service
		size 1024
		flags dynamic,timeout
		timeout 86400s
		counter
	}
	set accepted6 {
		type ipv6_addr . inet_service
		size 1024
		flags dynamic,timeout
		timeout 86400s
		counter
	}
	chain refuse4 {
		ct state new add @refused4 { ip saddr . tcp dport }
		drop
	}
	chain refuse6 {
		ct state new add @refused6 { ip6 saddr . tcp dport }
		drop
	}
	chain prerouting {
		type filter hook prerouting priority -110; policy accept;
		tcp dport @ports fib daddr type local ip saddr != @allowed4 counter jump refuse4
		tcp dport @ports fib daddr type local ip6 saddr != @allowed6 counter jump refuse6
		tcp dport @closed fib daddr type local ip saddr != @inner4 counter jump refuse4
		tcp dport @closed fib daddr type local ip6 saddr != @inner6 counter jump refuse6
	}
	chain input {
		type filter hook input priority -10; policy accept;
		tcp dport @ports ip saddr != @allowed4 counter jump refuse4
		tcp dport @ports ip6 saddr != @allowed6 counter jump refuse6
		tcp dport @closed ip saddr != @inner4 counter jump refuse4
		tcp dport @closed ip6 saddr != @inner6 counter jump refuse6
		tcp dport @ports ct state new ip saddr @cloud4 update @accepted4 { ip saddr . tcp dport }
		tcp dport @ports ct state new ip6 saddr @cloud6 update @accepted6 { ip6 saddr . tcp dport }
	}
	chain forward {
		type filter hook forward priority -10; policy accept;
		tcp dport @ports ip daddr @cluster4 ip saddr != @allowed4 counter jump refuse4
		tcp dport @ports ip6 daddr @cluster6 ip6 saddr != @allowed6 counter jump refuse6
		tcp dport @closed ip daddr @cluster4 ip saddr != @inner4 counter jump refuse4
		tcp dport @closed ip6 daddr @cluster6 ip6 saddr != @inner6 counter jump refuse6
		tcp dport @ports ip daddr @cluster4 ct state new ip saddr @cloud4 update @accepted4 { ip saddr . tcp dport }
		tcp dport @ports ip6 daddr @cluster6 ct state new ip6 saddr @cloud6 update @accepted6 { ip6 saddr . tcp dport }
	}
}
)");
}

TEST(RenderReplace, EmptySetsHaveNoElementsLineAndRejectUsesTcpReset) {
  const std::string s = render_replace(allowlist({}, {6443}, Verdict::kReject));
  EXPECT_EQ(s.find("elements = {  }"), std::string::npos);
  EXPECT_NE(s.find("\t\ttype ipv4_addr\n\t\tflags interval\n\t}\n"), std::string::npos);
  EXPECT_NE(s.find("counter jump refuse4\n"), std::string::npos);
  EXPECT_NE(s.find("\t\treject with tcp reset\n"), std::string::npos);
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

TEST(RenderUpdate, TheClusterNetworksToo) {
  Allowlist from = allowlist({"192.0.2.2"}, {6443});
  from.cluster.add(*parse_cidr("10.42.0.0/16"));
  Allowlist to = from;
  to.cluster = AddressSet({*parse_cidr("203.0.113.0/24"), *parse_cidr("2001:db8:c::/64")});
  EXPECT_EQ(render_update(from, to),
            "delete element inet tetherd cluster4 { 10.42.0.0/16 }\n"
            "add element inet tetherd cluster4 { 203.0.113.0/24 }\n"
            "add element inet tetherd cluster6 { 2001:db8:c::/64 }\n");
}

// Closing and opening a port is an update of the `closed` set alone.
TEST(RenderUpdate, ClosingAPortTouchesTheClosedSetOnly) {
  Allowlist open = allowlist({"127.0.0.0/8", "192.0.2.2"}, {4143, 6443});
  open.inner.add(*parse_cidr("127.0.0.0/8"));
  Allowlist closed = open;
  closed.closed_ports = {6443};
  EXPECT_EQ(render_update(open, closed), "add element inet tetherd closed { 6443 }\n");
  EXPECT_EQ(render_update(closed, open), "delete element inet tetherd closed { 6443 }\n");
  Allowlist more = closed;
  more.inner.add(*parse_cidr("10.42.0.0/16"));
  EXPECT_EQ(render_update(closed, more), "add element inet tetherd inner4 { 10.42.0.0/16 }\n");
}

TEST(RenderUpdate, NothingToDoIsEmpty) {
  const Allowlist a = allowlist({"192.0.2.2"}, {6443});
  EXPECT_EQ(render_update(a, a), "");
}

// `nft -j list table inet tetherd` from nft 1.0.6 on Linux 6.18, one item a
// line (counters set by hand: 7 + 2 in prerouting, 5 on a closed port in
// input, 3 in forward).
constexpr const char* kListing = R"({"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"table": {"family": "inet", "name": "tetherd", "handle": 1}},
 {"set": {"family": "inet", "name": "allowed4", "table": "tetherd", "type": "ipv4_addr", "handle": 6, "flags": ["interval"], "elem": [{"prefix": {"addr": "10.42.0.0", "len": 15}}, "192.0.2.1", {"range": ["198.51.100.10", "198.51.100.20"]}]}},
 {"set": {"family": "inet", "name": "allowed6", "table": "tetherd", "type": "ipv6_addr", "handle": 7, "flags": ["interval"], "elem": ["::1"]}},
 {"set": {"family": "inet", "name": "ports", "table": "tetherd", "type": "inet_service", "handle": 8, "elem": [4143, 6443]}},
 {"set": {"family": "inet", "name": "cluster4", "table": "tetherd", "type": "ipv4_addr", "handle": 9, "flags": ["interval"], "elem": [{"prefix": {"addr": "10.42.0.0", "len": 15}}]}},
 {"set": {"family": "inet", "name": "cluster6", "table": "tetherd", "type": "ipv6_addr", "handle": 10, "flags": ["interval"], "elem": [{"prefix": {"addr": "2001:db8:c::", "len": 64}}]}},
 {"set": {"family": "inet", "name": "cloud4", "table": "tetherd", "type": "ipv4_addr", "handle": 11, "flags": ["interval"], "elem": [{"range": ["198.51.100.10", "198.51.100.20"]}]}},
 {"set": {"family": "inet", "name": "cloud6", "table": "tetherd", "type": "ipv6_addr", "handle": 12, "flags": ["interval"]}},
 {"set": {"family": "inet", "name": "closed", "table": "tetherd", "type": "inet_service", "handle": 13, "elem": [6443]}},
 {"set": {"family": "inet", "name": "inner4", "table": "tetherd", "type": "ipv4_addr", "handle": 14, "flags": ["interval"], "elem": [{"prefix": {"addr": "10.42.0.0", "len": 15}}, "192.0.2.1"]}},
 {"set": {"family": "inet", "name": "inner6", "table": "tetherd", "type": "ipv6_addr", "handle": 15, "flags": ["interval"], "elem": ["::1"]}},
 {"set": {"family": "inet", "name": "refused4", "table": "tetherd", "type": ["ipv4_addr", "inet_service"], "handle": 16, "size": 2048, "flags": ["timeout"], "timeout": 600, "stmt": [{"counter": null}]}},
 {"set": {"family": "inet", "name": "refused6", "table": "tetherd", "type": ["ipv6_addr", "inet_service"], "handle": 17, "size": 2048, "flags": ["timeout"], "timeout": 600, "stmt": [{"counter": null}]}},
 {"set": {"family": "inet", "name": "accepted4", "table": "tetherd", "type": ["ipv4_addr", "inet_service"], "handle": 18, "size": 1024, "flags": ["timeout"], "timeout": 86400, "stmt": [{"counter": null}]}},
 {"set": {"family": "inet", "name": "accepted6", "table": "tetherd", "type": ["ipv6_addr", "inet_service"], "handle": 19, "size": 1024, "flags": ["timeout"], "timeout": 86400, "stmt": [{"counter": null}]}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "refuse4", "handle": 1}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "refuse6", "handle": 2}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "prerouting", "handle": 3, "type": "filter", "hook": "prerouting", "prio": -110, "policy": "accept"}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "input", "handle": 4, "type": "filter", "hook": "input", "prio": -10, "policy": "accept"}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "forward", "handle": 5, "type": "filter", "hook": "forward", "prio": -10, "policy": "accept"}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "refuse4", "handle": 20, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"set": {"op": "add", "elem": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "set": "@refused4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "refuse4", "handle": 21, "expr": [{"drop": null}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "refuse6", "handle": 22, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"set": {"op": "add", "elem": {"concat": [{"payload": {"protocol": "ip6", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "set": "@refused6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "refuse6", "handle": 23, "expr": [{"drop": null}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 24, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed4"}}, {"counter": {"packets": 7, "bytes": 420}}, {"jump": {"target": "refuse4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 25, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@allowed6"}}, {"counter": {"packets": 2, "bytes": 160}}, {"jump": {"target": "refuse6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 26, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@closed"}}, {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@inner4"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 27, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@closed"}}, {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@inner6"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "input", "handle": 28, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed4"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "input", "handle": 29, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@allowed6"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "input", "handle": 30, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@closed"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@inner4"}}, {"counter": {"packets": 5, "bytes": 300}}, {"jump": {"target": "refuse4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "input", "handle": 31, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@closed"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@inner6"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "input", "handle": 32, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@cloud4"}}, {"set": {"op": "update", "elem": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "set": "@accepted4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "input", "handle": 33, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@cloud6"}}, {"set": {"op": "update", "elem": {"concat": [{"payload": {"protocol": "ip6", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "set": "@accepted6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "forward", "handle": 34, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@cluster4"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed4"}}, {"counter": {"packets": 3, "bytes": 180}}, {"jump": {"target": "refuse4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "forward", "handle": 35, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "@cluster6"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@allowed6"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "forward", "handle": 36, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@closed"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@cluster4"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@inner4"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "forward", "handle": 37, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@closed"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "@cluster6"}}, {"match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@inner6"}}, {"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "refuse6"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "forward", "handle": 38, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": "@cluster4"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@cloud4"}}, {"set": {"op": "update", "elem": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "set": "@accepted4"}}]}},
 {"rule": {"family": "inet", "table": "tetherd", "chain": "forward", "handle": 39, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": "@ports"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "@cluster6"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@cloud6"}}, {"set": {"op": "update", "elem": {"concat": [{"payload": {"protocol": "ip6", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "set": "@accepted6"}}]}}
]})";

TEST(ParseLiveTable, ReadsSetsRulesAndCounters) {
  auto live = parse_live_table(kListing);
  ASSERT_TRUE(live.has_value()) << live.error().message;
  EXPECT_TRUE(live->rules_intact);
  EXPECT_EQ(live->dropped_packets, 17u);
  EXPECT_EQ(live->allowlist.ports, (std::vector<std::uint16_t>{4143, 6443}));
  EXPECT_EQ(live->allowlist.closed_ports, (std::vector<std::uint16_t>{6443}));
  EXPECT_EQ(live->allowlist.inner,
            AddressSet({*parse_cidr("10.42.0.0/15"), *parse_cidr("192.0.2.1/32"),
                        *parse_cidr("::1/128")}));
  EXPECT_EQ(live->allowlist.verdict, Verdict::kDrop);
  std::vector<std::string> got;
  for (const auto& c : live->allowlist.sources.cidrs())
    got.push_back(c.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"10.42.0.0/15", "192.0.2.1/32", "198.51.100.10/31",
                                           "198.51.100.12/30", "198.51.100.16/30",
                                           "198.51.100.20/32", "::1/128"}));
  got.clear();
  for (const auto& c : live->allowlist.cluster.cidrs())
    got.push_back(c.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"10.42.0.0/15", "2001:db8:c::/64"}));
  got.clear();
  for (const auto& c : live->allowlist.cloud.cidrs())
    got.push_back(c.to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"198.51.100.10/31", "198.51.100.12/30",
                                           "198.51.100.16/30", "198.51.100.20/32"}));
}

// The whole rule is compared: each of these edits leaves a rule that still
// names @ports and @allowed4 and ends in drop, but filters less (or not at all).
TEST(ParseLiveTable, AnyEditToARuleIsTampering) {
  struct Edit {
    const char* what;
    std::string from, to;
  };
  const std::string saddr4 =
      R"({"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed4"}})";
  const std::vector<Edit> edits = {
      {"!= turned into ==", saddr4,
       R"({"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@allowed4"}})"},
      {"fib daddr type local taken out",
       R"({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}, )",
       ""},
      {"a match added", saddr4,
       saddr4 +
           R"(, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "sport"}}, "right": 1}})"},
      {"daddr @cluster4 turned into @allowed4", R"("right": "@cluster4")",
       R"("right": "@allowed4")"},
      {"drop turned into accept", R"({"drop": null})", R"({"accept": null})"},
      {"a chain's policy turned to drop", R"("policy": "accept")", R"("policy": "drop")"},
      // The refuse chains: a jump that could come back, or go elsewhere.
      {"refuse6's verdict turned into return", R"("handle": 23, "expr": [{"drop": null}])",
       R"("handle": 23, "expr": [{"return": null}])"},
      {"refuse4 made a base chain", R"("name": "refuse4", "handle": 1})",
       R"("name": "refuse4", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"})"},
      {"jump turned into goto", R"({"jump": {"target": "refuse4"}})",
       R"({"goto": {"target": "refuse4"}})"},
      {"an IPv4 rule jumping to refuse6", R"({"jump": {"target": "refuse4"}})",
       R"({"jump": {"target": "refuse6"}})"},
      {"the record taken out of refuse4", R"({"set": {"op": "add")", R"({"set": {"op": "update")"},
      {"a closed port's inner sources turned into the allowed", R"("right": "@inner4")",
       R"("right": "@allowed4")"},
      {"a closed port's rule turned to the managed ports", R"("right": "@closed")",
       R"("right": "@ports")"},
      {"accepted4's update rule emptied", R"("set": "@accepted4"}})", R"("set": "@accepted6"}})"},
  };
  ASSERT_TRUE(parse_live_table(kListing).value().rules_intact);
  for (const Edit& e : edits) {
    std::string edited = kListing;
    const auto at = edited.find(e.from);
    ASSERT_NE(at, std::string::npos) << e.what;
    edited.replace(at, e.from.size(), e.to);
    const auto live = parse_live_table(edited);
    ASSERT_TRUE(live.has_value()) << e.what << ": " << live.error().message;
    EXPECT_FALSE(live->rules_intact) << e.what;
  }
}

TEST(ParseLiveTable, AMissingChainIsTampering) {
  // The forward chain and its rules gone: the paths to pods are open.
  boost::json::value listing = boost::json::parse(kListing);
  auto& items = listing.at("nftables").as_array();
  const auto forward = [](const boost::json::value& item) {
    const auto& o = item.as_object();
    return (o.contains("chain") && o.at("chain").at("name") == "forward") ||
           (o.contains("rule") && o.at("rule").at("chain") == "forward");
  };
  items.erase(std::remove_if(items.begin(), items.end(), forward), items.end());
  const auto live = parse_live_table(boost::json::serialize(listing));
  ASSERT_TRUE(live.has_value()) << live.error().message;
  EXPECT_FALSE(live->rules_intact);
}

TEST(ParseLiveTable, ReadsTheRejectVerdict) {
  // As nft lists a reject in refuseN: with the protocol it depends on.
  const std::string drop = R"({"drop": null})";
  const std::string reject_tcp =
      R"({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}, )"
      R"({"reject": {"type": "tcp reset"}})";
  std::string reject = kListing;
  for (std::size_t at; (at = reject.find(drop)) != std::string::npos;)
    reject.replace(at, drop.size(), reject_tcp);
  const auto live = parse_live_table(reject);
  ASSERT_TRUE(live.has_value());
  EXPECT_TRUE(live->rules_intact);
  EXPECT_EQ(live->allowlist.verdict, Verdict::kReject);
  // One refuse chain left at drop: two verdicts in one table is not ours.
  reject.replace(reject.find(reject_tcp), reject_tcp.size(), drop);
  EXPECT_FALSE(parse_live_table(reject).value().rules_intact);
}

TEST(ParseLiveTable, AnExtraRuleMeansTampered) {
  std::string tampered = kListing;
  const std::string extra =
      R"( {"rule": {"family": "inet", "table": "tetherd", "chain": "prerouting", "handle": 99,
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
