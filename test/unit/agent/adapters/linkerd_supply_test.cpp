// The cloud's issuer and trust bundle, checked before they are written into
// the local k3s: each refused thing says why and names its object.
#include "agent/adapters/linkerd_supply.h"

#include <gtest/gtest.h>

#include "test/support/linkerd_pki.h"

namespace tetherd::test {
namespace {

using namespace std::chrono_literals;

class LinkerdSupplyTest : public ::testing::Test {
 protected:
  std::vector<x509::Certificate> roots(const std::string& pem) const {
    auto parsed = x509::parse_certificates(pem, "roots");
    if (!parsed) throw std::runtime_error(parsed.error().message);
    return std::move(*parsed);
  }

  IssuerSecret secret(const PemPair& issuer) const {
    IssuerSecret s;
    s.cert_pem = issuer.cert_pem;
    s.key_pem = issuer.key_pem;
    s.ca_pem = anchor_.cert_pem;
    return s;
  }

  std::string refused(const PemPair& issuer, const std::string& bundle) const {
    auto checked = check_supplied_issuer(secret(issuer), roots(bundle), now_, "Secret t/issuer");
    return checked ? std::string("taken") : checked.error().message;
  }

  WallTime now_ =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  PemPair anchor_ = make_linkerd_anchor({now_ - 24h, now_ + 87600h});
  PemPair other_anchor_ = make_linkerd_anchor({now_ - 24h, now_ + 87600h});
};

TEST_F(LinkerdSupplyTest, AGoodBundleIsTakenWithLinkerdsHash) {
  const std::string text = anchor_.cert_pem + other_anchor_.cert_pem;
  auto bundle = parse_trust_bundle(text, now_, "ConfigMap t/trust ca-bundle.crt");
  ASSERT_TRUE(bundle) << bundle.error().message;
  EXPECT_EQ(bundle->roots.size(), 2u);
  EXPECT_EQ(bundle->pem, text);
  // What `sha256sum` says of the same bytes (linkerd's charts use it).
  EXPECT_EQ(trust_bundle_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(bundle->sha256, trust_bundle_sha256(text));
}

TEST_F(LinkerdSupplyTest, ABadBundleIsRefusedAndSaysWhy) {
  const PemPair issuer = make_linkerd_issuer(anchor_, {now_ - 1h, now_ + 8760h});
  const PemPair workload =
      make_linkerd_workload(issuer, {now_ - 1h, now_ + 24h}, "web.default.serviceaccount");
  const PemPair expired = make_linkerd_anchor({now_ - 48h, now_ - 24h});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "holds no certificate"},
      {"not a certificate", "text outside a PEM block"},
      {anchor_.cert_pem + anchor_.key_pem, "block 2 is not a certificate"},
      {anchor_.cert_pem + workload.cert_pem,
       "certificate 2 (CN=web.default.serviceaccount) is not a CA"},
      {expired.cert_pem, "every certificate in it has expired"},
      {std::string(300 << 10, 'x'), "is larger than 256 KiB"},
  };
  for (const auto& [text, why] : cases) {
    auto bundle = parse_trust_bundle(text, now_, "ConfigMap t/trust ca-bundle.crt");
    ASSERT_FALSE(bundle) << why;
    EXPECT_NE(bundle.error().message.find(why), std::string::npos) << bundle.error().message;
    EXPECT_EQ(bundle.error().message.rfind("ConfigMap t/trust ca-bundle.crt", 0), 0u)
        << bundle.error().message;
  }
}

TEST_F(LinkerdSupplyTest, AGoodIssuerIsTakenWithTheRootItChainsTo) {
  const PemPair issuer = make_linkerd_issuer(anchor_, {now_ - 1h, now_ + 8760h});
  auto checked = check_supplied_issuer(
      secret(issuer), roots(other_anchor_.cert_pem + anchor_.cert_pem), now_, "Secret t/issuer");
  ASSERT_TRUE(checked) << checked.error().message;
  EXPECT_EQ(checked->root, 1u);
  EXPECT_EQ(checked->info.subject_cn, kIssuerCommonName);
  EXPECT_EQ(checked->secret.cert_pem, issuer.cert_pem);
}

TEST_F(LinkerdSupplyTest, AnIssuerIsCheckedWhole) {
  const Validity valid{now_ - 1h, now_ + 8760h};
  const PemPair good = make_linkerd_issuer(anchor_, valid);
  PemPair mismatched = good;
  mismatched.key_pem = make_linkerd_issuer(anchor_, valid).key_pem;
  // The anchor itself: a CA, but pathlen 1 and another name.
  EXPECT_NE(
      refused(anchor_, anchor_.cert_pem).find("is not named CN=identity.linkerd.cluster.local"),
      std::string::npos);
  EXPECT_NE(refused(make_linkerd_issuer(anchor_, valid, KeyKind::kRsa2048), anchor_.cert_pem)
                .find("has a RSA 2048 key; linkerd takes ECDSA P-256 only"),
            std::string::npos);
  EXPECT_NE(refused(mismatched, anchor_.cert_pem).find("tls.key is not tls.crt's key"),
            std::string::npos);
  EXPECT_NE(refused(make_linkerd_issuer(anchor_, {now_ - 48h, now_ - 1h}), anchor_.cert_pem)
                .find("expired"),
            std::string::npos);
  EXPECT_NE(refused(make_linkerd_issuer(anchor_, {now_ + 1h, now_ + 48h}), anchor_.cert_pem)
                .find("is not valid before"),
            std::string::npos);
  EXPECT_NE(refused(good, other_anchor_.cert_pem)
                .find("does not chain to a root of the local trust bundle"),
            std::string::npos);
  EXPECT_EQ(refused(good, anchor_.cert_pem), "taken");
  // Under a root that expired (the bundle may still hold it): linkerd's
  // identity controller would refuse it.
  const PemPair old_root = make_linkerd_anchor({now_ - 8760h, now_ - 1h});
  EXPECT_NE(refused(make_linkerd_issuer(old_root, valid), old_root.cert_pem + anchor_.cert_pem)
                .find("does not chain to a root of the local trust bundle valid now"),
            std::string::npos);
  // Named right and a CA, but one that may make further CAs.
  const PemPair wide =
      make_linkerd_anchor(valid, {.common_name = "identity.linkerd.cluster.local"});
  EXPECT_NE(refused(wide, wide.cert_pem)
                .find("has pathlen 1: an issuer must not be able to make "
                      "further CAs"),
            std::string::npos)
      << refused(wide, wide.cert_pem);

  IssuerSecret legacy = secret(good);
  legacy.layout = IssuerLayout::kLegacy;
  auto checked = check_supplied_issuer(legacy, roots(anchor_.cert_pem), now_, "Secret t/issuer");
  ASSERT_FALSE(checked);
  EXPECT_EQ(checked.error().message,
            "Secret t/issuer is not a kubernetes.io/tls Secret (tls.crt, tls.key)");
}

TEST_F(LinkerdSupplyTest, ChainsToAnyTellsWhichBundleKeepsAnIssuer) {
  const PemPair issuer = make_linkerd_issuer(anchor_, {now_ - 1h, now_ + 8760h});
  EXPECT_TRUE(chains_to_any(issuer.cert_pem, roots(other_anchor_.cert_pem + anchor_.cert_pem)));
  EXPECT_FALSE(chains_to_any(issuer.cert_pem, roots(other_anchor_.cert_pem)));
  EXPECT_FALSE(chains_to_any("garbage", roots(anchor_.cert_pem)));
}

}  // namespace
}  // namespace tetherd::test
