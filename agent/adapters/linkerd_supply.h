#pragma once
// What the cloud supplies for linkerd, checked before anything of it is
// written into the local k3s: the issuer (a kubernetes.io/tls Secret that
// cert-manager keeps renewed there, so the trust anchor's key never leaves
// the cloud) and the trust bundle (a ConfigMap key that trust-manager
// writes). Each is taken whole or not at all; an error says why, naming
// the object, and what is in force stays.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "agent/adapters/x509.h"
#include "agent/core/certificate.h"
#include "agent/core/clock.h"
#include "agent/core/linkerd_objects.h"
#include "agent/core/result.h"

namespace tetherd {

// The name every linkerd issuer carries: the identity controller refuses
// any other.
inline constexpr std::string_view kIssuerCommonName = "identity.linkerd.cluster.local";

// Lower-case hex SHA-256 of the bundle's text exactly as stored: what
// linkerd's proxy injector writes in a pod's linkerd.io/trust-root-sha256.
std::string trust_bundle_sha256(std::string_view pem);

struct TrustBundle {
  std::string pem;
  std::string sha256;
  std::vector<x509::Certificate> roots;
  std::vector<CertificateInfo> described;
};

// PEM, certificates only (a private key in a bundle is refused: it would be
// published to every pod), at least one, each a CA, and not every one
// expired at `now`. `where` names the source in errors.
Result<TrustBundle> parse_trust_bundle(std::string_view pem, WallTime now, std::string_view where);

struct SuppliedIssuer {
  IssuerSecret secret;   // as the cloud holds it
  CertificateInfo info;  // tls.crt's first certificate
  std::size_t root = 0;  // the index in `roots` it chains to
};

// The cloud's issuer, checked whole: CN identity.linkerd.cluster.local, a
// CA with pathlen 0 (or none, as cert-manager makes it), an ECDSA P-256 key (linkerd's identity
// controller takes no other), the key in tls.key its own, chaining to one of `roots` (the local
// trust bundle) valid at `now` through intermediates valid at `now`, itself valid at `now` (not
// before its start, not after its end).
Result<SuppliedIssuer> check_supplied_issuer(IssuerSecret secret,
                                             const std::vector<x509::Certificate>& roots,
                                             WallTime now, std::string_view where);

// Whether `issuer_pem`'s first certificate chains to one of `roots`.
bool chains_to_any(std::string_view issuer_pem, const std::vector<x509::Certificate>& roots);

}  // namespace tetherd
