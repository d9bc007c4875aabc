// A node's certificate request from end to end, with real parts on both
// sides: tetherd's own request maker (adapters/csr.h) and client, and the
// test API server's CertificateSigningRequest API with its
// kube-apiserver-client signer (test/support/api_server/csr.h). The
// certificate that comes back is checked with tetherd's X.509 functions.

#include <boost/json.hpp>

#include "agent/adapters/csr.h"
#include "agent/adapters/x509.h"
#include "agent/core/base64.h"
#include "test/integration/kube/kube_fixture.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

constexpr char kCsrs[] = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

class CsrSigningTest : public KubeTest {
 protected:
  CsrSigningTest()
      : KubeTest([](ApiServerOptions& o, const TestCa& ca) {
          o.csr_signer = ca;
          o.csr_max_duration = 48h;
        }) {
    // The bootstrap identity may create CSRs and read them, nothing else.
    server_->allow({.user = "system:serviceaccount:tetherd-system:tetherd-bootstrap",
                    .verbs = {"create", "get"},
                    .group = "certificates.k8s.io",
                    .resource = "certificatesigningrequests",
                    .namespace_ = ""});
    bootstrap_ = client(kubeconfig("system:serviceaccount:tetherd-system:tetherd-bootstrap"));
    admin_ = client(admin_kubeconfig());
  }

  json::object csr(const std::string& name, const std::string& csr_pem,
                   std::optional<std::int64_t> seconds = 3600,
                   json::array usages = {"digital signature", "client auth"}) {
    json::object spec{{"request", encode_base64(csr_pem)},
                      {"signerName", "kubernetes.io/kube-apiserver-client"},
                      {"usages", std::move(usages)},
                      // A requester cannot claim to be someone else.
                      {"username", "admin"},
                      {"groups", json::array{"system:masters"}}};
    if (seconds) spec["expirationSeconds"] = *seconds;
    return json::object{{"apiVersion", "certificates.k8s.io/v1"},
                        {"kind", "CertificateSigningRequest"},
                        {"metadata", {{"name", name}}},
                        {"spec", std::move(spec)}};
  }

  kube::ApiResult<json::object> create(kube::HttpsClient& c, json::object object) {
    return run([&]() -> boost::asio::awaitable<kube::ApiResult<json::object>> {
      kube::KubeClient k(c);
      co_return co_await k.create(kCsrs, std::move(object));
    }());
  }
  kube::ApiResult<json::object> get(kube::HttpsClient& c, const std::string& name) {
    return run([&]() -> boost::asio::awaitable<kube::ApiResult<json::object>> {
      kube::KubeClient k(c);
      co_return co_await k.get(std::string(kCsrs) + "/" + name);
    }());
  }
  // As `kubectl certificate approve|deny`: the condition appended, PUT on /approval.
  kube::ApiResult<json::object> decide(const std::string& name, const std::string& type) {
    auto current = get(*admin_, name);
    if (!current) return current;
    json::object object = *current;
    json::object& status = object["status"].is_object() ? object["status"].get_object()
                                                        : object["status"].emplace_object();
    json::array conditions =
        status.contains("conditions") ? status["conditions"].get_array() : json::array();
    conditions.push_back(json::object{{"type", type},
                                      {"status", "True"},
                                      {"reason", "KubectlApprove"},
                                      {"message", "by the test"}});
    status["conditions"] = std::move(conditions);
    return run([&]() -> boost::asio::awaitable<kube::ApiResult<json::object>> {
      kube::KubeClient k(*admin_);
      co_return co_await k.update(std::string(kCsrs) + "/" + name + "/approval", object);
    }());
  }

  std::unique_ptr<kube::HttpsClient> bootstrap_;
  std::unique_ptr<kube::HttpsClient> admin_;
};

TEST_F(CsrSigningTest, AnApprovedRequestComesBackSignedForTheNodesKeyAndTheAskedLife) {
  auto request = make_client_request("tetherd:node-a");
  ASSERT_TRUE(request) << request.error().message;
  auto created = create(*bootstrap_, csr("node-a-1", request->csr_pem));
  ASSERT_TRUE(created) << kube::describe(created.error());
  // The requester is who authenticated, whatever the body said.
  EXPECT_EQ(created->at("spec").at("username"),
            "system:serviceaccount:tetherd-system:tetherd-bootstrap");
  const auto& groups = created->at("spec").at("groups").as_array();
  EXPECT_NE(std::find(groups.begin(), groups.end(), json::value("system:authenticated")),
            groups.end());
  EXPECT_EQ(std::find(groups.begin(), groups.end(), json::value("system:masters")), groups.end());

  auto pending = get(*bootstrap_, "node-a-1");
  ASSERT_TRUE(pending);
  EXPECT_FALSE(pending->contains("status") &&
               pending->at("status").as_object().contains("certificate"));

  const auto before = std::chrono::system_clock::now();
  auto approved = decide("node-a-1", "Approved");
  ASSERT_TRUE(approved) << kube::describe(approved.error());
  auto issued = get(*bootstrap_, "node-a-1");
  ASSERT_TRUE(issued);
  const auto encoded = issued->at("status").at("certificate").as_string();
  auto pem = decode_base64("status.certificate", std::string(encoded));
  ASSERT_TRUE(pem) << pem.error().message;
  auto certs = x509::parse_certificates(*pem, "status.certificate");
  ASSERT_TRUE(certs) << certs.error().message;
  ASSERT_EQ(certs->size(), 1u);
  const CertificateInfo info = x509::describe(certs->front());
  EXPECT_EQ(info.subject_cn, "tetherd:node-a");
  EXPECT_FALSE(info.is_ca);
  EXPECT_TRUE(x509::key_matches(certs->front(), request->key));
  auto anchors = x509::parse_certificates(ca_.cert_pem(), "the CA");
  ASSERT_TRUE(anchors);
  EXPECT_TRUE(x509::verify_chain(certs->front(), *anchors));
  // expirationSeconds 3600: an hour from the signing (the notAfter has
  // whole seconds; the signing happened between `before` and now).
  EXPECT_GE(info.not_after, std::chrono::floor<std::chrono::seconds>(before) + 1h);
  EXPECT_LE(info.not_after, std::chrono::system_clock::now() + 1h);
}

