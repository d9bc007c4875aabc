#pragma once
// A new linkerd issuer, signed by the trust anchor's key: what `step
// certificate create identity.linkerd.cluster.local --profile
// intermediate-ca` makes, and what linkerd's identity controller expects in
// Secret linkerd-identity-issuer. Writing the Secret is the kube side's job.
//
// The certificate: X.509 v3, ECDSA P-256 key (fresh), subject
// CN=identity.linkerd.cluster.local, issuer = the anchor's subject, a random
// 128-bit positive serial, SHA-256 signature, and exactly these extensions:
//   basicConstraints        critical  CA:TRUE, pathlen:0
//   keyUsage                critical  keyCertSign, cRLSign
//   subjectKeyIdentifier              SHA-1 of the new public key
//   authorityKeyIdentifier            keyid: the anchor's subjectKeyIdentifier
// Validity comes from the injected `now`, never the system clock: from
// now - backdate (tolerating peers whose clocks run a little behind) to
// issuer_not_after(now, validity, anchor's end).

#include <string>
#include <string_view>

#include "agent/adapters/x509.h"
#include "agent/core/certificate.h"
#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

inline constexpr std::string_view kLinkerdIssuerCommonName = "identity.linkerd.cluster.local";

struct MintedIssuer {
  std::string cert_pem;
  std::string key_pem;  // PKCS#8, unencrypted: Secret key tls.key
  CertificateInfo info;
};

// Refuses (and makes nothing) when anchor_key is not the anchor's key, the
// anchor is not a CA that may sign a CA below it, the anchor has expired at
// `now`, or validity is not positive. The result is verified against the
// anchor before it is returned.
Result<MintedIssuer> mint_issuer(const x509::Certificate& anchor,
                                 const x509::PrivateKey& anchor_key, WallTime now,
                                 Duration validity, Duration backdate = std::chrono::minutes(5));

}  // namespace tetherd
