#include "firewall/allowlist.h"

#include <algorithm>
#include <iterator>

namespace tetherd::firewall {
namespace {

template <class T>
std::vector<T> minus(const std::vector<T>& a, const std::vector<T>& b) {
  std::vector<T> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

Result<std::vector<Cidr>> validate(const DesiredSources& desired, const Policy& policy) {
  if (desired.sources.size() > policy.max_sources) {
    return make_error(std::to_string(desired.sources.size()) +
                      " sources requested, more than maxSources (" +
                      std::to_string(policy.max_sources) + ")");
  }
  for (std::uint16_t port : desired.ports) {
    if (std::find(policy.ports.begin(), policy.ports.end(), port) == policy.ports.end()) {
      return make_error("port " + std::to_string(port) +
                        " is not one of the ports tetherd manages (firewall.ports)");
    }
  }
  std::vector<Cidr> out;
  out.reserve(desired.sources.size());
  for (std::size_t i = 0; i < desired.sources.size(); ++i) {
    auto c = parse_cidr(desired.sources[i]);
    if (!c) return make_error("allowedSources[" + std::to_string(i) + "]: " + c.error().message);
    const unsigned min = c->is_v4() ? policy.min_prefix_v4 : policy.min_prefix_v6;
    if (c->prefix < min) {
      return make_error("allowedSources[" + std::to_string(i) + "]: " + c->to_string() +
                        " is wider than firewall.minPrefixLength." +
                        (c->is_v4() ? "ipv4" : "ipv6") + " (/" + std::to_string(min) + ")");
    }
    out.push_back(*c);
  }
  return out;
}

Allowlist build_allowlist(const Policy& policy, const std::vector<Cidr>& control_plane,
                          const std::vector<boost::asio::ip::address>& node_addresses) {
  Allowlist a;
  a.ports = policy.ports;
  std::sort(a.ports.begin(), a.ports.end());
  a.ports.erase(std::unique(a.ports.begin(), a.ports.end()), a.ports.end());
  a.verdict = policy.verdict;

  // Loopback: the node talking to itself must never be locked out.
  AddressSet own(std::vector<Cidr>{*parse_cidr("127.0.0.0/8"), *parse_cidr("::1/128")});
  for (const auto& address : node_addresses) {
    if (address.is_v4()) {
      own.add(Cidr{address, 32});
    } else if (!address.to_v6().is_v4_mapped()) {
      // Without the scope (fe80::1%eth0): rules match addresses, not links.
      own.add(Cidr{boost::asio::ip::address_v6(address.to_v6().to_bytes()), 128});
    }
  }
  for (const Cidr& c : policy.cluster_networks) {
    own.add(c);
    a.cluster.add(c);
  }
  for (const Cidr& c : policy.allow)
    a.cloud.add(c);
  for (const Cidr& c : control_plane)
    a.cloud.add(c);
  a.sources = own;
  a.sources.add(a.cloud);
  for (const Cidr& c : policy.always_allow)
    a.sources.add(c);
  a.inner = own;
  for (const Cidr& c : policy.always_allow)
    a.inner.add(c);
  for (std::uint16_t p : policy.closed_ports)
    if (std::binary_search(a.ports.begin(), a.ports.end(), p)) a.closed_ports.push_back(p);
  std::sort(a.closed_ports.begin(), a.closed_ports.end());
  a.closed_ports.erase(std::unique(a.closed_ports.begin(), a.closed_ports.end()),
                       a.closed_ports.end());
  // The node, its pods and loopback never count as the cloud, even where
  // an allowed network covers them.
  a.cloud.remove(own);
  return a;
}

AllowlistDiff diff(const Allowlist& live, const Allowlist& desired) {
  AllowlistDiff d;
  const auto sets = [](const AddressSet& have_set, const AddressSet& want_set,
                       std::vector<Cidr>& added, std::vector<Cidr>& removed) {
    const std::vector<Cidr> have = have_set.cidrs(), want = want_set.cidrs();
    added = minus(want, have);
    removed = minus(have, want);
  };
  sets(live.sources, desired.sources, d.added, d.removed);
  sets(live.cluster, desired.cluster, d.cluster_added, d.cluster_removed);
  sets(live.cloud, desired.cloud, d.cloud_added, d.cloud_removed);
  sets(live.inner, desired.inner, d.inner_added, d.inner_removed);
  d.ports_added = minus(desired.ports, live.ports);
  d.ports_removed = minus(live.ports, desired.ports);
  d.closed_added = minus(desired.closed_ports, live.closed_ports);
  d.closed_removed = minus(live.closed_ports, desired.closed_ports);
  d.verdict_changed = live.verdict != desired.verdict;
  return d;
}

}  // namespace tetherd::firewall
