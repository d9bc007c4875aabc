// Fuzz target: kube-public/cluster-info as an unauthenticated, unverified
// server sends it, through the CA extraction. Refused or read, never a
// crash, and never more than was sent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "agent/config/cluster_info.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto ca = tetherd::cluster_info_ca(text);
  if (ca && ca->size() > size) std::abort();
  return 0;
}
