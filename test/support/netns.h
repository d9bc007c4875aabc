#pragma once
// Network namespaces for real-kernel tests: a node and two peers joined by
// veth pairs, with documentation addresses:
//
//   peer "a"  192.0.2.2    2001:db8:a::2  <-veth->  node 192.0.2.1    2001:db8:a::1
//   peer "b"  198.51.100.2 2001:db8:b::2  <-veth->  node 198.51.100.1 2001:db8:b::1
//
// Sockets are made inside a namespace by switching the calling thread into
// it for the socket() call only; the socket stays in that namespace.

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdexcept>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace tetherd::test {

inline void sh(const std::string& command) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("command failed: " + command);
  }
}

// Switches this thread into a namespace until destroyed.
class InNetns {
 public:
  // `name` is a namespace made by `ip netns add`, or a path such as
  // /proc/PID/ns/net.
  explicit InNetns(const std::string& name)
      : saved_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    const std::string path = name.starts_with("/") ? name : "/run/netns/" + name;
    const int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (saved_ < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
      throw std::runtime_error("cannot enter network namespace " + name);
    }
    close(target);
  }
  ~InNetns() {
    setns(saved_, CLONE_NEWNET);
    close(saved_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int saved_;
};

enum class Outcome { kConnected, kRefused, kTimedOut, kError };

inline const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::kConnected:
      return "connected";
    case Outcome::kRefused:
      return "refused";
    case Outcome::kTimedOut:
      return "timed out";
    case Outcome::kError:
      return "error";
  }
  return "?";
}

inline sockaddr_storage to_sockaddr(const boost::asio::ip::address& a, std::uint16_t port,
                                    socklen_t& len) {
  sockaddr_storage ss{};
  if (a.is_v4()) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    const auto b = a.to_v4().to_bytes();
    std::memcpy(&s->sin_addr, b.data(), b.size());
    len = sizeof(sockaddr_in);
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    s->sin6_port = htons(port);
    const auto b = a.to_v6().to_bytes();
    std::memcpy(&s->sin6_addr, b.data(), b.size());
    len = sizeof(sockaddr_in6);
  }
  return ss;
}

// A TCP connect from the calling thread's network namespace (enter one with
// InNetns first). A dropped SYN shows as kTimedOut.
inline Outcome tcp_connect(const boost::asio::ip::address& to, std::uint16_t port,
                           std::chrono::milliseconds timeout) {
  const int fd =
      socket(to.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Outcome::kError;
  socklen_t len = 0;
  const sockaddr_storage addr = to_sockaddr(to, port, len);
  Outcome out = Outcome::kError;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) {
    out = Outcome::kConnected;
  } else if (errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      int err = 0;
      socklen_t elen = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
      out = err == 0              ? Outcome::kConnected
            : err == ECONNREFUSED ? Outcome::kRefused
                                  : Outcome::kError;
    } else {
      out = Outcome::kTimedOut;
    }
  } else if (errno == ECONNREFUSED) {
    out = Outcome::kRefused;
  }
  // Close with a reset: no TIME_WAIT, so a probe connecting in a loop for a
  // minute does not run out of ephemeral ports (which would look like a
  // refusal).
  const linger abort_on_close{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
  close(fd);
  return out;
}

// Two peers and a node, created fresh and removed with everything in them.
class Topology {
 public:
  Topology() : prefix_("td" + std::to_string(getpid() % 100000)) {
    node = prefix_ + "n";
    a = prefix_ + "a";
    b = prefix_ + "b";
    for (const auto& ns : {node, a, b}) {
      sh("ip netns del " + ns + " 2>/dev/null; true");
      sh("ip netns add " + ns);
      sh("ip -n " + ns + " link set lo up");
    }
    link(a, "192.0.2", "2001:db8:a::");
    link(b, "198.51.100", "2001:db8:b::");
  }
  ~Topology() {
    for (int fd : listeners_)
      close(fd);
    for (const auto& ns : {node, a, b})
      std::system(("ip netns del " + ns + " 2>/dev/null").c_str());
    for (const auto& ns : pods_)
      std::system(("ip netns del " + ns + " 2>/dev/null").c_str());
  }
  Topology(const Topology&) = delete;
  Topology& operator=(const Topology&) = delete;

