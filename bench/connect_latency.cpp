// The per-packet cost of tetherd's rules: how long an allowed peer's TCP
// connect takes through the node with N sources in the allowed set, against
// the same connect with no table at all. Two paths: to the node's 6443
// (chains prerouting and input) and to a pod behind the node on 4143
// (prerouting and forward, the cluster set too). The sets are interval sets,
// so the cost should not grow with N. Needs root (network namespaces, made
// and removed here); prints one table.
//
//   build/default/bench/connect_latency [N ...]     (default 10 1000 10000)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "firewall/firewall.h"
#include "firewall/nftables_backend.h"
#include "test/support/netns.h"

namespace {

using namespace tetherd::firewall;
using Clock = std::chrono::steady_clock;
namespace test = tetherd::test;

constexpr int kConnects = 2000;

struct Latency {
  double median_us = 0, p90_us = 0;
  int failures = 0;
};

// kConnects connects from the cloud's namespace, one at a time.
Latency measure(test::Topology& topo, const std::string& to, std::uint16_t port) {
  std::vector<double> us;
  us.reserve(kConnects);
  Latency out;
  {
    test::InNetns in(topo.a);
    const auto address = boost::asio::ip::make_address(to);
    for (int i = 0; i < kConnects; ++i) {
      const auto start = Clock::now();
      const auto outcome = test::tcp_connect(address, port, std::chrono::milliseconds(1000));
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      if (outcome != test::Outcome::kConnected) ++out.failures;
      if (i % 200 == 199) topo.drain();
    }
  }
  topo.drain();
  std::sort(us.begin(), us.end());
  out.median_us = us[us.size() / 2];
  out.p90_us = us[us.size() * 9 / 10];
  return out;
}

// N sources that never merge (every other address of 10.0.0.0/8), and the cloud.
std::vector<std::string> sources(std::size_t n) {
  std::vector<std::string> out = {"192.0.2.2/32"};
  for (std::size_t i = 0; i + 1 < n; ++i) {
    const std::uint32_t v = 0x0A000001u + 2u * static_cast<std::uint32_t>(i);
    out.push_back(boost::asio::ip::address_v4(v).to_string() + "/32");
  }
  return out;
}

void row(const char* label, const Latency& node, const Latency& pod, const Latency& base_node,
         const Latency& base_pod) {
  std::printf("| %s | %.0f µs (p90 %.0f) | %.2fx | %.0f µs (p90 %.0f) | %.2fx |%s\n", label,
              node.median_us, node.p90_us, node.median_us / base_node.median_us, pod.median_us,
              pod.p90_us, pod.median_us / base_pod.median_us,
              node.failures + pod.failures ? " (connects failed!)" : "");
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fputs("connect_latency: needs root (network namespaces)\n", stderr);
    return 1;
  }
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i)
    sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {10, 1000, 10000};

  test::Topology topo;
  const std::string pod = topo.add_pod("gw", "203.0.113.1/28", "203.0.113.5/28", "2001:db8:c::1/64",
                                       "2001:db8:c::5/64");
  topo.route_through_node(topo.a, "203.0.113.0/24", "192.0.2.1");
  topo.listen_on({6443});
  topo.listen_on({4143}, pod);

  // Warm up the paths (neighbour discovery, routes), then the baseline.
  measure(topo, "192.0.2.1", 6443);
  measure(topo, "203.0.113.5", 4143);
  const Latency base_node = measure(topo, "192.0.2.1", 6443);
  const Latency base_pod = measure(topo, "203.0.113.5", 4143);

  std::printf("%d connects each, one at a time, from the cloud's namespace; median and p90\n\n",
              kConnects);
  std::printf(
      "| sources | to the node's 6443 | vs no table | to the pod's 4143 through the node | vs no "
      "table |\n|---:|---:|---:|---:|---:|\n");
  std::printf("| no table | %.0f µs (p90 %.0f) | 1.00x | %.0f µs (p90 %.0f) | 1.00x |\n",
              base_node.median_us, base_node.p90_us, base_pod.median_us, base_pod.p90_us);
  for (std::size_t n : sizes) {
    Policy p;
    p.ports = {6443, 4143, 4191};
    p.cluster_networks = {*parse_cidr("203.0.113.0/24")};
    p.max_sources = 65536;
    NftablesBackend backend;
    std::unique_ptr<Firewall> firewall;
    {
      test::InNetns in(topo.node);
      firewall = std::make_unique<Firewall>(
          backend, p,
          std::vector<boost::asio::ip::address>{boost::asio::ip::make_address("192.0.2.1")});
      if (auto r = firewall->update({sources(n), {}}); !r) {
        std::fprintf(stderr, "apply failed: %s\n", r.error().message.c_str());
        return 1;
      }
    }
    const Latency node = measure(topo, "192.0.2.1", 6443);
    const Latency to_pod = measure(topo, "203.0.113.5", 4143);
    row(std::to_string(n).c_str(), node, to_pod, base_node, base_pod);
    test::InNetns in(topo.node);
    (void)backend.remove();
  }
  return 0;
}
