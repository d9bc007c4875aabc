#pragma once
// What tetherd allows: the policy (from the configuration), the desired
// sources from the control plane (validated whole), and the resulting
// Allowlist that a backend applies. Pure: values in, values out.

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "agent/core/desired_sources.h"
#include "agent/core/result.h"
#include "firewall/address_set.h"
#include "firewall/cidr.h"

namespace tetherd::firewall {

enum class Verdict { kDrop, kReject };  // reject: TCP reset, so peers fail fast

struct Policy {
  std::vector<std::uint16_t> ports;  // the only ports ever filtered
  std::vector<Cidr> always_allow;
  std::vector<Cidr> allow;
  // The cluster's pod and service networks: the cluster itself, never locked
  // out as a source, and, as a destination routed through the node (a pod
  // behind it, after any DNAT), protected on `ports` like the node itself.
  std::vector<Cidr> cluster_networks;
  std::uint32_t max_sources = 4096;
  // The widest source the control plane may allow, per family: a wider one
  // (0.0.0.0/0, ::/0 with the defaults) rejects the desired set whole.
  std::uint8_t min_prefix_v4 = 8;
  std::uint8_t min_prefix_v6 = 32;
  Verdict verdict = Verdict::kDrop;
  // Ports closed to the cloud (firewall.closeWhenTunnelled while the tunnel
  // holds its servers): only loopback, the node's own addresses, the
  // cluster's networks and alwaysAllow reach them. Those not in `ports` are
  // ignored.
  std::vector<std::uint16_t> closed_ports;
};

// Validates a desired set whole: the first problem rejects all of it, so a
// half-valid update never reaches the kernel.
Result<std::vector<Cidr>> validate(const DesiredSources& desired, const Policy& policy);

// The rules as applied: ports filtered and the sources let through them.
struct Allowlist {
  std::vector<std::uint16_t> ports;  // sorted, unique
  AddressSet sources;
  // Destinations routed through the node that are protected too (pods).
  AddressSet cluster;
  // The sources that are the cloud (allow and the control plane's, without
  // loopback, the node's own addresses and the cluster): whose connections
  // are recorded as evidence that the cloud reaches the node.
  AddressSet cloud;
  // Ports closed to all but `inner` (a subset of ports, sorted, unique),
  // and `inner`: loopback, the node's addresses, the cluster's networks and
  // alwaysAllow (made whether or not a port is closed).
  std::vector<std::uint16_t> closed_ports;
  AddressSet inner;
  Verdict verdict = Verdict::kDrop;
  friend bool operator==(const Allowlist&, const Allowlist&) = default;
};

// Sources: clusterNetworks ∪ alwaysAllow ∪ allow ∪ control-plane sources ∪
// loopback ∪ node addresses. Cloud: (allow ∪ control-plane sources) −
// (loopback ∪ node addresses ∪ clusterNetworks). Inner: clusterNetworks ∪
// alwaysAllow ∪ loopback ∪ node addresses.
Allowlist build_allowlist(const Policy& policy, const std::vector<Cidr>& control_plane,
                          const std::vector<boost::asio::ip::address>& node_addresses);

// What a reconcile must do to turn `live` into `desired`.
struct AllowlistDiff {
  std::vector<Cidr> added;
  std::vector<Cidr> removed;
  std::vector<std::uint16_t> ports_added;
  std::vector<std::uint16_t> ports_removed;
  std::vector<Cidr> cluster_added;
  std::vector<Cidr> cluster_removed;
  std::vector<Cidr> cloud_added;
  std::vector<Cidr> cloud_removed;
  std::vector<std::uint16_t> closed_added;
  std::vector<std::uint16_t> closed_removed;
  std::vector<Cidr> inner_added;
  std::vector<Cidr> inner_removed;
  bool verdict_changed = false;
  bool empty() const {
    return added.empty() && removed.empty() && ports_added.empty() && ports_removed.empty() &&
           cluster_added.empty() && cluster_removed.empty() && cloud_added.empty() &&
           cloud_removed.empty() && closed_added.empty() && closed_removed.empty() &&
           inner_added.empty() && inner_removed.empty() && !verdict_changed;
  }
};

AllowlistDiff diff(const Allowlist& live, const Allowlist& desired);

}  // namespace tetherd::firewall
