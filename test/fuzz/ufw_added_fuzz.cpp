// Fuzz target: `ufw show added` as the ufw backend reads it. Any text is
// parsed or refused, never a crash; what parses renders back to commands.
// The same text as ufw's settings file (/etc/default/ufw, IPV6=).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "firewall/ufw_rules.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto added = tetherd::firewall::parse_ufw_added(text, {4143, 4191, 6443});
  if (added) {
    for (const auto& r : added->ours)
      (void)tetherd::firewall::ufw_delete_args(r);
  }
  (void)tetherd::firewall::ufw_ipv6_enabled(text);
  return 0;
}
