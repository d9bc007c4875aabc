#pragma once
// A real AF_UNIX datagram socket standing where systemd's notify socket
// would be: the thing under test is told NOTIFY_SOCKET=<path> and its
// messages are read back here, each with a deadline (no sleeps).

#include <chrono>
#include <cstring>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace tetherd::test {

class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (fd_ < 0 || path_.size() >= sizeof addr.sun_path) throw std::runtime_error("socket");
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("bind " + path_ + ": " + std::strerror(errno));
    }
  }
  ~NotifySocket() {
    close(fd_);
    unlink(path_.c_str());
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }

  // The next datagram, or nullopt when none arrives before the deadline.
  std::optional<std::string> receive(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

  // Reads until a datagram containing `needle` arrives; everything read on
  // the way is appended to `seen`.
  std::optional<std::string> wait_for(const std::string& needle, std::chrono::milliseconds timeout,
                                      std::string* seen = nullptr) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      auto msg = receive(left);
      if (!msg) return std::nullopt;
      if (seen) *seen += *msg + "\n---\n";
      if (msg->find(needle) != std::string::npos) return msg;
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace tetherd::test