  // A host behind the node, as a pod is: its own namespace (returned), a veth
  // to the node with `node4`/`node6` (CIDR notation) on the node's side and
  // `pod4`/`pod6` on its own, and its default routes through the node, which
  // now forwards.
  std::string add_pod(const std::string& name, const std::string& node4, const std::string& pod4,
                      const std::string& node6, const std::string& pod6) {
    const std::string ns = prefix_ + name;
    sh("ip netns del " + ns + " 2>/dev/null; true");
    sh("ip netns add " + ns);
    pods_.push_back(ns);
    sh("ip -n " + ns + " link set lo up");
    sh("ip link add " + name + " netns " + node + " type veth peer name eth0 netns " + ns);
    sh("ip -n " + node + " addr add " + node4 + " dev " + name);
    sh("ip -n " + node + " addr add " + node6 + " dev " + name + " nodad");
    sh("ip -n " + ns + " addr add " + pod4 + " dev eth0");
    sh("ip -n " + ns + " addr add " + pod6 + " dev eth0 nodad");
    sh("ip -n " + node + " link set " + name + " up");
    sh("ip -n " + ns + " link set eth0 up");
    // Until the kernel's link watch has seen the carrier (up to a second),
    // the veth has no queue and drops what it is given: the first SYN would
    // be lost and retried a second later.
    wait_until_up(node, name);
    wait_until_up(ns, "eth0");
    sh("ip -n " + ns + " route add default via " + node4.substr(0, node4.find('/')));
    sh("ip -n " + ns + " -6 route add default via " + node6.substr(0, node6.find('/')));
    sh("ip netns exec " + node +
       " sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    return ns;
  }

  // Routes `cidr` from `peer` through the node (`via`: the node's address on
  // the peer's link), as a LAN host with a route to the cluster would.
  void route_through_node(const std::string& peer, const std::string& cidr,
                          const std::string& via) {
    sh("ip -n " + peer + " route add " + cidr + " via " + via);
  }

  // Listens in `ns` (default: the node) on every address, both families.
  void listen_on(const std::vector<std::uint16_t>& ports, const std::string& ns = "") {
    InNetns in(ns.empty() ? node : ns);
    for (std::uint16_t port : ports) {
      for (int family : {AF_INET, AF_INET6}) {
        const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        const int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        socklen_t len = 0;
        const auto any = family == AF_INET
                             ? boost::asio::ip::address(boost::asio::ip::address_v4::any())
                             : boost::asio::ip::address(boost::asio::ip::address_v6::any());
        const sockaddr_storage addr = to_sockaddr(any, port, len);
        if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0 || listen(fd, 4096) != 0) {
          throw std::runtime_error("cannot listen on port " + std::to_string(port));
        }
        listeners_.push_back(fd);
      }
    }
  }

  // Accepts and closes whatever connections are queued, so backlogs never fill.
  void drain() {
    for (int fd : listeners_) {
      for (int c; (c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;)
        close(c);
    }
  }

  Outcome connect_from(const std::string& ns, const std::string& to, std::uint16_t port,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) {
    Outcome o;
    {
      InNetns in(ns);
      o = tcp_connect(boost::asio::ip::make_address(to), port, timeout);
    }
    drain();
    return o;
  }

  std::string node, a, b;

 private:
  void link(const std::string& peer, const std::string& v4, const std::string& v6) {
    const std::string node_if = "to" + peer.substr(peer.size() - 1);
    sh("ip link add " + node_if + " netns " + node + " type veth peer name eth0 netns " + peer);
    sh("ip -n " + node + " addr add " + v4 + ".1/24 dev " + node_if);
    sh("ip -n " + peer + " addr add " + v4 + ".2/24 dev eth0");
    sh("ip -n " + node + " addr add " + v6 + "1/64 dev " + node_if + " nodad");
    sh("ip -n " + peer + " addr add " + v6 + "2/64 dev eth0 nodad");
    sh("ip -n " + node + " link set " + node_if + " up");
    sh("ip -n " + peer + " link set eth0 up");
  }

  static void wait_until_up(const std::string& ns, const std::string& dev) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    const std::string command =
        "ip -n " + ns + " -o link show dev " + dev + " | grep -q 'state UP'";
    while (std::system(command.c_str()) != 0) {
      if (std::chrono::steady_clock::now() > give_up)
        throw std::runtime_error(dev + " in " + ns + " did not come up");
      poll(nullptr, 0, 20);
    }
  }

  std::string prefix_;
  std::vector<int> listeners_;
  std::vector<std::string> pods_;
};

}  // namespace tetherd::test
