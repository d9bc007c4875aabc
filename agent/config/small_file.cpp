#include "agent/config/small_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace tetherd {

Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes,
                                    std::string_view subject) {
  const std::string who(subject);
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("cannot read " + who + ": " + std::strerror(errno));
  std::string text(max_bytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return make_error("cannot read " + who + ": I/O error");
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > max_bytes) {
    const std::string limit = max_bytes % (1 << 20) == 0 ? std::to_string(max_bytes >> 20) + " MiB"
                                                         : std::to_string(max_bytes >> 10) + " KiB";
    return make_error(who + " is larger than " + limit + "; is this the right file?");
  }
  return Result<std::string>(boost::system::in_place_value, std::move(text));
}

}  // namespace tetherd
