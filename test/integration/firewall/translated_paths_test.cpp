// Every path to a protected service on a k3s node, on the real kernel: a
// node namespace with kube-proxy's rules as k3s writes them (iptables-nft:
// KUBE-SERVICES, KUBE-NODEPORTS, KUBE-MARK-MASQ, KUBE-FORWARD), a pod behind
// it standing in for the linkerd gateway, a second pod, and two hosts that
// route the cluster's networks through the node: the cloud and a stranger.
//
//   cloud    192.0.2.2    2001:db8:a::2  -- node 192.0.2.1    2001:db8:a::1  (k3s :6443)
//   stranger 198.51.100.2 2001:db8:b::2  -- node 198.51.100.1 2001:db8:b::1
//   gateway pod 203.0.113.5  2001:db8:c::5    (:4143 :4191 :8080) -- node 203.0.113.1
//   other pod   203.0.113.20 2001:db8:c:1::5                      -- node 203.0.113.17
//   services    203.0.113.128/25, 2001:db8:d::/64 (ClusterIPs, DNAT'd by kube-proxy)

#include <gtest/gtest.h>

#include "firewall/firewall.h"
#include "firewall/nftables_backend.h"
#include "test/support/netns.h"

namespace tetherd::firewall {
namespace {

using namespace std::chrono_literals;
using test::Outcome;

struct Service {
  const char* name;
  const char* cluster_ip;
  std::uint16_t port;
  std::uint16_t node_port;
  const char* endpoint;
  std::uint16_t endpoint_port;
};

struct Family {
  bool v4;
  const char* node;    // the node's address on the cloud's link
  const char* node_b;  // and on the stranger's
  const char* gateway_pod;
  const char* other_pod;
  const char* cluster_cidr;
  std::vector<Service> services;
};

const Family kV4{true,
                 "192.0.2.1",
                 "198.51.100.1",
                 "203.0.113.5",
                 "203.0.113.20",
                 "203.0.113.0/25",
                 {{"API", "203.0.113.129", 443, 30443, "192.0.2.1", 6443},
                  {"GW4143", "203.0.113.130", 4143, 30143, "203.0.113.5", 4143},
                  {"GW4191", "203.0.113.130", 4191, 30191, "203.0.113.5", 4191},
                  {"WEB", "203.0.113.130", 8080, 30080, "203.0.113.5", 8080}}};
const Family kV6{false,
                 "2001:db8:a::1",
                 "2001:db8:b::1",
                 "2001:db8:c::5",
                 "2001:db8:c:1::5",
                 "2001:db8:c::/56",
                 {{"API", "2001:db8:d::1", 443, 30443, "2001:db8:a::1", 6443},
                  {"GW4143", "2001:db8:d::2", 4143, 30143, "2001:db8:c::5", 4143},
                  {"GW4191", "2001:db8:d::2", 4191, 30191, "2001:db8:c::5", 4191},
                  {"WEB", "2001:db8:d::2", 8080, 30080, "2001:db8:c::5", 8080}}};

// What kube-proxy (iptables mode, as embedded in k3s) loads with
// iptables-restore for these services: ClusterIPs and NodePorts DNAT'd to
// their endpoint, traffic from outside the cluster marked for masquerade,
// and KUBE-FORWARD accepting what it marked.
std::string kube_proxy_rules(const Family& f) {
  const std::string host = f.v4 ? "/32" : "/128";
  std::string nat =
      "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n"
      ":KUBE-MARK-MASQ - [0:0]\n";
  std::string rules =
      "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
      "KUBE-POSTROUTING\n"
      "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n"
      "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n"
      "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n"
      "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" "
      "-j MASQUERADE --random-fully\n";
  for (const Service& s : f.services) {
    const std::string svc = std::string("KUBE-SVC-") + s.name,
                      ext = std::string("KUBE-EXT-") + s.name,
                      sep = std::string("KUBE-SEP-") + s.name;
    nat += ":" + svc + " - [0:0]\n:" + ext + " - [0:0]\n:" + sep + " - [0:0]\n";
    const std::string endpoint =
        f.v4 ? std::string(s.endpoint) + ":" + std::to_string(s.endpoint_port)
             : "[" + std::string(s.endpoint) + "]:" + std::to_string(s.endpoint_port);
    rules += "-A KUBE-SERVICES -d " + std::string(s.cluster_ip) + host +
             " -p tcp -m comment --comment \"" + s.name + " cluster IP\" -m tcp --dport " +
             std::to_string(s.port) + " -j " + svc + "\n";
    rules += "-A " + svc + " ! -s " + f.cluster_cidr + " -d " + s.cluster_ip + host +
             " -p tcp -m tcp --dport " + std::to_string(s.port) + " -j KUBE-MARK-MASQ\n";
    rules += "-A KUBE-NODEPORTS -p tcp -m comment --comment \"" + std::string(s.name) +
             "\" -m tcp --dport " + std::to_string(s.node_port) + " -j " + ext + "\n";
    rules += "-A " + ext + " -j KUBE-MARK-MASQ\n-A " + ext + " -j " + svc + "\n";
    rules += "-A " + svc + " -j " + sep + "\n";
    rules += "-A " + sep + " -s " + s.endpoint + host + " -j KUBE-MARK-MASQ\n";
    rules += "-A " + sep + " -p tcp -m tcp -j DNAT --to-destination " + endpoint + "\n";
  }
  rules += "-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
  return nat + rules +
         "COMMIT\n*filter\n:KUBE-FORWARD - [0:0]\n-A FORWARD -j KUBE-FORWARD\n"
         "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
         "-A KUBE-FORWARD -m mark --mark 0x4000/0x4000 -j ACCEPT\n"
         "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
         "COMMIT\n";
}

// A way to one protected service: where the peer dials, and what it is.
struct Path {
  std::string what;
  std::string to;
  std::uint16_t port;
};

// `node`: the node's address on the peer's own link.
std::vector<Path> protected_paths(const Family& f, const std::string& node) {
  const Service& api = f.services[0];
  const Service& gw = f.services[1];
  const Service& probe = f.services[2];
  return {
      {"k3s directly", node, 6443},
      {"a NodePort DNAT'd to k3s", node, api.node_port},
      {"the kubernetes ClusterIP DNAT'd to k3s", api.cluster_ip, api.port},
      {"a NodePort forwarded to the gateway pod's 4143", node, gw.node_port},
      {"a NodePort forwarded to the gateway pod's 4191", node, probe.node_port},
      {"a ClusterIP forwarded to the gateway pod's 4143", gw.cluster_ip, gw.port},
      {"the gateway pod's address, 4143", f.gateway_pod, 4143},
      {"the gateway pod's address, 4191", f.gateway_pod, 4191},
  };
}

// Paths to what tetherd does not protect: they stay open to everyone.
std::vector<Path> open_paths(const Family& f, const std::string& node) {
  const Service& web = f.services[3];
  return {
      {"the gateway pod's 8080", f.gateway_pod, 8080},
      {"a NodePort to the pod's 8080", node, web.node_port},
      {"a ClusterIP to the pod's 8080", web.cluster_ip, web.port},
  };
}

class TranslatedPaths : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: creates network namespaces and nft tables";
    if (std::system("command -v iptables-restore >/dev/null && command -v ip6tables-restore "
                    ">/dev/null") != 0) {
      GTEST_SKIP() << "needs iptables (iptables-nft) for kube-proxy's rules";
    }
    topo_ = std::make_unique<test::Topology>();
    gateway_ = topo_->add_pod("gw", "203.0.113.1/28", "203.0.113.5/28", "2001:db8:c::1/64",
                              "2001:db8:c::5/64");
    other_pod_ = topo_->add_pod("p2", "203.0.113.17/28", "203.0.113.20/28", "2001:db8:c:1::1/64",
                                "2001:db8:c:1::5/64");
    for (const auto& [peer, v4, v6] : {std::tuple{topo_->a, "192.0.2.1", "2001:db8:a::1"},
                                       std::tuple{topo_->b, "198.51.100.1", "2001:db8:b::1"}}) {
      topo_->route_through_node(peer, "203.0.113.0/24", v4);
      topo_->route_through_node(peer, "2001:db8:c::/56", v6);
      topo_->route_through_node(peer, "2001:db8:d::/64", v6);
    }
    for (const Family* f : {&kV4, &kV6}) {
      const std::string file =
          ::testing::TempDir() + "kube-proxy-" + topo_->node + (f->v4 ? ".v4" : ".v6");
      FILE* out = std::fopen(file.c_str(), "w");
      ASSERT_NE(out, nullptr);
      const std::string rules = kube_proxy_rules(*f);
      std::fwrite(rules.data(), 1, rules.size(), out);
      std::fclose(out);
      test::sh("ip netns exec " + topo_->node +
               (f->v4 ? " iptables-restore " : " ip6tables-restore ") + file);
      std::remove(file.c_str());
    }
    // The node reaches ClusterIPs as a real one does, through its default route.
    test::sh("ip -n " + topo_->node + " route add default via 192.0.2.2");
    test::sh("ip -n " + topo_->node + " -6 route add default via 2001:db8:a::2");
    topo_->listen_on({6443});  // k3s, on the node
    topo_->listen_on({4143, 4191, 8080}, gateway_);
    topo_->listen_on({4143, 4191}, other_pod_);

