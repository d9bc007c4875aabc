// Fuzz target: nftables' JSON listings as tetherd reads them back (its
// table, and the chains of other firewalls). Whatever
// comes out of the kernel's tool must be parsed or refused, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "firewall/coexistence.h"
#include "firewall/nft_ruleset.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto live = tetherd::firewall::parse_live_table(text);
  if (live) (void)tetherd::firewall::render_replace(live->allowlist);
  if (auto chains = tetherd::firewall::parse_blocking_chains(text)) {
    for (const auto& c : *chains)
      (void)tetherd::firewall::explain(c, {6443});
  }
  return 0;
}
