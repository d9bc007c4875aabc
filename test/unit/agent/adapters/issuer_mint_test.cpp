// A new linkerd issuer under a real anchor: exactly the extensions step's
// intermediate-ca profile gives, dates from the injected clock, capped at
// the anchor's end; accepted by `openssl verify -x509_strict`; and refused
// under a wrong key, a non-CA or an expired anchor.

#include "agent/adapters/issuer_mint.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/adapters/subprocess.h"
#include "test/support/linkerd_pki.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

const WallTime kNow{seconds(1795253405)};  // 2026-11-21T09:30:05Z

x509::Certificate cert_of(const std::string& pem) {
  auto certs = x509::parse_certificates(pem, "test");
  if (!certs || certs->size() != 1) throw std::runtime_error("not one certificate");
  return (*certs)[0];
}

x509::PrivateKey key_of(const std::string& pem) {
  auto key = x509::parse_private_key(pem, "test");
  if (!key) throw std::runtime_error(key.error().message);
  return *key;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class IssuerMintTest : public ::testing::Test {
 protected:
  test::LinkerdChain chain = test::make_linkerd_chain(kNow);
  x509::Certificate anchor = cert_of(chain.anchor.cert_pem);
  x509::PrivateKey anchor_key = key_of(chain.anchor.key_pem);
};

TEST_F(IssuerMintTest, MakesWhatLinkerdExpects) {
  auto minted = mint_issuer(anchor, anchor_key, kNow, hours(8760));
  ASSERT_TRUE(minted.has_value()) << minted.error().message;
  const x509::Certificate cert = cert_of(minted->cert_pem);
  const CertificateInfo info = x509::describe(cert);
  EXPECT_EQ(info, minted->info);
  EXPECT_EQ(info.subject, "CN=identity.linkerd.cluster.local");
  EXPECT_EQ(info.issuer, "CN=root.linkerd.cluster.local");
  EXPECT_EQ(info.not_before, kNow - minutes(5));
  EXPECT_EQ(info.not_after, kNow + hours(8760));
  EXPECT_EQ(info.key_type, "ECDSA P-256");
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.path_len, 0);
  EXPECT_EQ(info.serial_hex.size(), 32u) << "128 random bits, the top one set";

  X509* x = cert.native();
  EXPECT_EQ(X509_get_version(x), X509_VERSION_3);
  EXPECT_EQ(X509_get_signature_nid(x), NID_ecdsa_with_SHA256);
  ASSERT_EQ(X509_get_ext_count(x), 4);
  std::set<std::pair<int, bool>> extensions;
  for (int i = 0; i < 4; ++i) {
    X509_EXTENSION* ext = X509_get_ext(x, i);
    extensions.insert(
        {OBJ_obj2nid(X509_EXTENSION_get_object(ext)), X509_EXTENSION_get_critical(ext) == 1});
  }
  const std::set<std::pair<int, bool>> expected = {{NID_basic_constraints, true},
                                                   {NID_key_usage, true},
                                                   {NID_subject_key_identifier, false},
                                                   {NID_authority_key_identifier, false}};
  EXPECT_EQ(extensions, expected);
  EXPECT_EQ(X509_get_key_usage(x), static_cast<uint32_t>(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EXPECT_EQ(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(x),
                                  X509_get0_subject_key_id(anchor.native())),
            0);
  unsigned char sha1[EVP_MAX_MD_SIZE];
  unsigned int sha1_size = 0;
  ASSERT_EQ(X509_pubkey_digest(x, EVP_sha1(), sha1, &sha1_size), 1);
  const ASN1_OCTET_STRING* skid = X509_get0_subject_key_id(x);
  ASSERT_NE(skid, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(skid)),
                        static_cast<std::size_t>(ASN1_STRING_length(skid))),
            std::string(reinterpret_cast<const char*>(sha1), sha1_size));

  EXPECT_TRUE(minted->key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
  const x509::PrivateKey key = key_of(minted->key_pem);
  EXPECT_EQ(x509::key_type(key), "ECDSA P-256");
  EXPECT_TRUE(x509::key_matches(cert, key));
  EXPECT_FALSE(x509::key_matches(cert, anchor_key));
  auto chained = x509::verify_chain(cert, {anchor});
  EXPECT_TRUE(chained.has_value()) << chained.error().message;
}