    test::InNetns in(topo_->node);
    Policy p;
    p.ports = {6443, 4143, 4191};
    p.cluster_networks = {*parse_cidr("203.0.113.0/24"), *parse_cidr("2001:db8:c::/56"),
                          *parse_cidr("2001:db8:d::/64")};
    p.verdict = GetParam() ? Verdict::kReject : Verdict::kDrop;
    backend_ = std::make_unique<NftablesBackend>();
    std::vector<boost::asio::ip::address> node;
    for (const char* a : {"192.0.2.1", "198.51.100.1", "203.0.113.1", "203.0.113.17",
                          "2001:db8:a::1", "2001:db8:b::1", "2001:db8:c::1", "2001:db8:c:1::1"})
      node.push_back(boost::asio::ip::make_address(a));
    firewall_ = std::make_unique<Firewall>(*backend_, p, node);
  }

  Result<void> allow_the_cloud() {
    test::InNetns in(topo_->node);
    return firewall_->update({{"192.0.2.2/32", "2001:db8:a::2/128"}, {}});
  }

  // A refused connection: reset at once with `verdict: reject`, no answer
  // with `drop` (a SYN that is never answered, waited for 300 ms).
  Outcome refused() const { return GetParam() ? Outcome::kRefused : Outcome::kTimedOut; }
  std::chrono::milliseconds wait_for_refusal() const { return GetParam() ? 5000ms : 300ms; }

