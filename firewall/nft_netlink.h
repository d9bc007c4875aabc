#pragma once
// The table's first apply as one netlink batch, built with libnftnl: the
// same table, sets, chains and rules that nft makes of render_replace's
// text (nft_ruleset.h), without libnftables' parser and evaluation, which
// cost a third of a 10 000-source apply. The batch is one transaction, as
// the text is: the old table, if any, is replaced with no moment between.
// Read back through `nft -j list` (parse_live_table), the result is
// indistinguishable from the text's: the tests check it rule by rule.

#include "agent/core/result.h"
#include "firewall/allowlist.h"

namespace tetherd::firewall {

// Replaces table inet tetherd with `allowlist`, in the calling thread's
// network namespace. Each reply is waited for at most 5 s.
Result<void> replace_table(const Allowlist& allowlist);

}  // namespace tetherd::firewall
