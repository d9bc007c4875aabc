// Fuzz target: the persisted desired state, read at boot from the state
// directory. A corrupt file must be refused, never crash; what decodes must
// encode and decode to the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "firewall/desired_state.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tetherd::firewall;
  auto d = decode_desired(std::string_view(reinterpret_cast<const char*>(data), size));
  if (d) {
    auto again = decode_desired(encode_desired(*d));
    if (!again || again->sources != d->sources || again->ports != d->ports) std::abort();
  }
  return 0;
}
