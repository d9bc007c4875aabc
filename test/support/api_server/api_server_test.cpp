// The test API server over real mTLS: authentication, authorization, REST
// semantics, and that bad clients cannot hurt it.

#include <boost/json/serialize.hpp>

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {
namespace json = boost::json;

constexpr char kMergePatch[] = "application/merge-patch+json";
constexpr char kJson[] = "application/json";

std::string edge_node(const std::string& name, const std::string& extra = "") {
  return R"({"apiVersion":"tetherd.io/v1alpha1","kind":"EdgeNode","metadata":{"name":")" + name +
         R"("},"spec":{"firewall":{"allowedSources":["203.0.113.10/32"]}})" + extra + "}";
}

class MutualTlsTest : public ApiServerTest {};

TEST_F(MutualTlsTest, ClientFromAnotherCaIsRefused) {
  start();
  TestCa other("someone else's CA");
  LeafOptions options;
  options.common_name = "system:admin";
  options.organizations = {"system:masters"};
  auto stranger = client(other.issue(options));
  // TLS 1.2 fails the handshake; with 1.3 the client's side may finish first
  // and see the server's alert on the first read. No answer either way.
  HttpResponse response = stranger->call("GET", "/readyz");
  EXPECT_TRUE(response.error);
  EXPECT_EQ(response.status, 0u);
  EXPECT_TRUE(server().requests().empty());
  EXPECT_EQ(server().connections_accepted(), 1u);
}

TEST_F(MutualTlsTest, ClientWithoutCertificateIsRefused) {
  start();
  auto anonymous = client(std::nullopt);
  EXPECT_TRUE(anonymous->call("GET", "/readyz").error);
  EXPECT_TRUE(server().requests().empty());
}

TEST_F(MutualTlsTest, CommonNameIsTheUserAndOtherNodesAreForbidden) {
  start();
  server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-a"}}}});
  server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-b"}}}});
  server().allow(AccessRule{"tetherd:node-a",
                            {"get", "watch", "patch"},
                            "tetherd.io",
                            "edgenodes",
                            "tetherd-system",
                            {"node-a"},
                            {}});
  auto node_a = client(user_cert("tetherd:node-a", {"tetherd:nodes"}));

  HttpResponse own = node_a->call("GET", object(kEdgeNodes, "node-a"));
  ASSERT_FALSE(own.error) << own.error.message();
  EXPECT_EQ(own.status, 200u);
  EXPECT_EQ(str(own.json(), {"metadata", "name"}), "node-a");

  HttpResponse other = node_a->call("GET", object(kEdgeNodes, "node-b"));
  EXPECT_EQ(other.status, 403u);
  json::value status = other.json();
  EXPECT_EQ(str(status, {"kind"}), "Status");
  EXPECT_EQ(str(status, {"status"}), "Failure");
  EXPECT_EQ(str(status, {"reason"}), "Forbidden");
  EXPECT_EQ(num(status, {"code"}), 403);
  EXPECT_EQ(
      str(status, {"message"}),
      "edgenodes.tetherd.io \"node-b\" is forbidden: User \"tetherd:node-a\" cannot get "
      "resource \"edgenodes\" in API group \"tetherd.io\" in the namespace \"tetherd-system\"");
  EXPECT_EQ(str(status, {"details", "name"}), "node-b");
  EXPECT_EQ(str(status, {"details", "group"}), "tetherd.io");
  EXPECT_EQ(str(status, {"details", "kind"}), "edgenodes");

  // The status subresource is a resource of its own to RBAC.
  HttpResponse status_patch = node_a->call("PATCH", object(kEdgeNodes, "node-a") + "/status",
                                           R"({"status":{"x":1}})", kMergePatch);
  EXPECT_EQ(status_patch.status, 403u);
  EXPECT_NE(
      str(status_patch.json(), {"message"}).find("cannot patch resource \"edgenodes/status\""),
      std::string::npos);

  std::vector<RequestRecord> records = server().requests();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].user, "tetherd:node-a");
  EXPECT_EQ(records[0].method, "GET");
  EXPECT_EQ(records[0].status, 200u);
  EXPECT_EQ(records[1].status, 403u);
  EXPECT_EQ(server().connections_accepted(), 1u);  // keep-alive
}