TEST_F(IssuerMintTest, NeverOutlivesTheAnchorAndUsesTheInjectedClock) {
  const auto short_anchor = test::make_linkerd_anchor({kNow - hours(1), kNow + hours(100)});
  auto capped =
      mint_issuer(cert_of(short_anchor.cert_pem), key_of(short_anchor.key_pem), kNow, hours(8760));
  ASSERT_TRUE(capped.has_value()) << capped.error().message;
  EXPECT_EQ(capped->info.not_after, kNow + hours(100));

  // A clock between seconds: the dates round down, never past the anchor.
  auto odd = mint_issuer(anchor, anchor_key, kNow + milliseconds(700), hours(24), minutes(1));
  ASSERT_TRUE(odd.has_value()) << odd.error().message;
  EXPECT_EQ(odd->info.not_before, kNow - minutes(1));
  EXPECT_EQ(odd->info.not_after, kNow + hours(24));

  auto again = mint_issuer(anchor, anchor_key, kNow + milliseconds(700), hours(24), minutes(1));
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(again->info.serial_hex, odd->info.serial_hex);
  EXPECT_NE(again->key_pem, odd->key_pem);
}

TEST_F(IssuerMintTest, OpensslVerifyAcceptsIt) {
  const std::string openssl = "/usr/bin/openssl";
  if (!std::filesystem::exists(openssl)) GTEST_SKIP() << "no openssl; run scripts/install-deps";
  // `openssl verify` judges time by the system clock, so mint at its time.
  const WallTime now = std::chrono::system_clock::now();
  const auto root = test::make_linkerd_anchor({now - hours(1), now + hours(24 * 365)});
  auto minted = mint_issuer(cert_of(root.cert_pem), key_of(root.key_pem), now, hours(8760));
  ASSERT_TRUE(minted.has_value()) << minted.error().message;

  test::TempDir dir;
  std::ofstream(dir.file("anchor.pem")) << root.cert_pem;
  std::ofstream(dir.file("issuer.pem")) << minted->cert_pem;
  auto run = run_command({openssl, "verify", "-x509_strict", "-no-CApath", "-no-CAstore", "-CAfile",
                          dir.file("anchor.pem"), dir.file("issuer.pem")});
  ASSERT_TRUE(run.has_value()) << run.error().message;
  EXPECT_EQ(run->exit_code, 0) << run->out << run->err;
  EXPECT_EQ(run->out, dir.file("issuer.pem") + ": OK\n") << run->err;
}

TEST_F(IssuerMintTest, Refusals) {
  const auto refused = [](const Result<MintedIssuer>& r) {
    return r.has_value() ? std::string("minted") : r.error().message;
  };
  const auto other = test::make_linkerd_anchor({kNow - hours(1), kNow + hours(100)});
  EXPECT_TRUE(contains(refused(mint_issuer(anchor, key_of(other.key_pem), kNow, hours(24))),
                       "the trust anchor key does not belong to trust anchor "
                       "CN=root.linkerd.cluster.local"));

  const auto not_ca =
      test::make_linkerd_anchor({kNow - hours(1), kNow + hours(100)}, {.ca = false});
  EXPECT_EQ(refused(mint_issuer(cert_of(not_ca.cert_pem), key_of(not_ca.key_pem), kNow, hours(24))),
            "trust anchor CN=root.linkerd.cluster.local is not a CA (no basicConstraints CA:TRUE)");

  const auto expired = test::make_linkerd_anchor({kNow - hours(100), kNow - seconds(1)});
  const std::string message =
      refused(mint_issuer(cert_of(expired.cert_pem), key_of(expired.key_pem), kNow, hours(24)));
  EXPECT_TRUE(contains(message, "expired at 2026-11-21T09:30:04Z")) << message;
  EXPECT_TRUE(
      mint_issuer(cert_of(expired.cert_pem), key_of(expired.key_pem), kNow - seconds(1), hours(1))
          .has_value())
      << "at its notAfter the anchor is still valid";

  // An issuer under an issuer (pathlen:0) would not verify: refused up front.
  EXPECT_TRUE(contains(refused(mint_issuer(cert_of(chain.issuer.cert_pem),
                                           key_of(chain.issuer.key_pem), kNow, hours(24))),
                       "pathlen:0"));
  EXPECT_TRUE(contains(refused(mint_issuer(anchor, anchor_key, kNow, Duration::zero())),
                       "validity must be positive"));
}

}  // namespace
}  // namespace tetherd
