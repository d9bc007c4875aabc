// The node's CertificateSigningRequest (core/node_csr.h), the name rules it
// relies on (core/names.h), and the CA pin, checked against the command
// kubeadm's documentation gives for --discovery-token-ca-cert-hash.

#include "agent/core/node_csr.h"

#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/subprocess.h"
#include "agent/adapters/x509.h"
#include "agent/core/base64.h"
#include "agent/core/names.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

// 2026-12-03T06:12:34Z
const WallTime kNow{std::chrono::seconds(1796278354)};

TEST(Names, Dns1123) {
  EXPECT_TRUE(is_dns_subdomain("edge-1"));
  EXPECT_TRUE(is_dns_subdomain("edge-1.home.example"));
  EXPECT_FALSE(is_dns_subdomain("Edge-1"));
  EXPECT_FALSE(is_dns_subdomain("-edge"));
  EXPECT_FALSE(is_dns_subdomain("edge_1"));
  EXPECT_FALSE(is_dns_subdomain(""));
  EXPECT_FALSE(is_dns_subdomain(std::string(254, 'a')));
  EXPECT_TRUE(is_dns_label("tetherd-system"));
  EXPECT_FALSE(is_dns_label("a.b"));
  EXPECT_FALSE(is_dns_label(std::string(64, 'a')));
}

TEST(NodeCsr, ItsNameSaysWhichNodeAndWhen) {
  EXPECT_EQ(csr_name("edge-1", kNow), "tetherd-edge-1-20261203-061234");
  EXPECT_TRUE(is_dns_subdomain(csr_name("edge-1.home.example", kNow)));
  // The longest node name there is still makes a valid CSR name.
  const std::string longest(253, 'a');
  const std::string name = csr_name(longest, kNow);
  EXPECT_TRUE(is_dns_subdomain(name)) << name;
  EXPECT_TRUE(name.ends_with("-20261203-061234"));
  EXPECT_TRUE(is_dns_subdomain(csr_name(std::string(228, 'a') + "-b", kNow)))
      << "a cut that ends in '-' is trimmed";
}

TEST(NodeCsr, TheObjectAsksForAClientCertificateForTheNodeAlone) {
  const auto o = csr_object("edge-1", "tetherd-edge-1-x", "-----BEGIN CERTIFICATE REQUEST-----\n",
                            std::chrono::hours(24 * 30));
  EXPECT_EQ(o.at("apiVersion"), "certificates.k8s.io/v1");
  EXPECT_EQ(o.at("kind"), "CertificateSigningRequest");
  EXPECT_EQ(o.at("metadata").at("name"), "tetherd-edge-1-x");
  EXPECT_EQ(o.at("metadata").at("labels").at("tetherd.io/node"), "edge-1");
  const auto& spec = o.at("spec").as_object();
  EXPECT_EQ(spec.at("signerName"), "kubernetes.io/kube-apiserver-client");
  EXPECT_EQ(boost::json::serialize(spec.at("usages")), R"(["digital signature","client auth"])");
  EXPECT_EQ(spec.at("expirationSeconds"), 30 * 86400);
  EXPECT_EQ(*decode_base64("request", spec.at("request").as_string()),
            "-----BEGIN CERTIFICATE REQUEST-----\n");
  EXPECT_FALSE(spec.contains("username")) << "the API server says who asked, not the node";

  EXPECT_EQ(csr_object("n", "c", "x", 60s).at("spec").at("expirationSeconds"), 600)
      << "raised to the API's minimum";
  EXPECT_FALSE(
      csr_object("n", "c", "x", std::nullopt).at("spec").as_object().contains("expirationSeconds"));
  EXPECT_EQ(approve_command("tetherd-edge-1-x"), "kubectl certificate approve tetherd-edge-1-x");
  EXPECT_EQ(node_user("edge-1"), "tetherd:edge-1");
}

TEST(CaPin, ParsesKubeadmsFormOnly) {
  const std::string hex(64, 'A');
  auto pin = parse_ca_pin("sha256:" + hex);
  ASSERT_TRUE(pin);
  EXPECT_EQ(*pin, std::string(64, 'a'));
  EXPECT_FALSE(parse_ca_pin(hex)) << "the algorithm is named";
  EXPECT_FALSE(parse_ca_pin("sha1:" + hex));
  EXPECT_FALSE(parse_ca_pin("sha256:" + hex.substr(1)));
  EXPECT_FALSE(parse_ca_pin("sha256:" + hex.substr(1) + "g"));
}

// The pin tetherd computes is the one an admin computes with kubeadm's
// documented command on the CA certificate:
//   openssl x509 -pubkey -in ca.crt | openssl pkey -pubin -outform der |
//   openssl dgst -sha256 -hex
TEST(CaPin, IsWhatKubeadmsDocumentedCommandComputes) {
  test::TestCa ca("pin test CA");
  test::TempDir dir;
  dir.write("ca.crt", ca.cert_pem());
  auto out = run_command({"/bin/sh", "-c",
                          "openssl x509 -pubkey -noout -in " + dir.file("ca.crt") +
                              " | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex"});
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->exit_code, 0) << out->err;
  auto certs = x509::parse_certificates(ca.cert_pem(), "ca");
  ASSERT_TRUE(certs);
  const std::string spki = x509::describe(certs->front()).spki_sha256;
  ASSERT_EQ(spki.size(), 64u);
  EXPECT_NE(out->out.find(spki), std::string::npos) << out->out << " vs " << spki;
  // And it differs from the certificate's own fingerprint.
  EXPECT_NE(spki, x509::describe(certs->front()).sha256_fingerprint);
}

}  // namespace
}  // namespace tetherd
