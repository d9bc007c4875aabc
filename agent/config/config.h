#pragma once
// tetherd's configuration as plain data. The schema and defaults are the
// contract in DESIGN.md; packaging/tetherd.yaml is the commented example.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/destination.h"
#include "firewall/allowlist.h"
#include "firewall/cidr.h"

namespace tetherd {

using namespace std::chrono_literals;

struct ControlPlaneConfig {
  std::string kubeconfig = "/etc/tetherd/controlplane.kubeconfig";
  std::string namespace_ = "tetherd-system";
  Duration heartbeat_interval = 10s;
  Duration lease_duration = 40s;
  // A credential (a ServiceAccount token allowed only to create and read
  // CSRs) the renewal falls back to when the node's certificate has
  // expired; empty: none, the node is re-enrolled by hand.
  std::string bootstrap_kubeconfig;
  bool operator==(const ControlPlaneConfig&) const = default;
};

struct ClusterConfig {
  std::string kubeconfig = "/etc/rancher/k3s/k3s.yaml";
  bool operator==(const ClusterConfig&) const = default;
};

enum class FirewallBackend { kNftables, kUfw, kNone };
enum class OnStop { kKeep, kRemove };

// 10.42.0.0/16 and 10.43.0.0/16: k3s's default pod and service networks.
std::vector<firewall::Cidr> default_always_allow();
std::vector<firewall::Cidr> default_cluster_networks();

// When the record of who reaches the node names a stranger as the cloud's
// possible new address (app/address_change.h): no cloud source connected on
// a port for quiet_after, while one source was refused there `attempts`
// times, the first at least `over` ago.
struct CloudAddressHintConfig {
  Duration quiet_after = 30min;
  std::uint32_t attempts = 5;
  Duration over = 150s;
  bool operator==(const CloudAddressHintConfig&) const = default;
};

struct FirewallConfig {
  FirewallBackend backend = FirewallBackend::kNftables;
  std::vector<std::uint16_t> ports = {6443, 4143, 4191};
  std::vector<firewall::Cidr> allow;
  std::vector<firewall::Cidr> always_allow = default_always_allow();
  // The cluster's pod and service networks: always allowed as sources, and
  // protected as destinations routed through the node (see Policy).
  std::vector<firewall::Cidr> cluster_networks = default_cluster_networks();
  std::uint32_t max_sources = 4096;
  std::uint8_t min_prefix_v4 = 8;  // the widest source the control plane may allow
  std::uint8_t min_prefix_v6 = 32;
  OnStop on_stop = OnStop::kKeep;
  firewall::Verdict verdict = firewall::Verdict::kDrop;
  CloudAddressHintConfig cloud_address_hint;
  // While the tunnel holds its servers, the managed ports it serves (its
  // destinations' ports) are closed to all but loopback, the node, the
  // cluster and alwaysAllow: the cloud reaches them through the tunnel only.
  bool close_when_tunnelled = false;
  bool operator==(const FirewallConfig&) const = default;
};

struct LinkerdConfig {
  std::string namespace_ = "linkerd";
  Duration rotate_before = 720h;
  Duration issuer_validity = 8760h;
  std::string trust_anchor_key;  // empty: no local signer
  // Evict the meshed pods whose proxy's certificate expired (false: report them only).
  bool heal_expired_proxies = false;
  bool operator==(const LinkerdConfig&) const = default;
};

// The tunnel: tetherd as a konnectivity agent (present: on). The cloud's
// konnectivity servers reach `destinations` on this node through it.
struct TunnelConfig {
  std::string server;  // https://HOST:PORT, the servers' agent port
  // The CA and client certificate presented to the servers; empty: the
  // control plane's kubeconfig (the node's enrolled credential).
  std::string kubeconfig;
  std::string agent_id;           // empty: the node's name
  std::string agent_identifiers;  // url-encoded, e.g. "host=192.0.2.7" (destHost)
  std::vector<Destination> destinations = {{"127.0.0.1", 6443}};
  std::uint32_t max_connections = 128;  // per server
  Duration idle_timeout = 1h;
  bool operator==(const TunnelConfig&) const = default;
};

struct HealthConfig {
  Duration interval = 60s;
  // Probe rounds in a row a change must hold before a condition flips.
  int threshold = 2;
  // The linkerd gateway's readiness URL (its proxy's admin port); empty:
  // not probed.
  std::string linkerd_gateway = "http://127.0.0.1:4191/ready";
  bool operator==(const HealthConfig&) const = default;
};

struct MetricsConfig {
  std::string listen = "127.0.0.1:9477";  // empty: off
  bool operator==(const MetricsConfig&) const = default;
};

struct StateConfig {
  std::string dir = "/var/lib/tetherd";
  bool operator==(const StateConfig&) const = default;
};

struct Config {
  std::string node_name;                            // default: the host name
  std::optional<ControlPlaneConfig> control_plane;  // absent: standalone
  std::optional<ClusterConfig> cluster;
  std::optional<LinkerdConfig> linkerd;
  std::optional<TunnelConfig> tunnel;
  FirewallConfig firewall;
  HealthConfig health;
  MetricsConfig metrics;
  StateConfig state;
  bool operator==(const Config&) const = default;

  bool standalone() const { return !control_plane.has_value(); }
};

const char* to_string(FirewallBackend b);
const char* to_string(OnStop s);

// The managed ports the tunnel serves (firewall.ports that are ports of
// tunnel.destinations), sorted: those firewall.closeWhenTunnelled closes.
// Empty without a tunnel.
std::vector<std::uint16_t> tunnelled_ports(const Config& config);
std::vector<std::uint16_t> tunnelled_ports(const std::vector<std::uint16_t>& managed,
                                           const std::vector<Destination>& destinations);

}  // namespace tetherd
