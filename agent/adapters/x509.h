#pragma once
// X.509 certificates and private keys over OpenSSL 3, for linkerd's trust
// anchors and issuer. The bytes come from the cluster (a Secret, a
// ConfigMap) or from disk, so every parser is bounded and strict: a bundle
// holds CERTIFICATE blocks and whitespace, nothing else, and an error says
// which block of which object is wrong. Every function leaves OpenSSL's
// (thread-local) error queue empty, so a stale error never surfaces in an
// unrelated TLS handshake later.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/types.h>

#include "agent/core/certificate.h"
#include "agent/core/result.h"

namespace tetherd::x509 {

// A bundle of trust roots is a few kilobytes; these bounds only stop a wrong
// object from costing memory and time.
inline constexpr std::size_t kMaxBundleBytes = 1 << 20;
inline constexpr std::size_t kMaxBundleCertificates = 64;
inline constexpr std::size_t kMaxKeyBytes = 64 << 10;

// Shared owners of an OpenSSL object: a copy takes a reference (OpenSSL's
// own count), so a Certificate can sit in several bundles cheaply. Neither
// is ever null except after being moved from.
class Certificate {
 public:
  explicit Certificate(X509* adopted) : cert_(adopted) {}
  Certificate(const Certificate& other);
  Certificate& operator=(const Certificate& other);
  Certificate(Certificate&&) noexcept = default;
  Certificate& operator=(Certificate&&) noexcept = default;

  X509* native() const { return cert_.get(); }

 private:
  struct Free {
    void operator()(X509* cert) const;
  };
  std::unique_ptr<X509, Free> cert_;
};

class PrivateKey {
 public:
  explicit PrivateKey(EVP_PKEY* adopted) : key_(adopted) {}
  PrivateKey(const PrivateKey& other);
  PrivateKey& operator=(const PrivateKey& other);
  PrivateKey(PrivateKey&&) noexcept = default;
  PrivateKey& operator=(PrivateKey&&) noexcept = default;

  EVP_PKEY* native() const { return key_.get(); }

 private:
  struct Free {
    void operator()(EVP_PKEY* key) const;
  };
  std::unique_ptr<EVP_PKEY, Free> key_;
};

// A PEM bundle of one or more certificates, in order. `subject` names the
// source in errors: "linkerd-identity-issuer tls.crt: block 2 is not a
// certificate: its PEM label is \"EC PRIVATE KEY\"".
Result<std::vector<Certificate>> parse_certificates(std::string_view pem, std::string_view subject);

// One unencrypted private key in PEM: PKCS#8 ("PRIVATE KEY"), SEC1 ("EC
// PRIVATE KEY", optionally after the "EC PARAMETERS" block `openssl ecparam
// -genkey` writes) or PKCS#1 ("RSA PRIVATE KEY"). An encrypted key is
// refused: a daemon has no one to ask for the passphrase.
Result<PrivateKey> parse_private_key(std::string_view pem, std::string_view subject);

CertificateInfo describe(const Certificate& cert);

// Whether `key` is the private half of the certificate's public key.
bool key_matches(const Certificate& cert, const PrivateKey& key);

// Whether `cert` is a root: issued by itself, and signed by its own key
// (a certificate that merely carries a pinned key is not).
bool self_signed(const Certificate& cert);

// The SHA-256 of the key's public half (its SubjectPublicKeyInfo DER),
// lower hex: the matching certificate's CertificateInfo::spki_sha256. Tells
// one key from another without keeping the private half; "" on failure.
std::string public_key_sha256(const PrivateKey& key);

// The same words as CertificateInfo::key_type.
std::string key_type(const PrivateKey& key);

// Whether `leaf` chains to one of `anchors` (self-signed roots; a chain that
// ends at an intermediate is not trusted), through `intermediates` if need
// be. Structure and signatures only, under X509_V_FLAG_X509_STRICT; time is
// NOT checked: expiry is judged against the wall clock by
// core/issuer_policy.h, which can tell "expired" from "broken".
Result<void> verify_chain(const Certificate& leaf, const std::vector<Certificate>& anchors,
                          const std::vector<Certificate>& intermediates = {});

std::string to_pem(const Certificate& cert);
// PKCS#8, unencrypted: what linkerd's Secret holds in tls.key.
std::string to_pem(const PrivateKey& key);

// A key file that is readable by its owner alone (refuse_shared_key), at
// most kMaxKeyBytes. `what` says what it holds, e.g. "the linkerd trust
// anchor key".
Result<PrivateKey> load_private_key_file(const std::string& path, std::string_view what);

}  // namespace tetherd::x509
