// The node's kubeconfig as enroll writes it, read back by the parser
// tetherd (and kubectl) use: every field survives, names with YAML's
// special characters included.

#include "agent/config/kubeconfig_writer.h"

#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "agent/config/kubeconfig.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace tetherd {
namespace {

TEST(KubeconfigWriter, WhatIsWrittenIsWhatIsRead) {
  test::TempDir dir;
  test::TestCa ca("cloud CA");
  test::LeafOptions leaf;
  leaf.common_name = "tetherd:edge-1";
  leaf.server_auth = false;
  const auto cert = ca.issue(leaf);
  dir.write("node.crt", cert.cert_pem);
  dir.write("node.key", cert.key_pem);
  chmod(dir.file("node.key").c_str(), 0600);

  const std::string text = render_kubeconfig({.server = "https://198.51.100.7:6443",
                                              .ca_pem = ca.cert_pem(),
                                              .client_certificate = dir.file("node.crt"),
                                              .client_key = dir.file("node.key"),
                                              .user = "tetherd:edge-1"});
  auto k = parse_kubeconfig(text, dir.file("cloud.kubeconfig"));
  ASSERT_TRUE(k) << k.error().message << "\n" << text;
  EXPECT_EQ(k->server, "https://198.51.100.7:6443");
  EXPECT_EQ(k->ca_pem, ca.cert_pem());
  EXPECT_EQ(k->client_cert_pem, cert.cert_pem);
  EXPECT_EQ(k->client_key_pem, cert.key_pem);
  EXPECT_EQ(k->context, "tetherd:edge-1");
  EXPECT_TRUE(k->token.empty());
  // The files are named, so a renewal that replaces them is followed.
  EXPECT_EQ(k->files.size(), 2u);
}

}  // namespace
}  // namespace tetherd
