#pragma once
// The document tetherd serves at GET /v1/status on its local socket, read
// into plain values for `tetherctl status` (see status_view.h). Pure.
//
// The document is {"nodeName", "time"?, "controlPlane"?: {"server"?, "summary"},
// "tunnel"?: {"server"?, "serversWanted"?, "serversHeld"?, "connections"?,
// "dialsServed"?, "dialsRefused"?, "dialsFailed"?, "bytesToDestinations"?,
// "bytesToServers"?, "problem"?}, "status": <what tetherd writes to its
// EdgeNode's status>}. Keys this
// version does not know are ignored, so an older tetherctl reads a newer
// tetherd; a null is read as an absent key. Everything else that is not as
// documented (not JSON, a wrong type, a bad time) is an error naming the key.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/node_status.h"
#include "agent/core/result.h"

namespace tetherd {

// tetherd's answers are a few KiB; a megabyte is a wrong or hostile answer.
inline constexpr std::size_t kMaxStatusDocumentBytes = 1 << 20;

struct ControlPlaneStatus {
  std::string server;   // may be empty
  std::string summary;  // "watching https://cloud.example:6443"
};

// The tunnel (a `tunnel` section): the servers held, what it carried.
struct TunnelStatus {
  std::string server;  // may be empty
  std::optional<std::uint64_t> servers_wanted, servers_held, connections;
  std::optional<std::uint64_t> dials_served, dials_refused, dials_failed;
  std::optional<std::uint64_t> bytes_to_destinations, bytes_to_servers;
  std::string problem;  // why the last dial or connection failed; may be empty
};

struct FirewallStatus {
  std::string backend;  // may be empty
  std::optional<std::uint64_t> sources;
  // status.firewall.refusedRecently: the cloud's address may have changed.
  struct Refused {
    std::string source;
    std::vector<std::uint64_t> ports;
    std::optional<WallTime> since;
  };
  std::optional<Refused> refused_recently;
};

struct CertificateStatus {
  std::string name;
  std::string role;  // "issuer", "trustAnchor"; may be empty
  std::string subject;
  std::optional<WallTime> not_after;
};

struct DiskStatus {
  std::string path;
  std::uint64_t available_bytes = 0;
  std::uint64_t total_bytes = 0;
};

// Each fact may be missing: tetherd reports what it could measure.
struct NodeFacts {
  // As written ("0.52"): Kubernetes writes fractions as strings.
  std::optional<std::string> load1, load5, load15;
  std::optional<std::uint64_t> memory_available_bytes, memory_total_bytes;
  std::vector<DiskStatus> disks;
  std::optional<std::uint64_t> uptime_seconds;
  std::optional<WallTime> last_resume;
};

struct MeshStatus {
  std::optional<std::uint64_t> meshed, expired, unreadable, stale_bundle;
};

struct StatusDocument {
  std::string node_name;
  // When tetherd made the answer; ages and times left are drawn as of it.
  // Absent (a tetherd from before it was added): the reader's clock.
  std::optional<WallTime> time;
  std::optional<ControlPlaneStatus> control_plane;  // absent: standalone
  std::optional<TunnelStatus> tunnel;               // absent: no tunnel
  std::optional<std::int64_t> observed_generation;
  std::string agent_version;  // may be empty
  std::optional<FirewallStatus> firewall;
  std::vector<Condition> conditions;  // in the order received
  std::vector<CertificateStatus> certificates;
  std::optional<NodeFacts> node;
  std::optional<MeshStatus> linkerd;
};

// Errors read "<key path>: <problem>", e.g.
// `status.conditions[1].lastTransitionTime: not an RFC 3339 time: "soon"`.
Result<StatusDocument> parse_status_document(std::string_view json);

}  // namespace tetherd
