// Fuzz target: nftables netlink notifications as the monitor reads them.
// Whatever arrives on the socket is scanned or treated as a change, never a
// crash. The input is split into datagrams at its first byte's value, so one
// run also exercises state carried across datagrams.
#include <cstddef>
#include <cstdint>
#include <span>

#include "firewall/nft_events.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  tetherd::firewall::NftEventScanner scanner(1234);
  (void)scanner.feed(bytes.first(split > bytes.size() ? bytes.size() : split));
  (void)scanner.feed(bytes.subspan(split > bytes.size() ? bytes.size() : split));
  return 0;
}
