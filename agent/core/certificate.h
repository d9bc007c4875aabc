#pragma once
// What tetherd knows about an X.509 certificate, as plain data: the pure
// certificate policy (issuer_policy.h) judges these values, never OpenSSL
// objects, so a three-day suspend is a table row. adapters/x509.h fills them.

#include <optional>
#include <string>

#include "agent/core/clock.h"

namespace tetherd {

struct CertificateInfo {
  // One-line RFC 2253 form, most specific RDN first:
  // "CN=identity.linkerd.cluster.local". Bytes outside printable ASCII are
  // escaped (\C3\A9), so the text is safe in a log line or a condition.
  std::string subject;
  std::string subject_cn;  // UTF-8; empty when the name has no CN
  std::string issuer;
  std::string issuer_cn;
  // Both ends are inside the validity period (RFC 5280). A date beyond what
  // WallTime holds (9999-12-31, "no well-defined expiration") is clamped to
  // WallTime's range.
  WallTime not_before;
  WallTime not_after;
  std::string key_type;  // "ECDSA P-256", "RSA 2048", "Ed25519", ...
  bool is_ca = false;    // basicConstraints CA:TRUE
  std::optional<int> path_len;
  // extendedKeyUsage absent, or listing clientAuth: usable as a TLS client.
  bool client_auth = true;
  std::string serial_hex;          // lower hex of its octets, colon-free
  std::string sha256_fingerprint;  // of the DER, lower hex, colon-free
  // Of the DER SubjectPublicKeyInfo, lower hex: what kubeadm's
  // --discovery-token-ca-cert-hash (and `tetherctl enroll --ca-pin`) pins.
  std::string spki_sha256;

  bool operator==(const CertificateInfo&) const = default;
};

}  // namespace tetherd