TEST_F(MutualTlsTest, NamedRulesAllowListAndWatchOnlyPinnedToTheName) {
  start();
  server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-a"}}}});
  server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-b"}}}});
  server().allow(AccessRule{"tetherd:node-a",
                            {"list", "watch"},
                            "tetherd.io",
                            "edgenodes",
                            "tetherd-system",
                            {"node-a"},
                            {}});
  auto node_a = client(user_cert("tetherd:node-a"));
  HttpResponse all = node_a->call("GET", kEdgeNodes);
  EXPECT_EQ(all.status, 403u);
  EXPECT_EQ(str(all.json(), {"message"}),
            "edgenodes.tetherd.io is forbidden: User \"tetherd:node-a\" cannot list resource "
            "\"edgenodes\" in API group \"tetherd.io\" in the namespace \"tetherd-system\"");
  HttpResponse pinned =
      node_a->call("GET", std::string(kEdgeNodes) + "?fieldSelector=metadata.name%3Dnode-a");
  ASSERT_EQ(pinned.status, 200u);
  ASSERT_EQ(pinned.json().at("items").as_array().size(), 1u);
  EXPECT_EQ(
      node_a->call("GET", std::string(kEdgeNodes) + "?fieldSelector=metadata.name%3Dnode-b").status,
      403u);
}

