#pragma once
// One EdgeNode object as the control plane's API server sends it (an item of
// a list, or the object of a watch event), decoded into what tetherd acts on.
// Pure: no I/O, no exceptions.
//
// The decoder checks structure and sizes only. Whether each source is a
// CIDR, how many sources the node accepts (firewall.maxSources) and which
// ports it filters (firewall.ports) are decided later by firewall::validate,
// against the node's own configuration, so a bad update is refused whole in
// one place and FirewallInSync says why.
//
// Absent and JSON null are the same thing: an EdgeNode without
// spec.firewall.allowedSources asks for no sources beyond the static
// configuration, which is a valid wish. A member of the wrong type is an
// error whose message starts with its JSON path, e.g.
//   spec.firewall.allowedSources[3]: expected a string, got a number

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "agent/core/desired_sources.h"
#include "agent/core/result.h"

namespace tetherd {

inline constexpr std::string_view kEdgeNodeKind = "EdgeNode";
inline constexpr std::string_view kEdgeNodeApiVersion = "tetherd.io/v1alpha1";

// Bounds on what is decoded at all, so that a bogus object cannot make us
// allocate without limit (65536 sources of 64 bytes is 4 MiB at most). They
// are far above what a node accepts: the CRD says 4096 sources of 43 bytes
// and 16 ports, and firewall.maxSources applies later.
inline constexpr std::size_t kMaxAllowedSourcesDecoded = 65536;
inline constexpr std::size_t kMaxSourceBytes = 64;
inline constexpr std::size_t kMaxPortsDecoded = 1024;
// metadata.name and metadata.namespace are DNS names; spec.linkerd.rotate has
// the CRD's maxLength.
inline constexpr std::size_t kMaxNameBytes = 253;
inline constexpr std::size_t kMaxRotateBytes = 253;
// uid and resourceVersion are opaque and set by the server. An aggregating
// control plane (Karmada) may pack several clusters' versions into one
// resourceVersion, so this bound is generous.
inline constexpr std::size_t kMaxOpaqueBytes = 1024;

// spec.linkerd's references to objects in the node's namespace in the
// cloud, which bring linkerd's issuer and trust bundle from there (the
// anchor key stays in the cloud). A name is a DNS-1123 subdomain and a key
// a ConfigMap key, checked here: both end up in a request's path.
struct LinkerdRefs {
  // spec.linkerd.issuerSecretRef.name: a kubernetes.io/tls Secret (tls.crt,
  // tls.key, ca.crt) that cert-manager keeps renewed. "": the issuer is
  // minted locally (linkerd.trustAnchorKey), if at all.
  std::string issuer_secret;
  // spec.linkerd.trustBundleRef: a ConfigMap's key holding the PEM bundle
  // (what trust-manager's Bundle writes). "": the local bundle is left alone.
  std::string bundle_config_map;
  std::string bundle_key = "ca-bundle.crt";
  // spec.linkerd.trustBundleRef.rotationFinishing: the last step of an
  // anchor rotation, so the bundle may leave out the root of the issuer in
  // force.
  bool rotation_finishing = false;

  bool operator==(const LinkerdRefs&) const = default;
};

// The metadata tetherd needs and the spec it acts on.
struct EdgeNodeSpec {
  std::string name;
  std::string namespace_;             // "" when absent
  std::string uid;                    // "" when absent
  std::string resource_version;       // "" when absent
  std::int64_t generation = 0;        // 0 when absent; what status.observedGeneration echoes
  firewall::DesiredSources firewall;  // spec.firewall.allowedSources and .ports
  std::string rotate;                 // spec.linkerd.rotate, "" when absent
  LinkerdRefs linkerd;                // spec.linkerd's references
};

// kind and apiVersion are checked only when present: items of a list
// usually omit them.
Result<EdgeNodeSpec> decode_edge_node(const boost::json::object& object);

}  // namespace tetherd
