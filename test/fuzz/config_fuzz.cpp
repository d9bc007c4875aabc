// Fuzz target: arbitrary bytes as tetherd.yaml. The loader must return a
// Config or errors, never crash, hang or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/config/config_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto result = tetherd::parse_config(text, tetherd::LoadOptions{"fuzz-node"});
  if (auto* errors = std::get_if<tetherd::ConfigErrors>(&result)) {
    for (const auto& e : *errors)
      (void)e.format("fuzz.yaml");
  }
  return 0;
}