TEST_F(MutualTlsTest, BearerTokensWhenConfigured) {
  ApiServerOptions options = default_options();
  options.tokens = {{"s3cret", "robot"}};
  start(options);
  server().allow(AccessRule{"robot", {"*"}, "*", "*", "*", {}, {}});
  auto anonymous = client(std::nullopt);
  HttpResponse refused = anonymous->call("GET", kLeases);
  EXPECT_EQ(refused.status, 401u);
  EXPECT_EQ(str(refused.json(), {"reason"}), "Unauthorized");
  EXPECT_EQ(str(refused.json(), {"message"}), "Unauthorized");
  HttpResponse wrong = anonymous->call("GET", kLeases, {}, {}, {{"Authorization", "Bearer nope"}});
  EXPECT_EQ(wrong.status, 401u);
  HttpResponse allowed =
      anonymous->call("GET", kLeases, {}, {}, {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(allowed.status, 200u);
  EXPECT_EQ(server().requests().back().user, "robot");
  // A certificate still works.
  EXPECT_EQ(admin()->call("GET", kLeases).status, 200u);
}

TEST_F(MutualTlsTest, ServiceAccountTokensAreInTheirGroups) {
  ApiServerOptions options = default_options();
  options.tokens = {{"sa-token", "system:serviceaccount:tetherd-system:tetherd-bootstrap"}};
  start(options);
  AccessRule rule{"", {"get", "list"}, "coordination.k8s.io", "leases", "*", {}, {}};
  rule.users_in_group = "system:serviceaccounts:tetherd-system";
  server().allow(rule);
  auto sa = client(std::nullopt);
  EXPECT_EQ(sa->call("GET", kLeases, {}, {}, {{"Authorization", "Bearer sa-token"}}).status, 200u);
  HttpResponse refused =
      sa->call("GET", kEdgeNodes, {}, {}, {{"Authorization", "Bearer sa-token"}});
  EXPECT_EQ(refused.status, 403u);
  EXPECT_NE(str(refused.json(), {"message"})
                .find("User \"system:serviceaccount:tetherd-system:tetherd-bootstrap\" cannot "
                      "list resource \"edgenodes\""),
            std::string::npos)
      << str(refused.json(), {"message"});
}

TEST_F(MutualTlsTest, AnonymousRequestsWhenOnAreJudgedByRbac) {
  ApiServerOptions options = default_options();
  options.anonymous = true;
  options.tokens = {{"s3cret", "robot"}};
  options.extra_chain_pem = test_ca().cert_pem();
  start(options);
  // kubeadm's rule: anyone may read kube-public/cluster-info.
  AccessRule rule{"", {"get"}, "", "configmaps", "kube-public", {"cluster-info"}, {}};
  rule.users_in_group = "system:unauthenticated";
  server().allow(rule);
  server().create("/api/v1/namespaces/kube-public/configmaps",
                  {{"apiVersion", "v1"},
                   {"kind", "ConfigMap"},
                   {"metadata", {{"name", "cluster-info"}, {"namespace", "kube-public"}}},
                   {"data", {{"kubeconfig", "x"}}}});
  auto anonymous = client(std::nullopt);
  EXPECT_EQ(anonymous->call("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info").status,
            200u);
  EXPECT_EQ(server().requests().back().user, "system:anonymous");
  HttpResponse other = anonymous->call("GET", kLeases);
  EXPECT_EQ(other.status, 403u);
  EXPECT_NE(str(other.json(), {"message"}).find("User \"system:anonymous\""), std::string::npos);
  // A token that is not known is still refused, not taken as anonymous.
  EXPECT_EQ(anonymous
                ->call("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info", {}, {},
                       {{"Authorization", "Bearer nope"}})
                .status,
            401u);
}

class RestTest : public ApiServerTest {};

TEST_F(RestTest, CrudRoundTripWithResourceVersions) {
  start();
  auto kubectl = admin();
  const std::string lease =
      R"({"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"tetherd-node-a"},)"
      R"("spec":{"holderIdentity":"node-a","leaseDurationSeconds":40}})";
  HttpResponse created = kubectl->call("POST", kLeases, lease, kJson);
  ASSERT_EQ(created.status, 201u) << created.body;
  json::value lease_object = created.json();
  std::string version = str(lease_object, {"metadata", "resourceVersion"});
  EXPECT_EQ(version, std::to_string(server().resource_version()));
  EXPECT_EQ(str(lease_object, {"metadata", "namespace"}), "tetherd-system");
  EXPECT_EQ(str(lease_object, {"metadata", "uid"}).size(), 36u);
  EXPECT_EQ(str(lease_object, {"metadata", "creationTimestamp"}).size(),
            20u);  // 2024-01-02T03:04:05Z
  EXPECT_EQ(num(lease_object, {"metadata", "generation"}), 1);
  EXPECT_EQ(created.header("content-type"), "application/json");

  HttpResponse duplicate = kubectl->call("POST", kLeases, lease, kJson);
  EXPECT_EQ(duplicate.status, 409u);
  EXPECT_EQ(str(duplicate.json(), {"reason"}), "AlreadyExists");
  EXPECT_EQ(str(duplicate.json(), {"message"}),
            "leases.coordination.k8s.io \"tetherd-node-a\" already exists");

  HttpResponse got = kubectl->call("GET", object(kLeases, "tetherd-node-a"));
  ASSERT_EQ(got.status, 200u);
  EXPECT_EQ(got.json(), lease_object);

  // A PUT carrying the current resourceVersion succeeds...
  json::object renewed = lease_object.as_object();
  renewed["spec"].as_object()["renewTime"] = "2024-01-02T03:04:05.000000Z";
  HttpResponse updated =
      kubectl->call("PUT", object(kLeases, "tetherd-node-a"), json::serialize(renewed), kJson);
  ASSERT_EQ(updated.status, 200u) << updated.body;
  std::string new_version = str(updated.json(), {"metadata", "resourceVersion"});
  EXPECT_GT(std::stoull(new_version), std::stoull(version));
  EXPECT_EQ(str(updated.json(), {"metadata", "uid"}), str(lease_object, {"metadata", "uid"}));

  // ...the same PUT again is stale.
  HttpResponse stale =
      kubectl->call("PUT", object(kLeases, "tetherd-node-a"), json::serialize(renewed), kJson);
  EXPECT_EQ(stale.status, 409u);
  EXPECT_EQ(str(stale.json(), {"reason"}), "Conflict");
  EXPECT_EQ(str(stale.json(), {"message"}),
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"tetherd-node-a\": the "
            "object has been modified; please apply your changes to the latest version and try "
            "again");
  EXPECT_EQ(str(stale.json(), {"details", "kind"}), "leases");

  // Without a resourceVersion a PUT is unconditional.
  renewed["metadata"].as_object().erase("resourceVersion");
  renewed["spec"].as_object()["holderIdentity"] = "node-b";
  EXPECT_EQ(kubectl->call("PUT", object(kLeases, "tetherd-node-a"), json::serialize(renewed), kJson)
                .status,
            200u);

  HttpResponse deleted = kubectl->call("DELETE", object(kLeases, "tetherd-node-a"));
  ASSERT_EQ(deleted.status, 200u);
  EXPECT_EQ(str(deleted.json(), {"spec", "holderIdentity"}), "node-b");
  EXPECT_EQ(str(deleted.json(), {"metadata", "resourceVersion"}),
            std::to_string(server().resource_version()));

  HttpResponse missing = kubectl->call("GET", object(kLeases, "tetherd-node-a"));
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(str(missing.json(), {"reason"}), "NotFound");
  EXPECT_EQ(str(missing.json(), {"message"}),
            "leases.coordination.k8s.io \"tetherd-node-a\" not found");
  EXPECT_EQ(kubectl->call("PUT", object(kLeases, "tetherd-node-a"), json::serialize(renewed), kJson)
                .status,
            404u);
  EXPECT_EQ(server().connections_accepted(), 1u);
}

