// Fuzz target: kubeconfig text. Parsed or refused with a message, never a
// crash. Named files resolve under a directory that does not exist.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/config/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)tetherd::parse_kubeconfig(text, "/nonexistent/tetherd-fuzz/kubeconfig");
  return 0;
}
