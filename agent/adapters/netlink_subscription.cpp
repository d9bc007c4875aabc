#include "agent/adapters/netlink_subscription.h"

#include <cerrno>
#include <cstring>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tetherd {

Result<int> subscribe_netlink(int protocol, std::uint32_t groups, const std::string& what,
                              int rcvbuf) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0)
    return make_error("cannot open a netlink socket for " + what + ": " + std::strerror(errno));
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    return make_error("cannot subscribe to " + what + ": " + std::strerror(err));
  }
  return fd;
}

}  // namespace tetherd
