// The TLS side of the client: who is trusted, which name is checked, what
// an operator reads when it fails; and kubeconfigs, from file to request.
#include <fstream>
#include <sys/stat.h>

#include "agent/config/kubeconfig.h"
#include "test/integration/kube/kube_fixture.h"
#include "test/support/temp_dir.h"

namespace tetherd::test {
namespace {

using kube::ErrorKind;
using kube::KubeClient;

const std::string kNodeA = kube::object_path(kube::kEdgeNodes, kNamespace, "node-a");

class KubeTlsTest : public KubeTest {
 protected:
  KubeTlsTest() {
    server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                    edge_node("node-a", {"192.0.2.0/24"}));
  }
  kube::ApiResult<boost::json::object> get_with(const Kubeconfig& k) {
    auto http = client(k);
    if (!http) throw std::runtime_error("no client");
    KubeClient kube(*http);
    return run(kube.get(kNodeA));
  }
};

TEST_F(KubeTlsTest, TheServersNameIsAlwaysChecked) {
  server_->misbehave({.what = Misbehaviour::kWrongHostCert});
  auto r = get_with(kubeconfig());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTls);
  EXPECT_NE(r.error().message.find("IP address mismatch: the certificate is not for 127.0.0.1"),
            std::string::npos)
      << r.error().message;
}

TEST_F(KubeTlsTest, TlsServerNameChangesTheNameCheckedAndSent) {
  // A cloud API server behind an address its certificate does not name:
  // tls-server-name is how a kubeconfig says which name to expect.
  server_->misbehave({.what = Misbehaviour::kWrongHostCert});
  auto k = kubeconfig();
  k.tls_server_name = "cloud.example";
  auto r = get_with(k);
  EXPECT_TRUE(r) << describe(r.error());
}

TEST_F(KubeTlsTest, AnExpiredServerCertificateIsRefused) {
  server_->misbehave({.what = Misbehaviour::kExpiredCert});
  auto r = get_with(kubeconfig());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTls);
  EXPECT_NE(r.error().message.find("certificate has expired"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(r.error().retryable()) << "a renewed certificate ends it";
}

TEST_F(KubeTlsTest, AServerFromAnotherCaIsRefused) {
  TestCa stranger("someone else's CA");
  auto k = kubeconfig();
  k.ca_pem = stranger.cert_pem();
  auto r = get_with(k);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTls);
  // The server sends its own certificate (as kube-apiserver does), whose
  // issuer this client does not trust.
  EXPECT_NE(r.error().message.find("certificate verify failed (SSL routines) (unable to get "
                                   "local issuer certificate)"),
            std::string::npos)
      << r.error().message;
}

TEST_F(KubeTlsTest, AClientCertificateFromAnotherCaFailsTheHandshake) {
  TestCa stranger("someone else's CA");
  auto r = get_with(kubeconfig("tetherd:node-a", &stranger));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kTls) << r.error().message;
  EXPECT_TRUE(server_->requests().empty()) << "no request may pass an unverified client";
}

TEST_F(KubeTlsTest, AHostNameIsResolvedAndChecked) {
  auto k = kubeconfig();
  k.server = "https://localhost:" + std::to_string(server_->port());
  auto r = get_with(k);
  EXPECT_TRUE(r) << describe(r.error());
}

TEST_F(KubeTlsTest, ANameThatDoesNotResolveIsAClearError) {
  auto k = kubeconfig();
  k.server = "https://tetherd-test.invalid:6443";  // RFC 6761: never resolves
  kube::ClientLimits limits;
  limits.resolve_timeout = std::chrono::milliseconds(500);
  auto http = client(k, limits);
  KubeClient kube(*http);
  auto r = run(kube.get(kNodeA));
  ASSERT_FALSE(r);
  // Without a resolver at hand the lookup may not even fail in time.
  EXPECT_TRUE(r.error().kind == ErrorKind::kTransport || r.error().kind == ErrorKind::kTimeout);
  EXPECT_NE(r.error().message.find("resolving https://tetherd-test.invalid:6443"),
            std::string::npos)
      << r.error().message;
  EXPECT_TRUE(r.error().retryable());
}

TEST_F(KubeTlsTest, DisconnectAllCutsANameLookupShort) {
  // A lookup may wait its whole resolve_timeout (10 s) for a DNS server that
  // does not answer, as after a sleep on a network that was failing; the
  // request waiting on it must end as soon as a resume disconnects.
  auto k = kubeconfig();
  k.server = "https://tetherd-test.invalid:6443";
  auto http = client(k);
  KubeClient kube(*http);
  // Queued in this order on the client's thread: the request, which starts
  // the lookup and waits, then disconnect_all(), before any answer of the
  // lookup can be queued.
  on_client_thread([&] { boost::asio::post(io_, [&] { http->disconnect_all(); }); });
  auto pending = start(kube.get(kNodeA));
  auto r = finish(pending);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, "Disconnected") << r.error().message;
  EXPECT_EQ(http->connections_opened(), 1u);
}