TEST_F(RestTest, StatusSubresourceAndGeneration) {
  start();
  auto kubectl = admin();
  const std::string node = object(kEdgeNodes, "node-a");
  HttpResponse created = kubectl->call("POST", kEdgeNodes,
                                       edge_node("node-a", R"(,"status":{"ignored":true})"), kJson);
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_FALSE(created.json().as_object().contains("status"));  // dropped on create

  // /status changes the status only, and not the generation.
  HttpResponse status = kubectl->call(
      "PATCH", node + "/status",
      R"({"spec":{"firewall":null},"status":{"observedGeneration":1,"agentVersion":"0.1.0"}})",
      kMergePatch);
  ASSERT_EQ(status.status, 200u) << status.body;
  EXPECT_EQ(str(status.json(), {"status", "agentVersion"}), "0.1.0");
  EXPECT_TRUE(status.json().at("spec").at("firewall").at("allowedSources").is_array());
  EXPECT_EQ(num(status.json(), {"metadata", "generation"}), 1);

  // The main resource changes the spec only, and bumps the generation.
  HttpResponse spec = kubectl->call(
      "PATCH", node, R"({"spec":{"linkerd":{"rotate":"r1"}},"status":{"agentVersion":"forged"}})",
      kMergePatch);
  ASSERT_EQ(spec.status, 200u) << spec.body;
  EXPECT_EQ(str(spec.json(), {"spec", "linkerd", "rotate"}), "r1");
  EXPECT_EQ(str(spec.json(), {"status", "agentVersion"}), "0.1.0");
  EXPECT_EQ(num(spec.json(), {"metadata", "generation"}), 2);

  // Metadata changes do not bump it.
  HttpResponse labelled =
      kubectl->call("PATCH", node, R"({"metadata":{"labels":{"site":"shop"}}})", kMergePatch);
  EXPECT_EQ(num(labelled.json(), {"metadata", "generation"}), 2);

  // A PUT to /status with a stale resourceVersion conflicts.
  json::object body = created.json().as_object();
  body["status"] = json::object{{"agentVersion", "0.2.0"}};
  EXPECT_EQ(kubectl->call("PUT", node + "/status", json::serialize(body), kJson).status, 409u);
}

TEST_F(RestTest, PatchRulesAsKubeApiserver) {
  start();
  auto kubectl = admin();
  const std::string node = object(kEdgeNodes, "node-a");
  ASSERT_EQ(kubectl->call("POST", kEdgeNodes, edge_node("node-a"), kJson).status, 201u);

  HttpResponse wrong_type = kubectl->call("PATCH", node, R"({"spec":{}})", kJson);
  EXPECT_EQ(wrong_type.status, 415u);
  EXPECT_EQ(str(wrong_type.json(), {"reason"}), "UnsupportedMediaType");
  EXPECT_EQ(kubectl->call("PATCH", node, R"({"spec":{}})", "application/json-patch+json").status,
            415u);

  HttpResponse stale =
      kubectl->call("PATCH", node + "/status",
                    R"({"metadata":{"resourceVersion":"1"},"status":{"a":1}})", kMergePatch);
  EXPECT_EQ(stale.status, 409u);
  EXPECT_EQ(str(stale.json(), {"reason"}), "Conflict");

  EXPECT_EQ(kubectl->call("PATCH", node, "{not json", kMergePatch).status, 400u);
  EXPECT_EQ(kubectl->call("PATCH", object(kEdgeNodes, "node-z"), "{}", kMergePatch).status, 404u);
}

