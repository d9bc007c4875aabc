// The OpenSSL adapter over real certificates made by test/support/linkerd_pki:
// strict, bounded PEM parsing with errors that name the block, the three key
// forms (and encrypted ones refused), describe() exactly, chain verification
// without time, and the key file's permissions.

#include "agent/adapters/x509.h"

#include <fstream>
#include <string>
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "agent/core/base64.h"
#include "test/support/linkerd_pki.h"
#include "test/support/temp_dir.h"

namespace tetherd::x509 {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
using test::KeyEncoding;
using test::KeyKind;

const WallTime kNow{seconds(1795253405)};  // 2026-11-21T09:30:05Z

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

Certificate one_cert(const std::string& pem) {
  auto certs = parse_certificates(pem, "test");
  if (!certs || certs->size() != 1) throw std::runtime_error("not one certificate: " + pem);
  return (*certs)[0];
}

PrivateKey key(const std::string& pem) {
  auto parsed = parse_private_key(pem, "test");
  if (!parsed) throw std::runtime_error(parsed.error().message);
  return *parsed;
}

class X509Test : public ::testing::Test {
 protected:
  test::LinkerdChain chain = test::make_linkerd_chain(kNow);
};

TEST_F(X509Test, ParsesOneCertificateAndABundleOfThree) {
  auto one = parse_certificates(chain.issuer.cert_pem, "tls.crt");
  ASSERT_TRUE(one.has_value()) << one.error().message;
  EXPECT_EQ(one->size(), 1u);

  const auto second = test::make_linkerd_anchor({kNow, kNow + hours(10)}, {.common_name = "two"});
  const auto third = test::make_linkerd_anchor({kNow, kNow + hours(10)}, {.common_name = "three"});
  std::string bundle = "\n" + chain.anchor.cert_pem + "\n\n" + second.cert_pem + third.cert_pem;
  auto three = parse_certificates(bundle, "ca-bundle.crt");
  ASSERT_TRUE(three.has_value()) << three.error().message;
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ(describe((*three)[0]).subject_cn, "root.linkerd.cluster.local");
  EXPECT_EQ(describe((*three)[2]).subject_cn, "three");

  std::string crlf;
  for (char c : bundle)
    crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  auto windows = parse_certificates(crlf, "ca-bundle.crt");
  ASSERT_TRUE(windows.has_value()) << windows.error().message;
  EXPECT_EQ(windows->size(), 3u);
}

TEST_F(X509Test, RefusesEmptyAndTruncatedBundles) {
  for (const std::string empty : {"", " \n\r\n\t"}) {
    auto r = parse_certificates(empty, "ca-bundle.crt");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().message, "ca-bundle.crt holds no certificate");
  }
  const std::string& pem = chain.issuer.cert_pem;
  auto cut = parse_certificates(pem.substr(0, pem.size() / 2), "tls.crt");
  ASSERT_FALSE(cut.has_value());
  EXPECT_TRUE(contains(cut.error().message, "tls.crt: block 1 is not a certificate: no "))
      << cut.error().message;
  EXPECT_TRUE(contains(cut.error().message, "truncated")) << cut.error().message;

  // The first certificate cut short, the second whole: block 1 is wrong.
  auto joined = parse_certificates(pem.substr(0, pem.size() / 2) + pem, "tls.crt");
  ASSERT_FALSE(joined.has_value());
  EXPECT_TRUE(contains(joined.error().message, "block 1 is not a certificate: no"));

  // A line of base64 missing: the armour is whole, the DER is not.
  const std::size_t line = pem.find('\n', pem.find('\n') + 1);
  auto short_der =
      parse_certificates(pem.substr(0, line) + pem.substr(pem.find('\n', line + 1)), "tls.crt");
  ASSERT_FALSE(short_der.has_value());
  EXPECT_TRUE(contains(short_der.error().message, "tls.crt: block 1 is not a certificate: "));
  EXPECT_EQ(ERR_peek_error(), 0u) << "the error queue is left empty";
}