struct BadCredentials {
  const char* name;
  std::function<void(Kubeconfig&, const TestCa&)> spoil;
  const char* message;
};

// Test names and failure messages show the case by name, not its bytes.
void PrintTo(const BadCredentials& c, std::ostream* os) {
  *os << c.name;
}

class KubeBadCredentialsTest : public KubeTlsTest,
                               public testing::WithParamInterface<BadCredentials> {};

TEST_P(KubeBadCredentialsTest, AreRefusedBeforeAnyConnection) {
  auto k = kubeconfig();
  GetParam().spoil(k, ca_);
  auto c = kube::HttpsClient::create(io_.get_executor(), k);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().kind, ErrorKind::kInvalid);
  EXPECT_NE(c.error().message.find(GetParam().message), std::string::npos)
      << "[" << c.error().message << "]";
  EXPECT_EQ(server_->connections_accepted(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Table, KubeBadCredentialsTest,
    testing::Values(
        BadCredentials{"key_of_another_certificate",
                       [](Kubeconfig& k, const TestCa& ca) {
                         k.client_key_pem = ca.issue({.common_name = "x"}).key_pem;
                       },
                       "the client key does not match the client certificate"},
        BadCredentials{"ca_not_pem", [](Kubeconfig& k, const TestCa&) { k.ca_pem = "garbage"; },
                       "certificate authority"},
        BadCredentials{"certificate_not_pem",
                       [](Kubeconfig& k, const TestCa&) { k.client_cert_pem = "garbage"; },
                       "client certificate"},
        BadCredentials{"key_not_pem",
                       [](Kubeconfig& k, const TestCa&) { k.client_key_pem = "garbage"; },
                       "client key"},
        BadCredentials{"plain_http",
                       [](Kubeconfig& k, const TestCa&) { k.server = "http://127.0.0.1:1"; },
                       "not https"},
        BadCredentials{"password_in_url",
                       [](Kubeconfig& k, const TestCa&) { k.server = "https://u:p@127.0.0.1:1"; },
                       "credentials in a URL are refused"},
        BadCredentials{"not_a_url", [](Kubeconfig& k, const TestCa&) { k.server = "https://"; },
                       "no host"},
        BadCredentials{"port_out_of_range",
                       [](Kubeconfig& k, const TestCa&) { k.server = "https://127.0.0.1:70000"; },
                       "bad port \"70000\""}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ServerAddress, NamesPortsPrefixesAndIpv6) {
  auto a = kube::parse_server_address("https://cloud.example:8443/k8s/clusters/c-1/", "");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "cloud.example");
  EXPECT_EQ(a->port, 8443);
  EXPECT_EQ(a->base_path, "/k8s/clusters/c-1");
  EXPECT_EQ(a->sni, "cloud.example");
  EXPECT_FALSE(a->verify_name_is_ip);

  auto v6 = kube::parse_server_address("https://[2001:db8::1]", "");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_EQ(v6->port, 443);
  EXPECT_EQ(v6->host_header, "[2001:db8::1]");
  EXPECT_TRUE(v6->verify_name_is_ip);
  EXPECT_EQ(v6->sni, "") << "no IP literal in SNI (RFC 6066)";

  auto named = kube::parse_server_address("https://192.0.2.10:6443", "kubernetes.default.svc");
  ASSERT_TRUE(named);
  EXPECT_EQ(named->verify_name, "kubernetes.default.svc");
  EXPECT_EQ(named->sni, "kubernetes.default.svc");
  EXPECT_FALSE(named->verify_name_is_ip);
}

TEST_F(KubeTlsTest, FromAKubeconfigFileOnDiskToARequest) {
  TempDir dir;
  const auto cert = ca_.issue(
      {.common_name = "tetherd:node-a", .organizations = {"tetherd:nodes"}, .server_auth = false});
  auto write = [&](const std::string& name, const std::string& text, mode_t mode) {
    const auto path = dir.file(name);
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  };
  write("ca.crt", ca_.cert_pem(), 0644);
  write("node.crt", cert.cert_pem, 0644);
  write("node.key", cert.key_pem, 0600);
  const auto path =
      write("controlplane.kubeconfig",
            "apiVersion: v1\nkind: Config\ncurrent-context: cloud\n"
            "clusters:\n- name: cloud\n  cluster:\n    server: " +
                server_->url() +
                "\n    certificate-authority: ca.crt\n"
                "users:\n- name: node-a\n  user:\n"
                "    client-certificate: node.crt\n    client-key: node.key\n"
                "contexts:\n- name: cloud\n  context: {cluster: cloud, user: node-a}\n",
            0600);
  auto k = load_kubeconfig(path);
  ASSERT_TRUE(k) << k.error().message;
  auto r = get_with(*k);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_EQ(server_->requests().back().user, "tetherd:node-a");
}

}  // namespace
}  // namespace tetherd::test
