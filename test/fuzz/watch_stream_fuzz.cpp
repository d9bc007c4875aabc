// Fuzz target: a watch stream from the network, fed to the decoder in
// pieces whose sizes come from the input too, so events split anywhere.
// Decoded or refused, never a crash, and never more events than the
// stream could hold.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "agent/kube/watch_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t piece = 1 + data[0] % 64;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  tetherd::kube::WatchDecoder decoder(4096);
  std::vector<tetherd::kube::WatchEvent> events;
  for (std::size_t i = 0; i < stream.size(); i += piece) {
    if (!decoder.feed(stream.substr(i, piece), events)) break;
  }
  (void)decoder.finish();
  // The smallest event, {"type":"ADDED","object":{"metadata":{"resourceVersion":""}}}, is
  // far more than 8 bytes: a decoder that makes events from nothing is broken.
  if (events.size() > stream.size() / 8 + 1) std::abort();
  for (const auto& e : events)
    (void)e.resource_version();
  return 0;
}
