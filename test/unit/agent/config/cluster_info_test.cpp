// kube-public/cluster-info as an unverified server sends it: the CA read
// from a kubeadm-shaped ConfigMap, and every malformed shape a clear error.
#include "agent/config/cluster_info.h"

#include <gtest/gtest.h>

#include "agent/core/base64.h"

namespace tetherd {
namespace {

std::string configmap(const std::string& kubeconfig_yaml) {
  std::string escaped;
  for (char c : kubeconfig_yaml)
    escaped += c == '\n' ? std::string("\\n") : c == '"' ? std::string("\\\"") : std::string(1, c);
  return "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"data\":{\"kubeconfig\":\"" + escaped +
         "\"}}";
}

TEST(ClusterInfo, TheCaOfTheFirstCluster) {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  auto ca = cluster_info_ca(
      configmap("apiVersion: v1\nclusters:\n- cluster:\n"
                "    certificate-authority-data: " +
                encode_base64(pem) + "\n    server: https://192.0.2.10:6443\n  name: \"\"\n"));
  ASSERT_TRUE(ca) << ca.error().message;
  EXPECT_EQ(*ca, pem);
}

TEST(ClusterInfo, MalformedShapesAreClearErrors) {
  const std::pair<std::string, std::string> cases[] = {
      {"not json", "kube-public/cluster-info: not JSON"},
      {"{\"data\":{}}", "kube-public/cluster-info: no data.kubeconfig"},
      {"{\"data\":{\"kubeconfig\":7}}", "kube-public/cluster-info: no data.kubeconfig"},
      {configmap("clusters: {a: b}\n"),
       "kube-public/cluster-info: data.kubeconfig has no clusters"},
      {configmap("clusters: [ {"), "kube-public/cluster-info: data.kubeconfig is not YAML"},
      {configmap("clusters:\n- cluster: {server: x}\n"),
       "kube-public/cluster-info: data.kubeconfig has no certificate-authority-data"},
      {configmap("clusters:\n- cluster: {certificate-authority-data: '!!!'}\n"),
       "kube-public/cluster-info certificate-authority-data"},
  };
  for (const auto& [text, message] : cases) {
    auto ca = cluster_info_ca(text);
    ASSERT_FALSE(ca) << text;
    EXPECT_TRUE(ca.error().message.starts_with(message)) << text << ": " << ca.error().message;
  }
  const std::string huge = "{\"data\":{\"kubeconfig\":\"" + std::string(65 << 10, 'x') + "\"}}";
  auto big = cluster_info_ca(huge);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("larger than 65536 bytes"), std::string::npos);
}

}  // namespace
}  // namespace tetherd
