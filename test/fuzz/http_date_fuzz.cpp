// Fuzz target: HTTP's Date header (the control plane's clock, heard by the
// session). Whatever parses is a date of 29 characters that RFC 3339 says
// back as the same instant.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/core/kube_time.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = tetherd::parse_http_date(text);
  if (t) {
    if (text.size() != 29) std::abort();
    auto back = tetherd::parse_kube_time(tetherd::format_kube_time(*t));
    if (!back || *back != *t) std::abort();
  }
  return 0;
}
