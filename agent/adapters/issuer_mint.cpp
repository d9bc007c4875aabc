#include "agent/adapters/issuer_mint.h"

#include <cstdint>
#include <ctime>
#include <memory>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/adapters/openssl_handles.h"
#include "agent/core/issuer_policy.h"
#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

using openssl::Deleter;
using openssl::ErrorQueueScope;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using AkidPtr = std::unique_ptr<AUTHORITY_KEYID, Deleter<AUTHORITY_KEYID_free>>;

Error failed(const std::string& step) {
  const std::string reason = openssl::take_error_reason();
  return make_error("minting the linkerd issuer: " + step +
                    (reason.empty() ? std::string() : ": " + reason));
}

// Whole seconds, rounded down: notAfter may then only move earlier, never
// past the anchor's end.
std::time_t unix_seconds(WallTime t) {
  return static_cast<std::time_t>(
      std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count());
}

Result<void> add_extension(X509* cert, X509* anchor, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, anchor, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    return failed(std::string("adding ") + OBJ_nid2sn(nid));
  return {};
}

// The anchor's own subjectKeyIdentifier, which is what verifiers match the
// AKID against; an anchor without one gets RFC 5280's method 1 (SHA-1 of
// its public key), which is what `openssl` and step would have put there.
Result<void> add_authority_key_id(X509* cert, X509* anchor) {
  AkidPtr akid(AUTHORITY_KEYID_new());
  if (!akid) return failed("making authorityKeyIdentifier");
  if (const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id(anchor)) {
    akid->keyid = ASN1_OCTET_STRING_dup(skid);
  } else {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (X509_pubkey_digest(anchor, EVP_sha1(), digest, &size) == 1) {
      akid->keyid = ASN1_OCTET_STRING_new();
      if (akid->keyid != nullptr &&
          ASN1_OCTET_STRING_set(akid->keyid, digest, static_cast<int>(size)) != 1) {
        ASN1_OCTET_STRING_free(akid->keyid);
        akid->keyid = nullptr;
      }
    }
  }
  if (akid->keyid == nullptr ||
      X509_add1_ext_i2d(cert, NID_authority_key_identifier, akid.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return failed("adding authorityKeyIdentifier");
  return {};
}

Result<void> check_anchor(const x509::Certificate& anchor, const x509::PrivateKey& anchor_key,
                          const CertificateInfo& info, WallTime now) {
  const std::string name = "trust anchor " + info.subject;
  if (!x509::key_matches(anchor, anchor_key))
    return make_error("the trust anchor key does not belong to " + name +
                      "; refusing to sign an issuer no one would trust");
  if (!info.is_ca) return make_error(name + " is not a CA (no basicConstraints CA:TRUE)");
  const std::uint32_t usage = X509_get_key_usage(anchor.native());
  if ((usage & KU_KEY_CERT_SIGN) == 0)
    return make_error(name + " may not sign certificates (keyUsage lacks keyCertSign)");
  if (info.path_len == 0)
    return make_error(name + " has pathlen:0, so it may not sign another CA such as the issuer");
  if (now > info.not_after)
    return make_error(name + " expired at " + format_kube_time(info.not_after) +
                      "; tetherd never makes a trust anchor: supply a new trust bundle");
  return {};
}

}  // namespace

Result<MintedIssuer> mint_issuer(const x509::Certificate& anchor,
                                 const x509::PrivateKey& anchor_key, WallTime now,
                                 Duration validity, Duration backdate) {
  if (anchor.native() == nullptr || anchor_key.native() == nullptr)
    return make_error("minting the linkerd issuer: no trust anchor or no key");
  const CertificateInfo anchor_info = x509::describe(anchor);
  if (auto ok = check_anchor(anchor, anchor_key, anchor_info, now); !ok) return ok.error();
  if (validity <= Duration::zero() || backdate < Duration::zero())
    return make_error(
        "minting the linkerd issuer: the validity must be positive, the backdate not negative");

  ErrorQueueScope queue;
  x509::PrivateKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key.native() == nullptr) return failed("generating an ECDSA P-256 key");
  x509::Certificate cert(X509_new());
  X509* x = cert.native();
  if (x == nullptr || X509_set_version(x, X509_VERSION_3) != 1 ||
      X509_set_pubkey(x, key.native()) != 1)
    return failed("making the certificate");

  // The top bit set: exactly 128 random bits, so never zero, and positive
  // (a DER INTEGER of 17 octets, within RFC 5280's 20).
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x)) == nullptr)
    return failed("making a serial number");

  const WallTime not_after = issuer_not_after(now, validity, anchor_info.not_after);
  if (ASN1_TIME_set(X509_getm_notBefore(x), unix_seconds(now - backdate)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x), unix_seconds(not_after)) == nullptr)
    return failed("setting the validity period");

  X509_NAME* subject = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(
          subject, "CN", MBSTRING_UTF8,
          reinterpret_cast<const unsigned char*>(kLinkerdIssuerCommonName.data()),
          static_cast<int>(kLinkerdIssuerCommonName.size()), -1, 0) != 1 ||
      X509_set_issuer_name(x, X509_get_subject_name(anchor.native())) != 1)
    return failed("setting the names");

  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                            std::pair{NID_key_usage, "critical,keyCertSign,cRLSign"},
                            std::pair{NID_subject_key_identifier, "hash"}}) {
    if (auto ok = add_extension(x, anchor.native(), nid, value); !ok) return ok.error();
  }
  if (auto ok = add_authority_key_id(x, anchor.native()); !ok) return ok.error();

  // EdDSA signs the message itself, so it takes no digest.
  const int anchor_type = EVP_PKEY_get_base_id(anchor_key.native());
  const EVP_MD* digest =
      anchor_type == EVP_PKEY_ED25519 || anchor_type == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
  if (X509_sign(x, anchor_key.native(), digest) <= 0) return failed("signing");

  // What we hand over must be what a proxy will accept.
  if (auto chained = x509::verify_chain(cert, {anchor}); !chained)
    return make_error("minting the linkerd issuer: the result does not verify: " +
                      chained.error().message);
  MintedIssuer minted{x509::to_pem(cert), x509::to_pem(key), x509::describe(cert)};
  if (minted.cert_pem.empty() || minted.key_pem.empty())
    return make_error("minting the linkerd issuer: writing PEM failed");
  return minted;
}

}  // namespace tetherd
