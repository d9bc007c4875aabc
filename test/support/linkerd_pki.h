#pragma once
// linkerd's PKI for tests, made in memory with OpenSSL 3 the way linkerd's
// docs make it with step:
//   step certificate create root.linkerd.cluster.local ca.crt ca.key
//     --profile root-ca --no-password --insecure
//   step certificate create identity.linkerd.cluster.local issuer.crt
//     issuer.key --profile intermediate-ca --not-after 8760h --no-password
//     --insecure --ca ca.crt --ca-key ca.key
// Validity is absolute (a WallTime), so a test can make a certificate that
// expired yesterday or one that expires in a second. Failures throw
// std::runtime_error: a broken fixture should stop the test loudly.

#include <string>

#include "agent/core/clock.h"

namespace tetherd::test {

struct PemPair {
  std::string cert_pem;
  std::string key_pem;  // PKCS#8
};

struct Validity {
  WallTime not_before;
  WallTime not_after;
};

enum class KeyKind { kEcdsaP256, kEcdsaP384, kRsa2048, kEd25519 };

struct AnchorOptions {
  std::string common_name = "root.linkerd.cluster.local";
  KeyKind key = KeyKind::kEcdsaP256;
  // false: basicConstraints CA:FALSE and keyUsage digitalSignature, for
  // tests that need something that is not a CA in the anchor's place.
  bool ca = true;
};

// A self-signed root as step's root-ca profile makes it: basicConstraints
// critical CA:TRUE pathlen:1, keyUsage critical keyCertSign+cRLSign,
// subjectKeyIdentifier.
PemPair make_linkerd_anchor(Validity validity, const AnchorOptions& options = {});

// An issuer under `anchor` as step's intermediate-ca profile makes it: CN
// identity.linkerd.cluster.local, basicConstraints critical CA:TRUE
// pathlen:0, keyUsage critical keyCertSign+cRLSign, SKID, AKID. KeyKind
// kRsa2048 gives the wrong key type; another anchor gives a broken chain.
PemPair make_linkerd_issuer(const PemPair& anchor, Validity validity,
                            KeyKind key = KeyKind::kEcdsaP256);

// A proxy's workload certificate under `issuer` (CA:FALSE, serverAuth and
// clientAuth, the CN as a DNS name), for chains of three.
PemPair make_linkerd_workload(const PemPair& issuer, Validity validity,
                              const std::string& common_name);

// The usual pair, made at `now`: the anchor valid ten years around it, the
// issuer 8760h from `now`.
struct LinkerdChain {
  PemPair anchor;
  PemPair issuer;
};
LinkerdChain make_linkerd_chain(WallTime now);

// The same key in another PEM form, for the parsers' tests.
enum class KeyEncoding {
  kPkcs8,           // "PRIVATE KEY"
  kTypeSpecific,    // "EC PRIVATE KEY" (SEC1) or "RSA PRIVATE KEY" (PKCS#1)
  kEncryptedPkcs8,  // "ENCRYPTED PRIVATE KEY", passphrase "secret"
  kEncryptedLegacy  // "EC PRIVATE KEY" with "Proc-Type: 4,ENCRYPTED"
};
std::string reencode_key(const std::string& key_pem, KeyEncoding encoding);

}  // namespace tetherd::test
