// kubeconfig loading, on fixtures shaped like a real k3s.yaml and a kubeadm
// admin.conf (test/fixtures/kubeconfig/), copied into a temporary directory
// so the test sets their modes.

#include "agent/config/kubeconfig.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

const std::string kFixtures = TETHERD_SOURCE_DIR "/test/fixtures/kubeconfig/";

class KubeconfigTest : public ::testing::Test {
 protected:
  // Writes `text` to `name` in the temp dir with `mode`; returns the path.
  std::string put(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::string path = tmp_.file(name);
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::trunc) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  std::string fixture(const std::string& name, mode_t mode = 0600) {
    std::ifstream in(kFixtures + name);
    std::stringstream s;
    s << in.rdbuf();
    return put(name, s.str(), mode);
  }
  // A minimal kubeconfig with `cluster` and `user` bodies.
  std::string minimal(const std::string& cluster, const std::string& user) {
    return "clusters:\n- name: c\n  cluster:\n" + cluster +
           "contexts:\n- name: x\n  context: {cluster: c, user: u}\n"
           "current-context: x\nusers:\n- name: u\n  user:\n" +
           user;
  }
  std::string error_of(const std::string& text, mode_t mode = 0600) {
    auto k = load_kubeconfig(put("kubeconfig", text, mode));
    EXPECT_FALSE(k.has_value());
    return k ? "" : k.error().message;
  }

  test::TempDir tmp_;
};

TEST_F(KubeconfigTest, K3sYaml) {
  const std::string path = fixture("k3s.yaml");
  auto k = load_kubeconfig(path);
  ASSERT_TRUE(k.has_value()) << k.error().message;
  EXPECT_EQ(k->context, "default");
  EXPECT_EQ(k->server, "https://127.0.0.1:6443");
  EXPECT_EQ(k->ca_pem, "-----BEGIN CERTIFICATE-----\nk3s-server-ca\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(k->client_cert_pem,
            "-----BEGIN CERTIFICATE-----\nk3s-admin\n-----END CERTIFICATE-----\n");
  EXPECT_EQ(k->client_key_pem,
            "-----BEGIN EC PRIVATE KEY-----\nk3s-admin-key\n-----END EC PRIVATE KEY-----\n");
  EXPECT_TRUE(k->token.empty());
}

TEST_F(KubeconfigTest, AnEmbeddedKeyInAReadableFileIsRefused) {
  const std::string path = fixture("k3s.yaml", 0644);
  auto k = load_kubeconfig(path);
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().message, path +
                                   " holds an embedded private key (client-key-data) and has "
                                   "mode 0644: it must not be readable by group or others "
                                   "(chmod 600 " +
                                   path + ")");
}

TEST_F(KubeconfigTest, KubeadmAdminConfCurrentAndNamedContexts) {
  const std::string path = fixture("admin.conf");
  auto admin = load_kubeconfig(path);
  ASSERT_TRUE(admin.has_value()) << admin.error().message;
  EXPECT_EQ(admin->context, "kubernetes-admin@kubernetes");
  EXPECT_EQ(admin->server, "https://203.0.113.10:6443");

  // The other context uses files, relative to the kubeconfig's directory.
  put("certs/edge.crt", "CERT");
  put("certs/edge.key", "KEY");
  auto edge = load_kubeconfig(path, "edge@cloud");
  ASSERT_TRUE(edge.has_value()) << edge.error().message;
  EXPECT_EQ(edge->server, "https://cloud.example.net:6443");
  EXPECT_EQ(edge->tls_server_name, "kubernetes.default.svc");
  EXPECT_EQ(edge->client_cert_pem, "CERT");
  EXPECT_EQ(edge->client_key_pem, "KEY");
  // What a file held, not the read's 1 MiB of room: a kubeconfig in use
  // holds these for as long as it lives (three kubeconfigs' PEMs were 6 MiB
  // of an idle daemon's heap).
  EXPECT_LT(edge->client_cert_pem.capacity(), 4096u);
  EXPECT_LT(edge->client_key_pem.capacity(), 4096u);

  chmod(tmp_.file("certs/edge.key").c_str(), 0640);
  auto shared = load_kubeconfig(path, "edge@cloud");
  ASSERT_FALSE(shared.has_value());
  EXPECT_NE(shared.error().message.find("certs/edge.key holds a private key and has mode 0640"),
            std::string::npos)
      << shared.error().message;

  auto missing = load_kubeconfig(path, "nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message, path + ": no context named \"nope\" in contexts");
}

TEST_F(KubeconfigTest, TokenAndTokenFile) {
  auto k =
      load_kubeconfig(put("a", minimal("    server: https://192.0.2.1\n", "    token: abc\n")));
  ASSERT_TRUE(k.has_value()) << k.error().message;
  EXPECT_EQ(k->token, "abc");
  EXPECT_TRUE(k->ca_pem.empty()) << "no CA: the system's trust store";

  put("token", "s3cret\n");
  k = load_kubeconfig(
      put("b", minimal("    server: https://192.0.2.1\n", "    tokenFile: token\n")));
  ASSERT_TRUE(k.has_value()) << k.error().message;
  EXPECT_EQ(k->token, "s3cret");
  chmod(tmp_.file("token").c_str(), 0644);
  EXPECT_FALSE(load_kubeconfig(
                   put("c", minimal("    server: https://192.0.2.1\n", "    tokenFile: token\n")))
                   .has_value());
}

