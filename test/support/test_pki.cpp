#include "test/support/test_pki.h"

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
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
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

KeyPtr generate_key() {
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("generating an ECDSA P-256 key");
  return key;
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
  if (!cert) fail("reading the CA certificate");
  return cert;
}

KeyPtr key_from_pem(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  KeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) fail("reading the CA key");
  return key;
}

void set_random_serial(X509* cert) {
  // 159 bits: positive and at most 20 octets, as RFC 5280 asks.
  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 159, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr)
    fail("making a serial number");
}

void set_validity(X509* cert, std::chrono::seconds not_before_offset, std::chrono::seconds lifetime,
                  std::optional<std::chrono::system_clock::time_point> now) {
  std::time_t base =
      std::chrono::system_clock::to_time_t(now.value_or(std::chrono::system_clock::now()));
  if (X509_time_adj(X509_getm_notBefore(cert), static_cast<long>(not_before_offset.count()),
                    &base) == nullptr ||
      X509_time_adj(X509_getm_notAfter(cert),
                    static_cast<long>((not_before_offset + lifetime).count()), &base) == nullptr)
    fail("setting the validity period");
}

void add_name_entry(X509_NAME* name, const char* field, const std::string& value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                 0) != 1)
    fail(std::string("adding ") + field + "=" + value + " to a subject");
}

// `issuer` is the certificate that signs `cert` (itself for the CA): the
// authority key identifier is read from it.
void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1)
    fail(std::string("adding extension ") + OBJ_nid2sn(nid) + " = " + value);
}

X509Ptr new_certificate(EVP_PKEY* key) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1)
    fail("making a certificate");
  set_random_serial(cert.get());
  return cert;
}

void sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) fail("signing a certificate");
}

}  // namespace

TestCa::TestCa(std::string common_name) {
  KeyPtr key = generate_key();
  X509Ptr cert = new_certificate(key.get());
  set_validity(cert.get(), -std::chrono::hours(24), std::chrono::hours(24 * 365 * 10),
               std::nullopt);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  add_name_entry(subject, "CN", common_name);
  if (X509_set_issuer_name(cert.get(), subject) != 1) fail("setting the CA's issuer");
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always");
  sign(cert.get(), key.get());
  cert_pem_ = cert_to_pem(cert.get());
  key_pem_ = key_to_pem(key.get());
}

TestCa TestCa::from_pem(std::string cert_pem, std::string key_pem) {
  TestCa ca("unused");
  cert_from_pem(cert_pem);  // throws on what is not a certificate
  key_from_pem(key_pem);
  ca.cert_pem_ = std::move(cert_pem);
  ca.key_pem_ = std::move(key_pem);
  return ca;
}

IssuedCert TestCa::issue(const LeafOptions& options) const {
  X509Ptr ca_cert = cert_from_pem(cert_pem_);
  KeyPtr ca_key = key_from_pem(key_pem_);

  KeyPtr key = generate_key();
  X509Ptr cert = new_certificate(key.get());
  set_validity(cert.get(), options.not_before_offset, options.lifetime, options.now);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  for (const std::string& organization : options.organizations)
    add_name_entry(subject, "O", organization);
  if (!options.common_name.empty()) add_name_entry(subject, "CN", options.common_name);
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1)
    fail("setting a certificate's issuer");

  add_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature");
  std::string usages;
  if (options.server_auth) usages = "serverAuth";
  if (options.client_auth) usages += usages.empty() ? "clientAuth" : ",clientAuth";
  if (!usages.empty()) add_extension(cert.get(), ca_cert.get(), NID_ext_key_usage, usages);
  std::string alt_names;
  for (const std::string& dns : options.dns_names)
    alt_names += (alt_names.empty() ? "DNS:" : ",DNS:") + dns;
  for (const std::string& ip : options.ip_addresses)
    alt_names += (alt_names.empty() ? "IP:" : ",IP:") + ip;
  if (!alt_names.empty()) add_extension(cert.get(), ca_cert.get(), NID_subject_alt_name, alt_names);
  add_extension(cert.get(), ca_cert.get(), NID_subject_key_identifier, "hash");
  add_extension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  sign(cert.get(), ca_key.get());
  return IssuedCert{cert_to_pem(cert.get()), key_to_pem(key.get())};
}

std::string TestCa::sign_client_request(
    const std::string& csr_pem, std::chrono::seconds lifetime,
    std::optional<std::chrono::system_clock::time_point> now) const {
  BioPtr bio(BIO_new_mem_buf(csr_pem.data(), static_cast<int>(csr_pem.size())));
  ReqPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) fail("reading a certificate request");
  EVP_PKEY* public_key = X509_REQ_get0_pubkey(req.get());
  if (public_key == nullptr || X509_REQ_verify(req.get(), public_key) != 1)
    fail("checking a certificate request's signature");
  X509Ptr ca_cert = cert_from_pem(cert_pem_);
  KeyPtr ca_key = key_from_pem(key_pem_);
  X509Ptr cert = new_certificate(public_key);
  constexpr std::chrono::seconds kBackdate{300};
  set_validity(cert.get(), -kBackdate, lifetime + kBackdate, now);
  if (X509_set_subject_name(cert.get(), X509_REQ_get_subject_name(req.get())) != 1 ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get())) != 1)
    fail("naming a certificate");
  add_extension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature");
  add_extension(cert.get(), ca_cert.get(), NID_ext_key_usage, "clientAuth");
  add_extension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  sign(cert.get(), ca_key.get());
  return cert_to_pem(cert.get());
}

}  // namespace tetherd::test