  // 5 s for a connect: the first IPv6 packet forwarded to a pod waits about
  // a second for neighbour discovery here, and its SYN may be sent twice.
  void expect(const std::string& who, const std::vector<Path>& paths, Outcome want,
              std::chrono::milliseconds timeout = 5000ms) {
    for (const Path& p : paths) {
      EXPECT_EQ(std::string(to_string(topo_->connect_from(who, p.to, p.port, timeout))),
                to_string(want))
          << who << " -> " << p.what << " (" << p.to << ":" << p.port << ")";
    }
  }

  std::unique_ptr<test::Topology> topo_;
  std::string gateway_, other_pod_;
  std::unique_ptr<NftablesBackend> backend_;
  std::unique_ptr<Firewall> firewall_;
};

TEST_P(TranslatedPaths, EveryPathWorksWithoutTetherd) {
  // The positive control: each path the other tests close is a real one.
  for (const Family* f : {&kV4, &kV6}) {
    expect(topo_->b, protected_paths(*f, f->node_b), Outcome::kConnected);
    expect(topo_->b, open_paths(*f, f->node_b), Outcome::kConnected);
  }
}

TEST_P(TranslatedPaths, OnlyTheCloudReachesTheProtectedServicesOnAnyPath) {
  ASSERT_TRUE(allow_the_cloud().has_value());
  for (const Family* f : {&kV4, &kV6}) {
    SCOPED_TRACE(f->v4 ? "IPv4" : "IPv6");
    expect(topo_->a, protected_paths(*f, f->node), Outcome::kConnected);
    expect(topo_->b, protected_paths(*f, f->node_b), refused(), wait_for_refusal());
    // Only the protected ports: the same pod's other port stays open.
    expect(topo_->b, open_paths(*f, f->node_b), Outcome::kConnected);
  }
}

TEST_P(TranslatedPaths, TheClusterAndTheNodeItselfAreUntouched) {
  ASSERT_TRUE(allow_the_cloud().has_value());
  for (const Family* f : {&kV4, &kV6}) {
    SCOPED_TRACE(f->v4 ? "IPv4" : "IPv6");
    const Service& api = f->services[0];
    const Service& gw = f->services[1];
    // Pod to pod (routed through the node), pod to k3s through its ClusterIP.
    expect(other_pod_,
           {{"pod to pod, 4143", f->gateway_pod, 4143},
            {"pod to pod, 4191", f->gateway_pod, 4191},
            {"pod to the gateway's ClusterIP", gw.cluster_ip, gw.port},
            {"pod to the kubernetes ClusterIP", api.cluster_ip, api.port}},
           Outcome::kConnected);
    // The node to its own k3s and to its pods.
    expect(topo_->node,
           {{"node to k3s", f->node, 6443},
            {"node to the gateway pod", f->gateway_pod, 4143},
            {"node to the kubernetes ClusterIP", api.cluster_ip, api.port}},
           Outcome::kConnected);
    expect(topo_->node, {{"node to loopback", f->v4 ? "127.0.0.1" : "::1", 6443}},
           Outcome::kConnected);
  }
}

INSTANTIATE_TEST_SUITE_P(Verdicts, TranslatedPaths, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Reject" : "Drop"; });

}  // namespace
}  // namespace tetherd::firewall