TEST_F(RestTest, ListAndFieldSelectors) {
  start();
  auto kubectl = admin();
  for (const char* name : {"node-a", "node-b", "node-c"})
    ASSERT_EQ(kubectl->call("POST", kEdgeNodes, edge_node(name), kJson).status, 201u);
  ASSERT_EQ(
      kubectl->call("POST", kConfigMaps, R"({"metadata":{"name":"cm"},"data":{"k":"v"}})", kJson)
          .status,
      201u);

  HttpResponse list = kubectl->call("GET", kEdgeNodes);
  ASSERT_EQ(list.status, 200u);
  json::value body = list.json();
  EXPECT_EQ(str(body, {"kind"}), "EdgeNodeList");
  EXPECT_EQ(str(body, {"apiVersion"}), "tetherd.io/v1alpha1");
  EXPECT_EQ(str(body, {"metadata", "resourceVersion"}),
            std::to_string(server().resource_version()));
  ASSERT_EQ(body.at("items").as_array().size(), 3u);
  EXPECT_EQ(str(body.at("items").at(0), {"kind"}), "EdgeNode");  // custom resources keep it

  HttpResponse one =
      kubectl->call("GET", std::string(kEdgeNodes) + "?fieldSelector=metadata.name%3Dnode-b");
  ASSERT_EQ(one.json().at("items").as_array().size(), 1u);
  EXPECT_EQ(str(one.json().at("items").at(0), {"metadata", "name"}), "node-b");
  HttpResponse others =
      kubectl->call("GET", std::string(kEdgeNodes) + "?fieldSelector=metadata.name!%3Dnode-b");
  EXPECT_EQ(others.json().at("items").as_array().size(), 2u);

  HttpResponse unsupported =
      kubectl->call("GET", std::string(kEdgeNodes) + "?fieldSelector=spec.x%3Dy");
  EXPECT_EQ(unsupported.status, 400u);
  EXPECT_EQ(str(unsupported.json(), {"reason"}), "BadRequest");
  EXPECT_EQ(str(unsupported.json(), {"message"}), "field label not supported: spec.x");

  HttpResponse config_maps = kubectl->call("GET", kConfigMaps);
  EXPECT_EQ(str(config_maps.json(), {"kind"}), "ConfigMapList");
  EXPECT_EQ(str(config_maps.json(), {"apiVersion"}), "v1");
  EXPECT_FALSE(config_maps.json().at("items").at(0).as_object().contains("kind"));  // built-in
}

TEST_F(RestTest, BadBodiesAndPaths) {
  start();
  auto kubectl = admin();
  HttpResponse nameless = kubectl->call("POST", kEdgeNodes, R"({"spec":{}})", kJson);
  EXPECT_EQ(nameless.status, 422u);
  EXPECT_EQ(str(nameless.json(), {"reason"}), "Invalid");
  EXPECT_EQ(str(nameless.json(), {"message"}),
            "EdgeNode.tetherd.io \"\" is invalid: metadata.name: Required value: name or "
            "generateName is required");
  EXPECT_EQ(
      kubectl
          ->call("POST", kEdgeNodes, R"({"metadata":{"name":"a","namespace":"elsewhere"}})", kJson)
          .status,
      400u);
  EXPECT_EQ(kubectl->call("POST", kEdgeNodes, "[1,2", kJson).status, 400u);
  EXPECT_EQ(kubectl->call("POST", kEdgeNodes, edge_node("a"), "text/plain").status, 415u);
  EXPECT_EQ(kubectl->call("POST", kLeases, edge_node("a"), kJson).status, 400u);  // wrong kind
  ASSERT_EQ(kubectl->call("POST", kEdgeNodes, edge_node("a"), kJson).status, 201u);
  HttpResponse renamed = kubectl->call("PUT", object(kEdgeNodes, "a"), edge_node("b"), kJson);
  EXPECT_EQ(renamed.status, 400u);
  EXPECT_EQ(str(renamed.json(), {"message"}),
            "the name of the object (b) does not match the name on the URL (a)");

  HttpResponse unknown = kubectl->call("GET", "/api/v1/namespaces/x/services");
  EXPECT_EQ(unknown.status, 404u);
  EXPECT_EQ(str(unknown.json(), {"message"}), "the server could not find the requested resource");
  EXPECT_EQ(str(unknown.json(), {"reason"}), "NotFound");
  HttpResponse ready = kubectl->call("GET", "/readyz");
  EXPECT_EQ(ready.status, 200u);
  EXPECT_EQ(ready.body, "ok");
  EXPECT_EQ(kubectl->call("GET", "/livez").body, "ok");
  EXPECT_EQ(str(kubectl->call("GET", "/version").json(), {"major"}), "1");
}

TEST_F(RestTest, ConnectionCloseIsHonoured) {
  start();
  auto kubectl = admin();
  HttpResponse last = kubectl->call("GET", "/readyz", {}, {}, {{"Connection", "close"}});
  EXPECT_EQ(last.status, 200u);
  EXPECT_EQ(last.header("connection"), "close");
  EXPECT_TRUE(kubectl->call("GET", "/readyz").error);  // the server closed it
}

}  // namespace
}  // namespace tetherd::test
