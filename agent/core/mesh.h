#pragma once
// The meshed pods on this node and what their proxies say of their
// identity certificates (issue 22). Pure: the pod list's JSON and the
// proxies' readings in, the pods to read, the verdict and the evictions to
// ask for out.
//
// Why this matters: a proxy's workload certificate lasts 24 hours, and a
// proxy whose certificate expired (a suspend longer than that) cannot renew
// it, because its call to the identity service is itself meshed (linkerd2
// #13136); only a new pod (a new proxy, bootstrapping with its
// ServiceAccount token) recovers. So tetherd finds them and, when asked
// (linkerd.healExpiredProxies), evicts them in an order that lets the mesh
// come back: linkerd's identity first, then the rest of its control plane,
// then linkerd-multicluster's gateway and service mirror, then workloads.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "agent/core/clock.h"
#include "agent/core/node_status.h"
#include "agent/core/proxy_metrics.h"

namespace tetherd {

// The label linkerd's injector puts on every meshed pod (its value: the
// control plane's namespace): the list's label selector.
inline constexpr std::string_view kMeshedPodLabel = "linkerd.io/control-plane-ns";
inline constexpr std::uint16_t kProxyAdminPort = 4191;

// In the order healing goes.
enum class MeshRole {
  kIdentity,       // linkerd.io/control-plane-component=identity
  kDestination,    // =destination
  kProxyInjector,  // =proxy-injector
  kControlPlane,   // another linkerd control-plane component
  kGateway,        // linkerd-multicluster's gateway (linkerd.io/extension=multicluster)
  kServiceMirror,  // linkerd-multicluster's service mirror (its other pods)
  kWorkload,
};
std::string_view to_string(MeshRole role);

struct MeshedPod {
  std::string namespace_, name, uid;
  std::string ip;  // status.podIP
  std::uint16_t admin_port = kProxyAdminPort;
  MeshRole role = MeshRole::kWorkload;
  // The controller that would make it anew ("ReplicaSet/web-5d8f"); empty:
  // a bare pod, which an eviction would delete for good.
  std::string controller;
  std::string trust_root_sha256;    // linkerd.io/trust-root-sha256, if any
  std::optional<WallTime> created;  // metadata.creationTimestamp
  bool running = false;             // phase Running, not being deleted
  std::string key() const { return namespace_ + "/" + name; }
  friend bool operator==(const MeshedPod&, const MeshedPod&) = default;
};

struct MeshedPods {
  std::vector<MeshedPod> pods;  // healing order, then namespace/name; at most the cap
  std::size_t left_out = 0;     // meshed pods over the cap, when counted
  bool more = false;            // there were more than the cap (counted or not)
};

// The meshed pods on `node` among a pod list's items: labelled by linkerd's
// injector, with a linkerd-proxy container (or init container, as a native
// sidecar), a pod IP, not on the host's network. Items that are not so are
// skipped, whatever a server's selectors did.
MeshedPods meshed_pods(const std::vector<boost::json::object>& items, std::string_view node,
                       std::size_t cap);

// What one proxy's admin page said, when it was read.
struct ProxyReading {
  WallTime at;
  std::optional<ProxyIdentity> identity;  // nullopt: could not be read
  std::string problem;                    // why not, or why the expiry is not believed
};

// Whether a pod's proxy is due to be read again. Steady state costs one
// list and no reads: a proxy read valid is read again once it should have
// refreshed (linkerd refreshes at 70% of the remaining life, so after 80%
// a new expiry shows), when its expiry has passed, after a resume (`since`
// the last resume, on the wall clock), and at least every `backstop`. One
// that could not be read, or whose refreshes fail, is read every round.
bool proxy_due(const std::optional<ProxyReading>& last, WallTime now,
               std::optional<WallTime> resumed_at, Duration backstop);

enum class ProxyState { kValid, kExpired, kRefreshFailing, kUnreadable, kNotRunning };

struct ProxyVerdict {
  ProxyState state = ProxyState::kUnreadable;
  std::string detail;  // "expired 3d ago", "cannot be read: ..."
};
// `previous`: the reading before `reading`, for the refresh counters'
// movement (failing: errors grew and successes did not).
ProxyVerdict judge_proxy(const MeshedPod& pod, const ProxyReading& reading,
                         const std::optional<ProxyReading>& previous, WallTime now);

struct MeshReport {
  std::size_t meshed = 0;  // on this node (the cap's left_out included)
  std::size_t valid = 0, expired = 0, failing = 0, unreadable = 0;
  std::vector<std::string> expired_pods;  // healing order
  std::vector<std::string> bare_expired;  // of those, the pods without a controller
  // The trust bundle in force ("" unknown) and the proxies started with another.
  std::string bundle_sha256;
  std::size_t stale_bundle = 0;
  ConditionStatus status = ConditionStatus::kUnknown;
  std::string reason, message;  // MeshHealthy's
  friend bool operator==(const MeshReport&, const MeshReport&) = default;
};
// The verdicts of the pods read or remembered this round, keyed by pod.
MeshReport report_mesh(const MeshedPods& pods, const std::map<std::string, ProxyVerdict>& verdicts);

// The pods whose proxies started with another trust bundle than the one in
// force (`bundle_sha256`), as linkerd's injector stamped them
// (linkerd.io/trust-root-sha256; a pod without it is not counted). Proxies
// read the roots only when they start, so these trust the old anchors
// alone. Those made before `since` (when this bundle came into force) are
// to be rolled; those made after it with another hash were stamped so by
// the injector (it hashes linkerd-config's identityTrustAnchorsPEM, which
// may lag the ConfigMap), and rolling them would only make more of them.
struct StaleBundle {
  std::vector<std::string> stale;          // every stale pod, healing order
  std::vector<const MeshedPod*> to_roll;   // of those, made before `since`
  std::vector<std::string> stamped_after;  // of those, made since
};
StaleBundle stale_bundle(const MeshedPods& pods, std::string_view bundle_sha256, WallTime since);

// When the bundle `sha256` came into force, from the state file's text
// ("<sha256> <unix seconds>", `saved`, if any): its time if it is for this
// bundle, parses whole and is not after `now`; else none, and `now` is the
// first sighting (to be saved). A saved time in the future is a clock that
// was ahead then, or was set back since: taken as it was, pods made
// meanwhile would be rolled and could feed the roll.
std::optional<WallTime> saved_bundle_since(std::optional<std::string_view> saved,
                                           std::string_view sha256, WallTime now);
std::string bundle_since_text(std::string_view sha256, WallTime since);

}  // namespace tetherd
