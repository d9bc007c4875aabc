#pragma once
// linkerd's identity objects in the local k3s cluster, as tetherd reads and
// writes them. Pure: JSON in, values out, no I/O.
//
//   ConfigMap linkerd-identity-trust-roots  data["ca-bundle.crt"]: the trust
//     anchors (PEM bundle), shared by every linked cluster;
//   Secret linkerd-identity-issuer, in one of two layouts:
//     kTls:    tls.crt, tls.key, ca.crt  (linkerd 2.9 and later, cert-manager)
//     kLegacy: crt.pem, key.pem          (older installs)
//   Deployment linkerd-identity: restarted (as `kubectl rollout restart`
//     does) when the identity controller does not say it reloaded;
//   Event reason IssuerUpdated: how the identity controller says it did.
//
// A Secret's values arrive base64-encoded; errors name the key and object.

#include <cstddef>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

inline constexpr std::string_view kIssuerSecretName = "linkerd-identity-issuer";
inline constexpr std::string_view kTrustRootsConfigMapName = "linkerd-identity-trust-roots";
inline constexpr std::string_view kTrustRootsKey = "ca-bundle.crt";
inline constexpr std::string_view kIdentityDeploymentName = "linkerd-identity";
inline constexpr std::string_view kIssuerUpdatedReason = "IssuerUpdated";
// kubectl rollout restart sets this pod template annotation to the time.
inline constexpr std::string_view kRestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt";

// A PEM value larger than this is not a certificate or a key.
inline constexpr std::size_t kMaxPemValueBytes = 256 << 10;

enum class IssuerLayout { kTls, kLegacy };
std::string_view to_string(IssuerLayout layout);  // "tls.crt/tls.key" or "crt.pem/key.pem"

struct IssuerSecret {
  IssuerLayout layout = IssuerLayout::kTls;
  std::string cert_pem;
  std::string key_pem;
  std::string ca_pem;  // kTls only, and may be absent
  std::string resource_version;
};

// `where` names the object in errors (the cloud's Secret has its own name).
Result<IssuerSecret> decode_issuer_secret(
    const boost::json::object& secret, std::string_view where = "Secret linkerd-identity-issuer");
// The trust anchors' PEM bundle, as text: data[key].
Result<std::string> decode_trust_roots(
    const boost::json::object& config_map,
    std::string_view where = "ConfigMap linkerd-identity-trust-roots",
    std::string_view key = kTrustRootsKey);

// The Secret as read, with the new issuer in the layout it had: its
// metadata (resourceVersion included, for the optimistic write), type and
// any other keys kept.
boost::json::object issuer_secret_update(boost::json::object secret, IssuerLayout layout,
                                         std::string_view cert_pem, std::string_view key_pem,
                                         std::string_view anchor_pem);

// The ConfigMap as read, with data["ca-bundle.crt"] replaced: its metadata
// (resourceVersion included, for the optimistic write) and other keys kept.
boost::json::object trust_roots_update(boost::json::object config_map, std::string_view bundle_pem);

// The merge patch that restarts a Deployment's pods.
boost::json::object restart_patch(WallTime now);

// Whether an Event is the identity controller's IssuerUpdated from `since`
// on. Event times are whole seconds (lastTimestamp), so `since` is floored.
// A recurring Event keeps its creationTimestamp: the time it says it last
// happened decides.
bool issuer_updated_since(const boost::json::object& event, WallTime since);

// Whether a Deployment's pods were restarted (restart_patch(), `kubectl
// rollout restart`) after `since` (in a later second: the annotation has
// whole seconds, and one in the write's second may be older), and not after
// `until`: a restart stamped by a clock that was ahead (and has been
// stepped back since) says nothing of when it was.
bool restarted_since(const boost::json::object& deployment, WallTime since, WallTime until);

}  // namespace tetherd