TEST_F(CsrSigningTest, TheSignersMaximumCapsTheAskedLife) {
  auto request = make_client_request("tetherd:node-a");
  ASSERT_TRUE(request);
  ASSERT_TRUE(create(*bootstrap_, csr("node-a-long", request->csr_pem, 365 * 86400)));
  ASSERT_TRUE(decide("node-a-long", "Approved"));
  auto issued = get(*admin_, "node-a-long");
  ASSERT_TRUE(issued);
  auto pem = decode_base64("cert", std::string(issued->at("status").at("certificate").as_string()));
  ASSERT_TRUE(pem);
  auto certs = x509::parse_certificates(*pem, "cert");
  ASSERT_TRUE(certs);
  EXPECT_LE(x509::describe(certs->front()).not_after, std::chrono::system_clock::now() + 48h)
      << "csr_max_duration is 48 h";
}

TEST_F(CsrSigningTest, ADeniedRequestIsNeverSignedAndCannotBeApprovedAfter) {
  auto request = make_client_request("tetherd:node-a");
  ASSERT_TRUE(request);
  ASSERT_TRUE(create(*bootstrap_, csr("node-a-2", request->csr_pem)));
  ASSERT_TRUE(decide("node-a-2", "Denied"));
  auto denied = get(*bootstrap_, "node-a-2");
  ASSERT_TRUE(denied);
  EXPECT_FALSE(denied->at("status").as_object().contains("certificate"));
  auto both = decide("node-a-2", "Approved");
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().code, 422);
  EXPECT_NE(both.error().message.find("mutually exclusive"), std::string::npos)
      << both.error().message;
}

TEST_F(CsrSigningTest, UsagesBeyondAClientCertificateFailAtTheSigner) {
  auto request = make_client_request("tetherd:node-a");
  ASSERT_TRUE(request);
  ASSERT_TRUE(create(
      *bootstrap_, csr("node-a-3", request->csr_pem, 3600, {"digital signature", "server auth"})));
  ASSERT_TRUE(decide("node-a-3", "Approved"));
  auto failed = get(*bootstrap_, "node-a-3");
  ASSERT_TRUE(failed);
  EXPECT_FALSE(failed->at("status").as_object().contains("certificate"));
  bool failed_condition = false;
  for (const auto& c : failed->at("status").at("conditions").as_array())
    failed_condition |= c.at("type") == "Failed" && c.at("reason") == "SignerValidationFailure";
  EXPECT_TRUE(failed_condition) << json::serialize(*failed);
}

TEST_F(CsrSigningTest, ABadCreateIsA422NamingTheField) {
  auto request = make_client_request("tetherd:node-a");
  ASSERT_TRUE(request);
  auto no_signer = csr("bad-1", request->csr_pem);
  no_signer["spec"].as_object().erase("signerName");
  auto r = create(*bootstrap_, no_signer);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, 422);
  EXPECT_NE(r.error().message.find("spec.signerName"), std::string::npos) << r.error().message;

  r = create(*bootstrap_, csr("bad-2", request->csr_pem, 599));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("600 seconds"), std::string::npos) << r.error().message;

  r = create(*bootstrap_,
             csr("bad-3", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("CERTIFICATE REQUEST"), std::string::npos) << r.error().message;

  // The bootstrap identity may not approve its own request.
  ASSERT_TRUE(create(*bootstrap_, csr("node-a-4", request->csr_pem)));
  auto self = run([&]() -> boost::asio::awaitable<kube::ApiResult<json::object>> {
    kube::KubeClient k(*bootstrap_);
    auto current = co_await k.get(std::string(kCsrs) + "/node-a-4");
    if (!current) co_return current;
    co_return co_await k.update(std::string(kCsrs) + "/node-a-4/approval", *current);
  }());
  ASSERT_FALSE(self);
  EXPECT_EQ(self.error().code, 403);
}

TEST(ClientRequest, RefusesNamesX509CannotHold) {
  EXPECT_FALSE(make_client_request(""));
  EXPECT_FALSE(make_client_request(std::string(65, 'a')));
  EXPECT_FALSE(make_client_request("tetherd:node-a", {std::string(65, 'g')}));
  auto ok = make_client_request("tetherd:node-a", {"tetherd:nodes"});
  ASSERT_TRUE(ok);
  EXPECT_NE(ok->csr_pem.find("-----BEGIN CERTIFICATE REQUEST-----"), std::string::npos);
  EXPECT_EQ(x509::key_type(ok->key), "ECDSA P-256");
}

}  // namespace
}  // namespace tetherd::test
