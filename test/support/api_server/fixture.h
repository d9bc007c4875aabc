#pragma once
// What the API server's tests share: one CA for the whole run, the server's
// identity, clients with a user's certificate, and a server per test.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test/support/api_server/api_server.h"
#include "test/support/api_server/test_client.h"
#include "test/support/test_pki.h"

namespace tetherd::test {

inline constexpr char kEdgeNodes[] =
    "/apis/tetherd.io/v1alpha1/namespaces/tetherd-system/edgenodes";
inline constexpr char kLeases[] = "/apis/coordination.k8s.io/v1/namespaces/tetherd-system/leases";
inline constexpr char kConfigMaps[] = "/api/v1/namespaces/tetherd-system/configmaps";
inline constexpr std::chrono::seconds kWait{5};

inline TestCa& test_ca() {
  static TestCa ca;
  return ca;
}

inline IssuedCert user_cert(const std::string& user, std::vector<std::string> groups = {}) {
  LeafOptions options;
  options.common_name = user;
  options.organizations = std::move(groups);
  options.server_auth = false;
  return test_ca().issue(options);
}

inline IssuedCert serving_cert() {
  LeafOptions options;
  options.common_name = "kube-apiserver";
  options.dns_names = {"localhost"};
  options.ip_addresses = {"127.0.0.1", "::1"};
  options.client_auth = false;
  return test_ca().issue(options);
}

class ApiServerTest : public ::testing::Test {
 protected:
  static ApiServerOptions default_options() {
    ApiServerOptions options;
    options.identity = serving_cert();
    options.client_ca_pem = test_ca().cert_pem();
    return options;
  }

  void start(ApiServerOptions options = default_options()) {
    server_ = std::make_unique<ApiServer>(std::move(options));
  }

  ApiServer& server() { return *server_; }

  std::unique_ptr<TestClient> client(std::optional<IssuedCert> certificate) {
    TlsClientOptions options;
    options.ca_pem = test_ca().cert_pem();
    options.certificate = std::move(certificate);
    return std::make_unique<TestClient>(server_->port(), std::move(options));
  }

  // A cluster admin: group system:masters.
  std::unique_ptr<TestClient> admin() {
    static const IssuedCert cert = user_cert("admin", {"system:masters"});
    return client(cert);
  }

  static std::string object(const std::string& collection, const std::string& name) {
    return collection + "/" + name;
  }

  std::unique_ptr<ApiServer> server_;
};

// The `key` string of a JSON object (empty when absent), e.g. at(v, "metadata", "name").
inline std::string str(const boost::json::value& value, std::initializer_list<const char*> path) {
  const boost::json::value* at = &value;
  for (const char* key : path) {
    if (!at->is_object()) return {};
    at = at->get_object().if_contains(key);
    if (at == nullptr) return {};
  }
  return at->is_string() ? std::string(at->get_string()) : std::string{};
}

inline std::int64_t num(const boost::json::value& value, std::initializer_list<const char*> path) {
  const boost::json::value* at = &value;
  for (const char* key : path) {
    if (!at->is_object()) return -1;
    at = at->get_object().if_contains(key);
    if (at == nullptr) return -1;
  }
  return at->is_int64()    ? at->get_int64()
         : at->is_uint64() ? static_cast<std::int64_t>(at->get_uint64())
                           : -1;
}

}  // namespace tetherd::test
