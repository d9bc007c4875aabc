#pragma once
// What tetherd writes to EdgeNode.status, and when to write it. Pure: the
// time is passed in; the kube adapter sends the patch.
//
// Conditions follow Kubernetes' own (metav1.Condition, meta.SetStatusCondition):
// lastTransitionTime moves only when the status changes, so a new message
// with the same status is not a transition. Ready is derived from the
// others, never set directly:
//   - True,    reason AllConditionsTrue, when every other condition is True;
//   - False,   when any is False: the first False one (in the order below)
//              gives the reason, its type said negatively (FirewallNotInSync,
//              NotConnected, CertificatesNotValid, K3sNotReady,
//              LinkerdGatewayNotReady, ClockNotSynchronized), and the message,
//              "<type> is False (<its reason>): <its message>";
//   - Unknown, when none is False but one is Unknown (a check that has not
//              run yet is not a failure): reason <type>Unknown, e.g.
//              K3sReadyUnknown, message as above.
// Ready appears with the first set(), so it never stands alone.
// A kubectl user reads `Ready=False FirewallNotInSync` and the message says
// which update was refused and why.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "agent/core/clock.h"

namespace tetherd {

enum class ConditionStatus { kTrue, kFalse, kUnknown };

// "True", "False", "Unknown": the strings the CRD's enum allows.
std::string_view to_string(ConditionStatus status);

// The condition types (DESIGN.md), in the order status lists them.
namespace condition_type {
inline constexpr std::string_view kReady = "Ready";
inline constexpr std::string_view kConnected = "Connected";
inline constexpr std::string_view kFirewallInSync = "FirewallInSync";
inline constexpr std::string_view kCertificatesValid = "CertificatesValid";
// The credential files tetherd follows (kubeconfigs, the files they name,
// the trust anchor's key) are usable as they are on disk; False while one
// that changed cannot be used and the old credentials stay in force.
inline constexpr std::string_view kCredentialsValid = "CredentialsValid";
inline constexpr std::string_view kK3sReady = "K3sReady";
inline constexpr std::string_view kLinkerdGatewayReady = "LinkerdGatewayReady";
inline constexpr std::string_view kClockSynchronized = "ClockSynchronized";
// The meshed proxies on this node hold valid identity certificates
// (core/mesh.h); False while one holds an expired one.
inline constexpr std::string_view kMeshHealthy = "MeshHealthy";
// With `tunnel` configured: every konnectivity server behind its address
// is held (the cloud reaches this node's API through them).
inline constexpr std::string_view kTunnelConnected = "TunnelConnected";
inline constexpr std::array<std::string_view, 10> kAll = {
    kReady,    kConnected,           kFirewallInSync,    kCertificatesValid, kCredentialsValid,
    kK3sReady, kLinkerdGatewayReady, kClockSynchronized, kMeshHealthy,       kTunnelConnected};
}  // namespace condition_type

struct Condition {
  std::string type;
  ConditionStatus status = ConditionStatus::kUnknown;
  std::string reason;
  std::string message;
  WallTime last_transition;
  friend bool operator==(const Condition&, const Condition&) = default;
};

// Messages may carry a server's error text: bounded, so status stays small
// (the CRD allows 32 KiB). Reasons are our own words, bounded all the same.
inline constexpr std::size_t kMaxConditionMessageBytes = 1024;
inline constexpr std::size_t kMaxConditionReasonBytes = 128;

// A reason the CRD accepts, ^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$:
// other characters are dropped, then leading ones up to the first letter
// and trailing ',' and ':'. Empty when nothing is left (the CRD allows it).
std::string condition_reason(std::string_view text);

// Valid UTF-8 of at most `max_bytes`: invalid bytes become U+FFFD, and a
// longer text is cut on a character boundary and ends with an ellipsis
// (U+2026) when there is room for one. The API server would substitute
// invalid UTF-8 itself; doing it here keeps what we compare equal to what
// the server stores.
std::string bounded_text(std::string_view text, std::size_t max_bytes);

class Conditions {
 public:
  // Sets one condition (not Ready: that one is derived) and re-derives
  // Ready. The reason is cleaned with condition_reason and the message
  // bounded to kMaxConditionMessageBytes. Returns whether anything changed,
  // Ready included; an unknown type, or Ready, changes nothing.
  bool set(std::string_view type, ConditionStatus status, std::string_view reason,
           std::string_view message, WallTime now);

  const Condition* find(std::string_view type) const;
  // Drops one condition (its producer is gone) and re-derives Ready.
  // Returns whether it was there.
  bool erase(std::string_view type, WallTime now);

  // Ready first, then the others in condition_type::kAll's order. Empty
  // until the first set().
  const std::vector<Condition>& all() const { return conditions_; }

 private:
  bool put(Condition next, WallTime now);
  void derive_ready(WallTime now);

