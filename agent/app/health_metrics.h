#pragma once
// What GET /metrics shows: the node's conditions, certificate expiries, the
// firewall, the control-plane session and the health rounds, then the
// process_* families. Names follow Prometheus' conventions: a base unit in
// the name (_seconds, _bytes), _total on counters, and a condition as
// kube-state-metrics shows one (a 0/1 series per status, so that
// `tetherd_condition{type="Ready",status="true"} == 0` alerts).

#include <cstdint>
#include <optional>
#include <string>

#include "agent/adapters/process_stats.h"
#include "agent/app/address_change.h"
#include "agent/app/mesh_watch.h"
#include "agent/core/node_status.h"
#include "agent/tunnel/tunnel_agent.h"

namespace tetherd {

struct MetricsInputs {
  NodeStatus status;
  bool control_plane = false;  // configured; the session's series appear only then
  bool connected = false;
  std::uint64_t reconnects = 0;
  std::uint64_t status_writes = 0;
  std::uint64_t status_write_failures = 0;
  std::uint64_t lease_renewals = 0;
  std::uint64_t lease_failures = 0;
  std::uint64_t resumes = 0;
  std::uint64_t rotations = 0;
  std::uint64_t health_rounds = 0;
  std::uint64_t condition_transitions = 0;
  // The last round's probe durations; unset: that probe does not run.
  std::optional<Duration> k3s_probe, gateway_probe;
  Duration local_probe{};
  std::optional<ProcessStats> process;  // none when /proc could not be read
  // The meshed proxies' watch (linkerd configured): its evictions.
  std::optional<MeshStats> mesh;
  // The kernel's record of who reaches the node (nftables), as read at
  // `evidence_read_at`.
  std::optional<EvidenceSummary> evidence;
  WallTime evidence_read_at{};
  // The tunnel (configured): its servers and what it carried.
  std::optional<tunnel::TunnelReport> tunnel;
};

std::string render_metrics(const MetricsInputs& in);

}  // namespace tetherd