TEST_F(X509Test, RefusesGarbageAndNonCertificateBlocks) {
  const std::string& cert = chain.issuer.cert_pem;
  auto between = parse_certificates(cert + "hello\x01 there\n" + cert, "tls.crt");
  ASSERT_FALSE(between.has_value());
  EXPECT_EQ(between.error().message,
            "tls.crt: block 2 is not a certificate: text outside a PEM block: \"hello? there\"");

  auto trailing = parse_certificates(cert + "trailing", "tls.crt");
  ASSERT_FALSE(trailing.has_value());
  EXPECT_TRUE(contains(trailing.error().message, "block 2 is not a certificate: text outside"));

  auto key = parse_certificates(cert + chain.issuer.key_pem, "linkerd-identity-issuer tls.crt");
  ASSERT_FALSE(key.has_value());
  EXPECT_EQ(key.error().message,
            "linkerd-identity-issuer tls.crt: block 2 is not a certificate: its PEM label is "
            "\"PRIVATE KEY\"");

  std::string bad = cert;
  bad[bad.find('\n') + 10] = '!';
  auto base64 = parse_certificates(bad, "tls.crt");
  ASSERT_FALSE(base64.has_value());
  EXPECT_TRUE(contains(base64.error().message, "block 1 is not a certificate: "));
  EXPECT_GT(base64.error().message.size(),
            std::string("tls.crt: block 1 is not a certificate: ").size());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(X509Test, BoundsCountAndSize) {
  std::string bundle;
  for (int i = 0; i < 64; ++i)
    bundle += chain.anchor.cert_pem;
  auto sixty_four = parse_certificates(bundle, "ca-bundle.crt");
  ASSERT_TRUE(sixty_four.has_value()) << sixty_four.error().message;
  EXPECT_EQ(sixty_four->size(), 64u);

  auto sixty_five = parse_certificates(bundle + chain.anchor.cert_pem, "ca-bundle.crt");
  ASSERT_FALSE(sixty_five.has_value());
  EXPECT_EQ(sixty_five.error().message, "ca-bundle.crt: more than 64 certificates");

  const std::string huge = chain.anchor.cert_pem + std::string(kMaxBundleBytes, '\n');
  auto big = parse_certificates(huge, "ca-bundle.crt");
  ASSERT_FALSE(big.has_value());
  EXPECT_TRUE(contains(big.error().message, "larger than 1 MiB")) << big.error().message;
}

TEST_F(X509Test, PrivateKeyForms) {
  const std::string p256 = chain.issuer.key_pem;
  const std::string rsa =
      test::make_linkerd_issuer(chain.anchor, {kNow, kNow + hours(1)}, KeyKind::kRsa2048).key_pem;
  const std::string ed25519 =
      test::make_linkerd_anchor({kNow, kNow + hours(1)}, {.key = KeyKind::kEd25519}).key_pem;
  const std::string p384 =
      test::make_linkerd_anchor({kNow, kNow + hours(1)}, {.key = KeyKind::kEcdsaP384}).key_pem;
  const std::string sec1 = test::reencode_key(p256, KeyEncoding::kTypeSpecific);
  const std::string pkcs1 = test::reencode_key(rsa, KeyEncoding::kTypeSpecific);
  ASSERT_TRUE(contains(sec1, "-----BEGIN EC PRIVATE KEY-----"));
  ASSERT_TRUE(contains(pkcs1, "-----BEGIN RSA PRIVATE KEY-----"));
  // What `openssl ecparam -name prime256v1 -genkey` writes: the curve first.
  const std::string with_params =
      "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + sec1;

  const struct {
    std::string pem;
    std::string type;
  } forms[] = {{p256, "ECDSA P-256"}, {sec1, "ECDSA P-256"}, {with_params, "ECDSA P-256"},
               {rsa, "RSA 2048"},     {pkcs1, "RSA 2048"},   {ed25519, "Ed25519"},
               {p384, "ECDSA P-384"}};
  for (const auto& form : forms) {
    auto parsed = parse_private_key(form.pem, "tls.key");
    ASSERT_TRUE(parsed.has_value()) << form.pem << parsed.error().message;
    EXPECT_EQ(key_type(*parsed), form.type);
  }
  const Certificate issuer = one_cert(chain.issuer.cert_pem);
  EXPECT_TRUE(key_matches(issuer, key(sec1)));
  EXPECT_TRUE(key_matches(issuer, key(with_params)));
  EXPECT_EQ(to_pem(key(sec1)), p256) << "written back as PKCS#8";
}

TEST_F(X509Test, RefusesEncryptedAndWrongKeys) {
  for (KeyEncoding encrypted : {KeyEncoding::kEncryptedPkcs8, KeyEncoding::kEncryptedLegacy}) {
    const std::string pem = test::reencode_key(chain.issuer.key_pem, encrypted);
    auto r = parse_private_key(pem, "tls.key");
    ASSERT_FALSE(r.has_value()) << pem;
    EXPECT_TRUE(contains(r.error().message,
                         "tls.key is encrypted; tetherd needs the key "
                         "unencrypted"))
        << r.error().message;
  }
  const auto refused = [](const std::string& pem) {
    auto r = parse_private_key(pem, "tls.key");
    return r.has_value() ? std::string("accepted") : r.error().message;
  };
  EXPECT_EQ(refused(chain.issuer.cert_pem),
            "tls.key: block 1 is not a private key: its PEM label is \"CERTIFICATE\"");
  EXPECT_EQ(refused(""), "tls.key holds no private key");
  EXPECT_EQ(refused(chain.issuer.key_pem + chain.anchor.key_pem),
            "tls.key: block 2 is a second private key; expected one");
  EXPECT_TRUE(contains(refused("junk\n" + chain.issuer.key_pem), "text outside a PEM block"));
  // A key pasted without its BEGIN line: the body is the secret, and the
  // error (bound for the journal and the cloud) quotes none of it.
  const std::string key = chain.issuer.key_pem;
  const std::string body = key.substr(key.find('\n') + 1, 40);
  const std::string headless = refused(key.substr(key.find('\n') + 1));
  EXPECT_EQ(headless,
            "tls.key: block 1 is not a private key: text outside a PEM block: (not quoted: it may "
            "be key material)");
  EXPECT_FALSE(contains(headless, body.substr(0, 8)));
  EXPECT_TRUE(contains(refused(chain.issuer.key_pem + std::string(kMaxKeyBytes, ' ')),
                       "larger than 64 KiB"));
  EXPECT_TRUE(contains(refused("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
                       "tls.key: not a valid PRIVATE KEY: "));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(X509Test, DescribesExactly) {
  const WallTime not_before = kNow - hours(10);
  const WallTime not_after = kNow + hours(8760);
  const auto issuer = test::make_linkerd_issuer(chain.anchor, {not_before, not_after});
  const Certificate cert = one_cert(issuer.cert_pem);
  const CertificateInfo info = describe(cert);
  EXPECT_EQ(info.subject, "CN=identity.linkerd.cluster.local");
  EXPECT_EQ(info.subject_cn, "identity.linkerd.cluster.local");
  EXPECT_EQ(info.issuer, "CN=root.linkerd.cluster.local");
  EXPECT_EQ(info.issuer_cn, "root.linkerd.cluster.local");
  EXPECT_EQ(info.not_before, not_before);
  EXPECT_EQ(info.not_after, not_after);
  EXPECT_EQ(info.key_type, "ECDSA P-256");
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.path_len, 0);
  EXPECT_EQ(info.serial_hex.size(), 32u) << info.serial_hex;
  EXPECT_EQ(info.serial_hex.find_first_not_of("0123456789abcdef"), std::string::npos);

  // The fingerprint, computed here from the PEM's own bytes.
  const std::string& pem = issuer.cert_pem;
  const std::size_t body = pem.find('\n') + 1;
  auto der = decode_base64("pem", pem.substr(body, pem.find("-----END") - body));
  ASSERT_TRUE(der.has_value());
  unsigned char digest[32];
  ASSERT_EQ(EVP_Digest(der->data(), der->size(), digest, nullptr, EVP_sha256(), nullptr), 1);
  std::string hex;
  for (unsigned char b : digest)
    hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
  EXPECT_EQ(info.sha256_fingerprint, hex);

  const CertificateInfo anchor = describe(one_cert(chain.anchor.cert_pem));
  EXPECT_EQ(anchor.subject, anchor.issuer);
  EXPECT_EQ(anchor.path_len, 1);
  const auto leaf = test::make_linkerd_workload(issuer, {kNow, kNow + hours(24)}, "web.default");
  EXPECT_FALSE(describe(one_cert(leaf.cert_pem)).is_ca);
  EXPECT_EQ(describe(one_cert(leaf.cert_pem)).path_len, std::nullopt);
  const auto rsa =
      test::make_linkerd_issuer(chain.anchor, {kNow, kNow + hours(1)}, KeyKind::kRsa2048);
  EXPECT_EQ(describe(one_cert(rsa.cert_pem)).key_type, "RSA 2048");

  const Certificate copy = cert;  // a reference, not a new object
  EXPECT_EQ(copy.native(), cert.native());
  EXPECT_EQ(describe(copy), info);
  EXPECT_EQ(to_pem(cert), issuer.cert_pem);
}

TEST_F(X509Test, KeyMatches) {
  const Certificate issuer = one_cert(chain.issuer.cert_pem);
  EXPECT_TRUE(key_matches(issuer, key(chain.issuer.key_pem)));
  EXPECT_FALSE(key_matches(issuer, key(chain.anchor.key_pem)));
  const auto rsa =
      test::make_linkerd_issuer(chain.anchor, {kNow, kNow + hours(1)}, KeyKind::kRsa2048);
  EXPECT_FALSE(key_matches(issuer, key(rsa.key_pem)));
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(X509Test, VerifiesChainsWithoutLookingAtTime) {
  const Certificate anchor = one_cert(chain.anchor.cert_pem);
  const Certificate issuer = one_cert(chain.issuer.cert_pem);
  auto ok = verify_chain(issuer, {anchor});
  EXPECT_TRUE(ok.has_value()) << ok.error().message;

  const auto other = test::make_linkerd_anchor({kNow - hours(1), kNow + hours(100)});
  const Certificate other_root = one_cert(other.cert_pem);
  auto wrong = verify_chain(issuer, {other_root});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_EQ(wrong.error().message,
            "CN=identity.linkerd.cluster.local: unable to get local issuer certificate");
  EXPECT_TRUE(verify_chain(issuer, {other_root, anchor}).has_value());
  const Certificate stranger =
      one_cert(test::make_linkerd_issuer(other, {kNow, kNow + hours(1)}).cert_pem);
  EXPECT_FALSE(verify_chain(stranger, {anchor}).has_value()) << "signed by a different root";

  // Expired a year ago and not valid for another year: both still chain.
  for (test::Validity v : {test::Validity{kNow - hours(9000), kNow - hours(8760)},
                           test::Validity{kNow + hours(8760), kNow + hours(9000)}}) {
    const Certificate dated = one_cert(test::make_linkerd_issuer(chain.anchor, v).cert_pem);
    auto r = verify_chain(dated, {anchor});
    EXPECT_TRUE(r.has_value()) << r.error().message;
  }

  // A proxy's certificate needs the issuer as an intermediate; the issuer
  // itself is not a trust anchor (no partial chains).
  const auto leaf = test::make_linkerd_workload(chain.issuer, {kNow, kNow + hours(24)}, "web");
  const Certificate workload = one_cert(leaf.cert_pem);
  EXPECT_TRUE(verify_chain(workload, {anchor}, {issuer}).has_value());
  EXPECT_FALSE(verify_chain(workload, {anchor}).has_value());
  EXPECT_FALSE(verify_chain(workload, {issuer}).has_value());
  EXPECT_FALSE(verify_chain(issuer, {}).has_value());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST_F(X509Test, KeyFileMustBeTheOwnersAlone) {
  test::TempDir dir;
  const std::string path = dir.file("anchor.key");
  std::ofstream(path) << chain.anchor.key_pem;
  for (mode_t mode : {0644, 0640, 0604}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    auto r = load_private_key_file(path, "the linkerd trust anchor key");
    ASSERT_FALSE(r.has_value()) << std::oct << mode;
    EXPECT_TRUE(contains(r.error().message, "holds the linkerd trust anchor key and has mode"))
        << r.error().message;
  }
  for (mode_t mode : {0600, 0400}) {
    ASSERT_EQ(chmod(path.c_str(), mode), 0);
    auto r = load_private_key_file(path, "the linkerd trust anchor key");
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_TRUE(key_matches(one_cert(chain.anchor.cert_pem), *r));
  }
  EXPECT_FALSE(load_private_key_file(dir.file("missing.key"), "a key").has_value());
}

}  // namespace
}  // namespace tetherd::x509
