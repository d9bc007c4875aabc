#include "agent/config/small_file.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

namespace tetherd {
namespace {

constexpr std::size_t kMaxTokenBytes = 64 << 10;

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
  std::string room(max_bytes + 1, '\0');
  in.read(room.data(), static_cast<std::streamsize>(room.size()));
  if (in.bad()) return make_error("cannot read " + who + ": I/O error");
  // A copy of what was read, not the room: a kubeconfig holds its PEM
  // files' text as long as it is in use, and each would keep the whole
  // limit's capacity (1 MiB) in the heap.
  std::string text(room, 0, static_cast<std::size_t>(in.gcount()));
  if (text.size() > max_bytes) {
    const std::string limit = max_bytes % (1 << 20) == 0 ? std::to_string(max_bytes >> 20) + " MiB"
                                                         : std::to_string(max_bytes >> 10) + " KiB";
    return make_error(who + " is larger than " + limit + "; is this the right file?");
  }
  return Result<std::string>(boost::system::in_place_value, std::move(text));
}

Result<void> check_bearer_token(std::string_view token, std::string_view subject) {
  if (token.empty()) return make_error(std::string(subject) + " is empty");
  if (token.size() > kMaxTokenBytes)
    return make_error(std::string(subject) + " is longer than 64 KiB; is this a token?");
  for (const char c : token) {
    if (c < '!' || c > '~')
      return make_error(std::string(subject) +
                        " holds a space, a line break or a byte that is not printable ASCII: "
                        "not a bearer token");
  }
  return {};
}

Result<std::string> read_token_file(const std::string& path) {
  if (auto r = refuse_shared_key(path, "a bearer token"); !r) return r.error();
  auto token = read_small_file(path, kMaxTokenBytes + 2, path);
  if (!token) return token.error();
  while (!token->empty() && std::isspace(static_cast<unsigned char>(token->back())))
    token->pop_back();
  if (auto r = check_bearer_token(*token, "the token in " + path); !r) return r.error();
  return token;
}

}  // namespace tetherd
