#include "agent/config/small_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

namespace tetherd {
namespace {

std::string mode_text(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

}  // namespace

Result<void> refuse_shared_key(const std::string& path, std::string_view what) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0)
    return make_error("cannot stat " + path + ": " + std::strerror(errno));
  if ((st.st_mode & 077) != 0) {
    return make_error(path + " holds " + std::string(what) + " and has mode " +
                      mode_text(st.st_mode) +
                      ": it must not be readable by group or others (chmod 600 " + path + ")");
  }
  return {};
}

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
