// A proxy's /metrics page, fed in two pieces split at the first byte.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/core/proxy_metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view page(reinterpret_cast<const char*>(data), size);
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  tetherd::ProxyMetricsScan scan;
  scan.feed(page.substr(0, cut));
  scan.feed(page.substr(cut));
  scan.finish();
  (void)scan.complete();
  return 0;
}
