// The listing is what `nft -j list chains` printed (nftables 1.0.6) for an
// active ufw (iptables-nft), a firewalld-like inet table and tetherd's own.

#include "firewall/coexistence.h"

#include <gtest/gtest.h>

namespace tetherd::firewall {
namespace {

const char* kListing = R"({"nftables": [
 {"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
 {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
 {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
 {"chain": {"family": "ip", "table": "filter", "name": "OUTPUT", "handle": 3, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}},
 {"chain": {"family": "ip", "table": "filter", "name": "ufw-user-input", "handle": 4}},
 {"chain": {"family": "inet", "table": "fw", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
 {"chain": {"family": "inet", "table": "fw", "name": "fwd", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
 {"chain": {"family": "inet", "table": "tetherd", "name": "prerouting", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -110, "policy": "drop"}},
 {"chain": {"family": "arp", "table": "a", "name": "in", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
 {"chain": {"family": "netdev", "table": "n", "name": "ing", "handle": 1, "type": "filter", "hook": "ingress", "prio": 0, "policy": "drop"}},
 {"table": {"family": "ip", "name": "filter", "handle": 1}}
]})";

TEST(BlockingChains, FindsDefaultDropChainsOnTheManagedPortsPath) {
  auto found = parse_blocking_chains(kListing);
  ASSERT_TRUE(found.has_value()) << found.error().message;
  const std::vector<BlockingChain> want = {
      {"ip", "filter", "INPUT", "input", true},
      {"ip", "filter", "FORWARD", "forward", true},
      {"inet", "fw", "in", "input", false},
      {"netdev", "n", "ing", "ingress", false},
  };
  EXPECT_EQ(*found, want) << "not output, not accept, not arp, never tetherd's own";
}

TEST(BlockingChains, NothingWhenNothingDrops) {
  auto found = parse_blocking_chains(R"({"nftables": [{"metainfo": {}}]})");
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->empty());
}

TEST(BlockingChains, NotAListingIsAnError) {
  EXPECT_FALSE(parse_blocking_chains("").has_value());
  EXPECT_FALSE(parse_blocking_chains("[]").has_value());
  EXPECT_EQ(parse_blocking_chains(R"({"x": 1})").error().message,
            "nftables listing has no \"nftables\" array");
  // Odd members are skipped, not trusted.
  auto odd = parse_blocking_chains(R"({"nftables": [1, {"chain": 2}, {"chain": {"policy": 3}}]})");
  ASSERT_TRUE(odd.has_value());
  EXPECT_TRUE(odd->empty());
}

TEST(BlockingChains, ExplainsPlainly) {
  EXPECT_EQ(explain({"ip", "filter", "INPUT", "input", true}, {6443, 4143}),
            "ufw is active (table ip filter, chain INPUT (hook input, policy drop)): the cloud "
            "will be blocked on TCP 6443, 4143 unless ufw allows its sources; tetherd cannot open "
            "what ufw closes. Use firewall.backend: ufw, or allow the sources in ufw yourself");
  EXPECT_EQ(explain({"inet", "fw", "fwd", "forward", false}, {4143}),
            "table inet fw, chain fwd (hook forward, policy drop) drops by default: the cloud will "
            "be blocked on ports published through DNAT (NodePort, servicelb, hostPort) among TCP "
            "4143 unless that table accepts it; tetherd cannot open what another table closes");
}

}  // namespace
}  // namespace tetherd::firewall
