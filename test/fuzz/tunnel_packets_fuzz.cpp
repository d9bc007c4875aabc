// The server's side of the tunnel: bytes of an HTTP/2 stream's DATA, cut
// into messages and decoded as packets. Whatever the server sends ends in a
// packet or a clear error, within the message limit.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "agent/tunnel/grpc_framing.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tetherd::tunnel;
  MessageReader reader(1 << 16);
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  // Fed in two pieces, cut where the first byte says: the prefix may
  // arrive split.
  const std::size_t cut = size == 0 ? 0 : data[0] % (size + 1);
  for (const auto piece : {all.substr(0, cut), all.substr(cut)}) {
    if (!reader.feed(piece)) break;
    while (reader.has_message()) {
      const std::string m = reader.next();
      if (m.size() > (1 << 16)) __builtin_trap();
      if (auto p = decode_packet(m); p) (void)packet_type_name(p->type());
    }
  }
  return 0;
}
