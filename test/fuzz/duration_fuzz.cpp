// Fuzz target: Go-syntax durations. Whatever parses must format and parse
// back to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/core/duration.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto d = tetherd::parse_duration(text);
  if (d) {
    auto back = tetherd::parse_duration(tetherd::format_duration(*d));
    if (!back || *back != *d) std::abort();
  }
  return 0;
}
