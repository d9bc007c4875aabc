// Fuzz target: nftables' JSON listing as tetherd reads it back. Whatever
// comes out of the kernel's tool must be parsed or refused, never crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "firewall/nft_ruleset.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto live = tetherd::firewall::parse_live_table(text);
  if (live) (void)tetherd::firewall::render_replace(live->allowlist);
  return 0;
}
