// Fuzz target: CIDRs. Whatever parses is normalised: printing and parsing it
// again gives the same network.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "firewall/cidr.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto c = tetherd::firewall::parse_cidr(text);
  if (c) {
    auto back = tetherd::firewall::parse_cidr(c->to_string());
    if (!back || *back != *c) std::abort();
  }
  return 0;
}
