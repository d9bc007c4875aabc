#include "agent/adapters/state_dir.h"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace tetherd {
namespace {

using boost::system::error_code;

error_code last_error() {
  return error_code(errno, boost::system::system_category());
}

// Closes a descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

bool valid_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

}  // namespace

error_code StateDir::ensure() const {
  if (::mkdir(dir_.c_str(), 0700) == 0 || errno == EEXIST) {
    struct stat st {};
    if (::stat(dir_.c_str(), &st) != 0) return last_error();
    if (!S_ISDIR(st.st_mode)) return make_error_code(boost::system::errc::not_a_directory);
    return {};
  }
  return last_error();
}

error_code StateDir::replace(std::string_view name, std::string_view contents, mode_t mode) const {
  if (!valid_name(name)) return make_error_code(boost::system::errc::invalid_argument);
  const std::string target = dir_ + "/" + std::string(name);
  std::string temp = dir_ + "/." + std::string(name) + ".XXXXXX";
  Fd fd(::mkstemp(temp.data()));
  if (fd.get() < 0) return last_error();

  auto fail = [&](error_code ec) {
    ::unlink(temp.c_str());
    return ec;
  };
  if (::fchmod(fd.get(), mode) != 0) return fail(last_error());
  if (auto ec = write_all(fd.get(), contents)) return fail(ec);
  if (::fsync(fd.get()) != 0) return fail(last_error());
  if (::close(fd.release()) != 0) return fail(last_error());
  if (::rename(temp.c_str(), target.c_str()) != 0) return fail(last_error());

  Fd dir(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return last_error();
  if (::fsync(dir.get()) != 0) return last_error();
  return {};
}

std::optional<std::string> StateDir::read(std::string_view name, error_code& ec,
                                          std::size_t max_bytes) const {
  ec.clear();
  if (!valid_name(name)) {
    ec = make_error_code(boost::system::errc::invalid_argument);
    return std::nullopt;
  }
  const std::string target = dir_ + "/" + std::string(name);
  Fd fd(::open(target.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    ec = last_error();
    return std::nullopt;
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ec = last_error();
      return std::nullopt;
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_bytes) {
      ec = make_error_code(boost::system::errc::file_too_large);
      return std::nullopt;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace tetherd