  std::vector<Condition> conditions_;
};

// A certificate tetherd watches (linkerd's issuer, the trust anchors).
struct CertificateExpiry {
  std::string name;  // "linkerd-identity-issuer", or an anchor's subject CN
  std::string role;  // issuer | trustAnchor
  std::string subject;
  WallTime not_after;
  friend bool operator==(const CertificateExpiry&, const CertificateExpiry&) = default;
};

struct DiskUsage {
  std::string path;
  std::uint64_t available_bytes = 0;
  std::uint64_t total_bytes = 0;
  friend bool operator==(const DiskUsage&, const DiskUsage&) = default;
};

// The node's vital signs, as of the last health round. Loads are strings
// ("0.52"), as Kubernetes' API conventions avoid floats.
struct NodeVitals {
  std::string load1, load5, load15;
  std::uint64_t memory_available_bytes = 0;
  std::uint64_t memory_total_bytes = 0;
  std::vector<DiskUsage> disk;
  std::int64_t uptime_seconds = 0;
  std::optional<WallTime> last_resume;
  friend bool operator==(const NodeVitals&, const NodeVitals&) = default;
};

// The meshed proxies on this node (status.linkerd), as of the last pass.
struct MeshSummary {
  std::uint64_t meshed = 0;        // meshed pods on this node
  std::uint64_t expired = 0;       // whose proxy holds an expired certificate
  std::uint64_t unreadable = 0;    // whose proxy's metrics could not be read
  std::string bundle_sha256;       // the trust bundle in force; "" unknown
  std::uint64_t stale_bundle = 0;  // whose proxy started with another bundle
  friend bool operator==(const MeshSummary&, const MeshSummary&) = default;
};

// A source refused on ports where the cloud has gone quiet
// (app/address_change.h), since when: status.firewall.refusedRecently.
// Only what stays the same while the finding lasts, so that it does not
// make a status write every round.
struct RefusedRecently {
  std::string source;
  std::vector<std::uint16_t> ports;
  WallTime since;
  friend bool operator==(const RefusedRecently&, const RefusedRecently&) = default;
};

struct NodeStatus {
  std::int64_t observed_generation = 0;  // metadata.generation of the spec acted on
  Conditions conditions;
  std::size_t firewall_sources = 0;  // sources in the allowlist as applied
  std::string firewall_backend;      // nftables | ufw | none
  std::optional<RefusedRecently> refused_recently;
  std::string agent_version;
  std::vector<CertificateExpiry> certificates;  // at most kMaxCertificates are written
  std::optional<NodeVitals> node;               // none before the first health round
  std::optional<MeshSummary> linkerd;           // none without linkerd, or before its first pass
};

// The CRD's maxItems for status.certificates.
inline constexpr std::size_t kMaxCertificates = 16;

// The "status" object: what the EdgeNode's status holds, and what
// `tetherctl status` reads from the local socket.
//   {"observedGeneration", "agentVersion", "firewall": {"sources", "backend",
//    "refusedRecently": {"source", "ports", "since"}},
//    "conditions": [...], "certificates": [{"name", "role", "subject",
//    "notAfter"}], "node": {"load1", "load5", "load15",
//    "memoryAvailableBytes", "memoryTotalBytes", "disk": [{"path",
//    "availableBytes", "totalBytes"}], "uptimeSeconds", "lastResumeTime"},
//    "linkerd": {"meshedProxies", "expiredProxies", "unreadableProxies"}}
// "node" is left out until there are facts, "lastResumeTime" until a resume,
// "linkerd" until the meshed proxies were looked at.
boost::json::object status_object(const NodeStatus& status);

// The body of PATCH .../edgenodes/NAME/status as application/merge-patch+json:
// {"status": status_object(status)}. A merge patch replaces a list whole,
// which is what conditions needs: a condition tetherd no longer reports
// disappears. Without linkerd, "linkerd": null removes its counts; without
// a finding, "refusedRecently": null removes the last one.
boost::json::object status_patch(const NodeStatus& status);

// When to write status: at once when it changed, but for the node's vitals
// (load, free memory and disk, uptime: they change every round); otherwise
// once per report interval, as kubelet reports an unchanged node status
// every nodeStatusReportFrequency (5 minutes) and leaves "alive" to its
// Lease. With the Lease's 6 requests a minute, that keeps a node at its
// budget of 7 (the simulation counts them). Judged on the wall clock passed
// in, which keeps moving across a suspend.
inline constexpr Duration kStatusReportInterval = std::chrono::minutes(5);
class StatusPublisher {
 public:
  explicit StatusPublisher(Duration interval) : interval_(interval) {}

  // True when nothing has been written yet, when `patch` differs from the
  // last one written in more than the vitals, when `interval` has passed
  // since that write, or when
  // the wall clock went back before it (an NTP step: otherwise a clock set
  // back by a day would silence the node for a day).
  bool due(const boost::json::object& patch, WallTime now) const;

  // Records a successful write. Pass the `now` that due() was asked with:
  // a tick that comes exactly `interval` later is then due again. A failed
  // write records nothing, so the patch stays due.
  void written(const boost::json::object& patch, WallTime now);
  void set_interval(Duration interval) { interval_ = interval; }

 private:
  Duration interval_;
  std::optional<boost::json::object> last_patch_;  // the last written, without its vitals
  WallTime last_write_;
};

}  // namespace tetherd