// A kubeconfig holding its token inline is itself the secret (a bootstrap
// kubeconfig, for instance): refused when others can read it, as a key is.
TEST_F(KubeconfigTest, AnEmbeddedTokenInAReadableFileIsRefused) {
  const std::string path =
      put("a", minimal("    server: https://192.0.2.1\n", "    token: abc\n"), 0640);
  auto k = load_kubeconfig(path);
  ASSERT_FALSE(k.has_value());
  EXPECT_EQ(k.error().message, path +
                                   " holds an embedded bearer token (token) and has mode 0640: "
                                   "it must not be readable by group or others (chmod 600 " +
                                   path + ")");
  chmod(path.c_str(), 0600);
  EXPECT_TRUE(load_kubeconfig(path).has_value());
}

// A token goes into a header line: one that could write a header of its
// own (a line break), or is not a token at all, is refused, inline or in
// its file.
TEST_F(KubeconfigTest, ATokenThatCouldWriteAHeaderIsRefused) {
  auto inline_token = load_kubeconfig(
      put("a", minimal("    server: https://192.0.2.1\n", "    token: \"abc\\r\\nX-Evil: 1\"\n")));
  ASSERT_FALSE(inline_token.has_value());
  EXPECT_NE(inline_token.error().message.find("not a bearer token"), std::string::npos)
      << inline_token.error().message;
  EXPECT_EQ(inline_token.error().message.find("abc"), std::string::npos)
      << "the token is never repeated in an error";

  put("token", "abc\r\nX-Evil: 1\n");
  chmod(tmp_.file("token").c_str(), 0600);
  auto in_file = load_kubeconfig(
      put("b", minimal("    server: https://192.0.2.1\n", "    tokenFile: token\n")));
  ASSERT_FALSE(in_file.has_value());
  EXPECT_NE(in_file.error().message.find("not a bearer token"), std::string::npos);

  put("token", "\n");
  chmod(tmp_.file("token").c_str(), 0600);
  auto empty = load_kubeconfig(
      put("c", minimal("    server: https://192.0.2.1\n", "    tokenFile: token\n")));
  ASSERT_FALSE(empty.has_value());
  EXPECT_NE(empty.error().message.find("is empty"), std::string::npos) << empty.error().message;
}

TEST_F(KubeconfigTest, WhatIsRefusedSaysWhy) {
  const std::string server = "    server: https://192.0.2.1:6443\n";
  const std::string token = "    token: abc\n";
  EXPECT_NE(error_of(minimal(server + "    insecure-skip-tls-verify: true\n", token))
                .find("clusters[c].cluster.insecure-skip-tls-verify: refused; tetherd always "
                      "verifies the server"),
            std::string::npos);
  EXPECT_NE(error_of(minimal(server, "    exec: {command: aws}\n"))
                .find("users[u].user.exec: credential plugins are not supported"),
            std::string::npos);
  EXPECT_NE(error_of(minimal(server, "    auth-provider: {name: gcp}\n"))
                .find("users[u].user.auth-provider: credential plugins are not supported"),
            std::string::npos);
  EXPECT_NE(error_of(minimal(server, "    username: a\n    password: b\n"))
                .find("basic auth is not supported"),
            std::string::npos);
  EXPECT_NE(error_of(minimal("    server: http://192.0.2.1:6443\n", token))
                .find("clusters[c].cluster.server: expected an https:// URL, got "
                      "\"http://192.0.2.1:6443\""),
            std::string::npos);
  EXPECT_NE(error_of(minimal(server, "    client-certificate-data: Zm9v\n"))
                .find("a client certificate needs its key"),
            std::string::npos);
  EXPECT_NE(error_of(minimal(server, "    client-key-data: '!!!'\n"))
                .find("users[u].user.client-key-data is not valid base64"),
            std::string::npos);
  EXPECT_NE(error_of(minimal(server, "    {}\n")).find("no credentials"), std::string::npos);
  EXPECT_NE(error_of(minimal(server + "    certificate-authority: missing.crt\n", token))
                .find("cannot read "),
            std::string::npos);
  EXPECT_NE(error_of("clusters: [\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error_of("- a\n").find("not a kubeconfig"), std::string::npos);
  // yaml-cpp loops for ever on this one (found by fuzzing): refused first.
  EXPECT_NE(error_of(std::string("\0,\0\0", 4)).find("line 1: a control character"),
            std::string::npos);
  EXPECT_NE(error_of("clusters: []\n").find("no current-context"), std::string::npos);
  auto absent = load_kubeconfig(tmp_.file("absent"));
  ASSERT_FALSE(absent.has_value());
  EXPECT_EQ(absent.error().message,
            "cannot read " + tmp_.file("absent") + ": No such file or directory");
}

TEST_F(KubeconfigTest, ABigFileIsRefused) {
  auto k = load_kubeconfig(put("big", std::string(kMaxKubeconfigBytes + 1, '#')));
  ASSERT_FALSE(k.has_value());
  EXPECT_NE(k.error().message.find("is larger than 1 MiB"), std::string::npos);
}

}  // namespace
}  // namespace tetherd
