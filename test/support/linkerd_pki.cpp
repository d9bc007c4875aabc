#include "test/support/linkerd_pki.h"

#include <ctime>
#include <memory>
#include <stdexcept>
#include <string_view>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/adapters/openssl_handles.h"

namespace tetherd::test {
namespace {

using openssl::Deleter;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;

[[noreturn]] void fail(std::string_view what) {
  std::string message(what);
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    message += ": ";
    message += text;
  }
  throw std::runtime_error(message);
}

KeyPtr generate_key(KeyKind kind) {
  EVP_PKEY* key = nullptr;
  switch (kind) {
    case KeyKind::kEcdsaP256:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyKind::kEcdsaP384:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
      break;
    case KeyKind::kRsa2048:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
      break;
    case KeyKind::kEd25519:
      key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (key == nullptr) fail("generating a key");
  return KeyPtr(key);
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string cert_to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("writing a certificate as PEM");
  return bio_text(bio.get());
}

std::string key_to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    fail("writing a private key as PEM");
  return bio_text(bio.get());
}

X509Ptr cert_from_pem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) fail("reading a certificate");
  return cert;
}

KeyPtr key_from_pem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) fail("reading a key");
  return key;
}

std::time_t unix_seconds(WallTime t) {
  return static_cast<std::time_t>(
      std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count());
}

// A fresh certificate for `key`: v3, step's 128-bit random serial, the
// validity and the subject CN; the caller adds the issuer and extensions.
X509Ptr new_certificate(EVP_PKEY* key, Validity validity, const std::string& common_name) {
  X509Ptr cert(X509_new());
  BnPtr serial(BN_new());
  if (!cert || !serial || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      BN_rand(serial.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr)
    fail("making a certificate");
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), unix_seconds(validity.not_before)) ==
          nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), unix_seconds(validity.not_after)) == nullptr)
    fail("setting the validity period");
  if (X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.c_str()), -1,
                                 -1, 0) != 1)
    fail("setting the subject");
  return cert;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    fail(std::string("adding extension ") + OBJ_nid2sn(nid) + " = " + value);
}

void sign(X509* cert, EVP_PKEY* key) {
  const int type = EVP_PKEY_get_base_id(key);
  const EVP_MD* md = type == EVP_PKEY_ED25519 || type == EVP_PKEY_ED448 ? nullptr : EVP_sha256();
  if (X509_sign(cert, key, md) <= 0) fail("signing a certificate");
}

// A certificate under `parent` (its subject becomes our issuer, its key signs).
PemPair issue(const PemPair& parent, Validity validity, const std::string& common_name,
              KeyKind kind, bool ca) {
  X509Ptr parent_cert = cert_from_pem(parent.cert_pem);
  KeyPtr parent_key = key_from_pem(parent.key_pem);
  KeyPtr key = generate_key(kind);
  X509Ptr cert = new_certificate(key.get(), validity, common_name);
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(parent_cert.get())) != 1)
    fail("setting the issuer");
  X509* p = parent_cert.get();
  if (ca) {
    add_extension(cert.get(), p, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    add_extension(cert.get(), p, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), p, NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), p, NID_key_usage, "critical,digitalSignature");
    add_extension(cert.get(), p, NID_ext_key_usage, "serverAuth,clientAuth");
    add_extension(cert.get(), p, NID_subject_alt_name, "DNS:" + common_name);
  }
  add_extension(cert.get(), p, NID_subject_key_identifier, "hash");
  add_extension(cert.get(), p, NID_authority_key_identifier, "keyid:always");
  sign(cert.get(), parent_key.get());
  return PemPair{cert_to_pem(cert.get()), key_to_pem(key.get())};
}

}  // namespace

PemPair make_linkerd_anchor(Validity validity, const AnchorOptions& options) {
  KeyPtr key = generate_key(options.key);
  X509Ptr cert = new_certificate(key.get(), validity, options.common_name);
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1)
    fail("setting the anchor's issuer");
  if (options.ca) {
    add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:1");
    add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:FALSE");
    add_extension(cert.get(), cert.get(), NID_key_usage, "critical,digitalSignature");
  }
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  sign(cert.get(), key.get());
  return PemPair{cert_to_pem(cert.get()), key_to_pem(key.get())};
}

PemPair make_linkerd_issuer(const PemPair& anchor, Validity validity, KeyKind key) {
  return issue(anchor, validity, "identity.linkerd.cluster.local", key, true);
}

PemPair make_linkerd_workload(const PemPair& issuer, Validity validity,
                              const std::string& common_name) {
  return issue(issuer, validity, common_name, KeyKind::kEcdsaP256, false);
}

LinkerdChain make_linkerd_chain(WallTime now) {
  using std::chrono::hours;
  LinkerdChain chain;
  chain.anchor = make_linkerd_anchor({now - hours(24 * 365), now + hours(24 * 365 * 9)});
  chain.issuer = make_linkerd_issuer(chain.anchor, {now, now + hours(8760)});
  return chain;
}

std::string reencode_key(const std::string& key_pem, KeyEncoding encoding) {
  KeyPtr key = key_from_pem(key_pem);
  BioPtr bio(BIO_new(BIO_s_mem()));
  static const char kPassphrase[] = "secret";
  auto* pass = reinterpret_cast<const unsigned char*>(kPassphrase);
  const int pass_size = static_cast<int>(sizeof kPassphrase - 1);
  int ok = 0;
  if (bio) {
    switch (encoding) {
      case KeyEncoding::kPkcs8:
        ok = PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
        break;
      case KeyEncoding::kTypeSpecific:
        ok = PEM_write_bio_PrivateKey_traditional(bio.get(), key.get(), nullptr, nullptr, 0,
                                                  nullptr, nullptr);
        break;
      case KeyEncoding::kEncryptedPkcs8:
        ok = PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), kPassphrase,
                                           pass_size, nullptr, nullptr);
        break;
      case KeyEncoding::kEncryptedLegacy:
        ok = PEM_write_bio_PrivateKey_traditional(bio.get(), key.get(), EVP_aes_256_cbc(), pass,
                                                  pass_size, nullptr, nullptr);
        break;
    }
  }
  if (ok != 1) fail("re-encoding a private key");
  return bio_text(bio.get());
}

}  // namespace tetherd::test
