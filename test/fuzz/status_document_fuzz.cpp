// Fuzz target: tetherd's answer on the local socket, as `tetherctl status`
// reads and draws it. Refused or read, never a crash; a document read is
// drawn, and what reaches the terminal carries no control character from
// the document: only newlines, and ESC only in our own colour codes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "agent/app/status_view.h"

namespace {

using namespace tetherd;

void check_plain(const std::string& text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\n') || u == 0x7f) std::abort();
  }
}

// Every ESC starts one of the four codes render_status writes.
void check_coloured(std::string text) {
  for (const std::string_view code : {"\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[0m"}) {
    for (auto at = text.find(code); at != std::string::npos; at = text.find(code))
      text.erase(at, code.size());
  }
  check_plain(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto document = parse_status_document(text);
  if (!document) {
    if (document.error().message.empty()) std::abort();
    return 0;
  }
  const int code = status_exit_code(*document);
  if (code != 0 && code != 1) std::abort();
  // Times far from the document's: ages and expiries at the ends of their range.
  for (const WallTime now : {WallTime{std::chrono::seconds(1795253405)}, WallTime{},
                             WallTime{std::chrono::hours(24 * 365 * 290)}}) {
    check_plain(render_status(*document, now, false));
    check_coloured(render_status(*document, now, true));
  }
  return 0;
}
