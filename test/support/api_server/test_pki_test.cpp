// The test PKI: what it issues verifies as real certificates do.

#include "test/support/test_pki.h"

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace tetherd::test {
namespace {

using X509Ptr = std::unique_ptr<X509, decltype(&X509_free)>;

X509Ptr parse(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509Ptr cert(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), &X509_free);
  BIO_free(bio);
  return cert;
}

// X509_V_OK or why `leaf` does not chain to `ca`.
int verify(const std::string& ca_pem, const std::string& leaf_pem) {
  X509Ptr ca = parse(ca_pem);
  X509Ptr leaf = parse(leaf_pem);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf.get(), nullptr);
  int result = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return result;
}

TEST(TestPki, CaIsACertificateAuthority) {
  TestCa ca("pki test CA");
  X509Ptr cert = parse(ca.cert_pem());
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_NE(X509_get_extension_flags(cert.get()) & EXFLAG_SS, 0u);
  EXPECT_NE(X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN, 0u);
  EXPECT_NE(ca.key_pem().find("BEGIN PRIVATE KEY"), std::string::npos);
}

TEST(TestPki, LeafChainsToItsCaWithNamesAndGroups) {
  TestCa ca;
  LeafOptions options;
  options.common_name = "tetherd:node-a";
  options.organizations = {"tetherd:nodes", "system:authenticated-ish"};
  options.dns_names = {"localhost"};
  options.ip_addresses = {"127.0.0.1", "::1"};
  IssuedCert leaf = ca.issue(options);
  EXPECT_EQ(verify(ca.cert_pem(), leaf.cert_pem), X509_V_OK);

  X509Ptr cert = parse(leaf.cert_pem);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "127.0.0.1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(cert.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "localhost", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_host(cert.get(), "example.com", 0, 0, nullptr), 0);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  EXPECT_EQ(X509_NAME_entry_count(subject), 3);
  char cn[64];
  X509_NAME_get_text_by_NID(subject, NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "tetherd:node-a");
  EXPECT_NE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_CLIENT, 0u);
  EXPECT_NE(X509_get_extended_key_usage(cert.get()) & XKU_SSL_SERVER, 0u);
}

TEST(TestPki, ExpiredLeafFailsVerification) {
  TestCa ca;
  LeafOptions options;
  options.common_name = "expired";
  options.not_before_offset = -std::chrono::hours(2);
  options.lifetime = std::chrono::hours(1);
  EXPECT_EQ(verify(ca.cert_pem(), ca.issue(options).cert_pem), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST(TestPki, LeafFromAnotherCaDoesNotVerify) {
  TestCa ca;
  TestCa other("another CA");
  LeafOptions options;
  options.common_name = "stranger";
  EXPECT_NE(verify(ca.cert_pem(), other.issue(options).cert_pem), X509_V_OK);
}

TEST(TestPki, SerialsDiffer) {
  TestCa ca;
  LeafOptions options;
  options.common_name = "twice";
  X509Ptr a = parse(ca.issue(options).cert_pem);
  X509Ptr b = parse(ca.issue(options).cert_pem);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(a.get()), X509_get0_serialNumber(b.get())), 0);
}

}  // namespace
}  // namespace tetherd::test
