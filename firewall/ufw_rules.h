#pragma once
// tetherd's rules in ufw: one `allow` rule per source network, for all the
// managed ports at once, tagged with the comment `tetherd`:
//
//   ufw allow proto tcp from 192.0.2.0/24 to any port 4143,4191,6443 comment tetherd
//
// With closed ports (Allowlist::closed_ports), the inner sources' rules name
// every managed port and the others' only the ports left open.
//
// ufw's own view of its rules is `ufw show added`, which lists each rule as
// the command that adds it; tetherd diffs that against what it wants. A rule
// of the same shape without the tag is the user's: never deleted, and, as
// ufw would merge a second one into it (and re-tag it), never added again.
// Pure: text in, rules and arguments out.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"
#include "firewall/allowlist.h"

namespace tetherd::firewall {

inline constexpr std::string_view kUfwComment = "tetherd";

struct UfwRule {
  Cidr source;
  std::vector<std::uint16_t> ports;  // sorted, unique
  friend auto operator<=>(const UfwRule&, const UfwRule&) = default;
};

struct UfwAdded {
  std::vector<UfwRule> ours;    // tagged `tetherd`
  std::vector<UfwRule> others;  // the same shape, the user's
  // Managed-port rules of the user's with no source: open to anyone.
  std::vector<std::string> open_to_anyone;  // as ufw lists them
};

// Parses `ufw show added`. Lines of other shapes are the user's business
// and skipped; an error means the text is not that listing at all.
Result<UfwAdded> parse_ufw_added(std::string_view text, const std::vector<std::uint16_t>& ports);

std::vector<UfwRule> ufw_rules_for(const Allowlist& allowlist);

// Whether ufw's settings file (/etc/default/ufw) turns IPv6 on, read as ufw
// reads it: KEY=value lines, case and double quotes ignored, on only for
// "yes"; absent, off, as ufw has it (its shipped file says yes).
bool ufw_ipv6_enabled(std::string_view defaults);
std::vector<std::string> ufw_add_args(const UfwRule& rule);
std::vector<std::string> ufw_delete_args(const UfwRule& rule);

}  // namespace tetherd::firewall
