// Core v1 nodes, the one cluster-scoped resource: paths without a
// namespace, the generic verbs, RBAC at the cluster scope, kube-apiserver's
// messages; and /readyz failing as kube-apiserver's does.

#include <boost/json/parse.hpp>

#include "test/support/api_server/fixture.h"
#include "test/support/api_server/resources.h"

namespace tetherd::test {
namespace {
namespace json = boost::json;
using apiserver::parse_path;
using apiserver::PathKind;

constexpr char kNodes[] = "/api/v1/nodes";
constexpr char kJson[] = "application/json";
constexpr char kMergePatch[] = "application/merge-patch+json";

std::string node_body(const std::string& name, const std::string& ready) {
  return R"({"apiVersion":"v1","kind":"Node","metadata":{"name":")" + name +
         R"(","namespace":"ignored"},"spec":{"podCIDR":"10.42.0.0/24"},)"
         R"("status":{"conditions":[{"type":"Ready","status":")" +
         ready + R"(","reason":"KubeletReady"}]}})";
}

class NodesTest : public ApiServerTest {};

TEST(NodePaths, ClusterScopedWithoutANamespace) {
  auto collection = parse_path("/api/v1/nodes");
  EXPECT_EQ(collection.kind, PathKind::kCollection);
  ASSERT_NE(collection.type, nullptr);
  EXPECT_EQ(collection.type->kind, "Node");
  EXPECT_EQ(collection.namespace_, "");
  auto object = parse_path("/api/v1/nodes/node-a");
  EXPECT_EQ(object.kind, PathKind::kObject);
  EXPECT_EQ(object.name, "node-a");
  EXPECT_EQ(parse_path("/api/v1/nodes/node-a/status").kind, PathKind::kStatus);
  EXPECT_EQ(parse_path("/api/v1/namespaces/ns/nodes").kind, PathKind::kUnknown);
  // A namespaced type without a namespace: its collection across namespaces, and no objects.
  auto secrets = parse_path("/api/v1/secrets");
  EXPECT_EQ(secrets.kind, PathKind::kCollection);
  EXPECT_TRUE(secrets.all_namespaces);
  EXPECT_FALSE(collection.all_namespaces);
  EXPECT_EQ(parse_path("/api/v1/secrets/s").kind, PathKind::kUnknown);
  EXPECT_EQ(parse_path("/api/v1/nodes/a/b").kind, PathKind::kUnknown);
  // Namespaces themselves are a cluster-scoped collection.
  auto namespaces = parse_path("/api/v1/namespaces");
  EXPECT_EQ(namespaces.kind, PathKind::kCollection);
  ASSERT_NE(namespaces.type, nullptr);
  EXPECT_EQ(namespaces.type->kind, "Namespace");
  EXPECT_TRUE(parse_path("/apis/tetherd.io/v1alpha1/edgenodes").all_namespaces);
}

TEST_F(NodesTest, CrudStatusAndListLikeOtherBuiltIns) {
  start();
  auto kubectl = admin();
  // As the kubelet registers: the status comes with the create, and a
  // namespace in the body is cleared.
  HttpResponse created = kubectl->call("POST", kNodes, node_body("node-a", "True"), kJson);
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_FALSE(created.json().at("metadata").as_object().contains("namespace"));
  EXPECT_EQ(str(created.json(), {"kind"}), "Node");
  EXPECT_EQ(created.json().at("status").at("conditions").at(0).at("status"), "True");
  EXPECT_EQ(kubectl->call("POST", kNodes, node_body("node-a", "True"), kJson).status, 409u);

  HttpResponse got = kubectl->call("GET", "/api/v1/nodes/node-a");
  ASSERT_EQ(got.status, 200u);
  EXPECT_EQ(str(got.json(), {"spec", "podCIDR"}), "10.42.0.0/24");

  // The status moves only through /status.
  HttpResponse patched =
      kubectl->call("PATCH", "/api/v1/nodes/node-a",
                    R"({"spec":{"unschedulable":true},"status":{"conditions":[]}})", kMergePatch);
  ASSERT_EQ(patched.status, 200u);
  EXPECT_EQ(patched.json().at("status").at("conditions").as_array().size(), 1u);
  HttpResponse not_ready = kubectl->call(
      "PATCH", "/api/v1/nodes/node-a/status",
      R"({"status":{"conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady"}]}})",
      kMergePatch);
  ASSERT_EQ(not_ready.status, 200u);
  EXPECT_EQ(server().get("/api/v1/nodes/node-a")->at("status").at("conditions").at(0).at("status"),
            "False");

  server().create(kNodes, json::parse(node_body("node-b", "True")).as_object());
  HttpResponse list = kubectl->call("GET", kNodes);
  ASSERT_EQ(list.status, 200u);
  EXPECT_EQ(str(list.json(), {"kind"}), "NodeList");
  ASSERT_EQ(list.json().at("items").as_array().size(), 2u);
  EXPECT_FALSE(list.json().at("items").at(0).as_object().contains("kind"));  // built-in
  HttpResponse one =
      kubectl->call("GET", std::string(kNodes) + "?fieldSelector=metadata.name%3D" + "node-b");
  EXPECT_EQ(one.json().at("items").as_array().size(), 1u);

  HttpResponse removed = kubectl->call("DELETE", "/api/v1/nodes/node-b");
  EXPECT_EQ(removed.status, 200u);
  HttpResponse missing = kubectl->call("GET", "/api/v1/nodes/node-b");
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(str(missing.json(), {"message"}), "nodes \"node-b\" not found");
  EXPECT_EQ(str(missing.json(), {"reason"}), "NotFound");
  EXPECT_EQ(str(missing.json(), {"details", "kind"}), "nodes");
  EXPECT_EQ(kubectl->call("GET", "/api/v1/namespaces/default/nodes/node-a").status, 404u);
}

TEST_F(NodesTest, WatchSeesNodeEvents) {
  start();
  auto watcher = admin();
  HttpResponse head = watcher->start_watch(std::string(kNodes) + "?watch=true");
  ASSERT_EQ(head.status, 200u);
  ASSERT_TRUE(server().wait_for_watches(1, kWait));
  server().create(kNodes, json::parse(node_body("node-a", "True")).as_object());
  WatchChunk chunk = watcher->next_chunk();
  ASSERT_EQ(chunk.kind, WatchChunk::Kind::kChunk) << chunk.error.message();
  json::value event = json::parse(chunk.data);
  EXPECT_EQ(str(event, {"type"}), "ADDED");
  EXPECT_EQ(str(event, {"object", "metadata", "name"}), "node-a");
}

TEST_F(NodesTest, RbacGrantsNodesAtTheClusterScopeOnly) {
  start();
  server().create(kNodes, json::parse(node_body("node-a", "True")).as_object());
  // A namespaced grant does not reach a cluster-scoped resource.
  server().allow(AccessRule{"reader", {"get"}, "", "nodes", "tetherd-system", {}});
  auto reader = client(user_cert("reader"));
  HttpResponse denied = reader->call("GET", "/api/v1/nodes/node-a");
  EXPECT_EQ(denied.status, 403u);
  EXPECT_EQ(str(denied.json(), {"message"}),
            "nodes \"node-a\" is forbidden: User \"reader\" cannot get resource \"nodes\" in API "
            "group \"\" at the cluster scope");

  server().allow(AccessRule{"reader", {"get"}, "", "nodes", "", {"node-a"}});
  EXPECT_EQ(reader->call("GET", "/api/v1/nodes/node-a").status, 200u);
  EXPECT_EQ(reader->call("GET", kNodes).status, 403u);  // list was not granted
  EXPECT_EQ(reader->call("PATCH", "/api/v1/nodes/node-a/status", "{}", kMergePatch).status, 403u);
}

TEST_F(NodesTest, ReadyzFailsAsKubeApiserverDoes) {
  start();
  MisbehaviourSpec spec;
  spec.what = Misbehaviour::kStatus500;
  spec.path_contains = "/readyz";
  server().misbehave(spec);
  auto kubectl = admin();
  EXPECT_EQ(kubectl->call("GET", kNodes).status, 200u);  // not /readyz: untouched
  HttpResponse failed = kubectl->call("GET", "/readyz");
  EXPECT_EQ(failed.status, 500u);
  EXPECT_EQ(failed.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_NE(failed.body.find("[-]etcd failed: reason withheld\n"), std::string::npos);
  EXPECT_NE(failed.body.find("readyz check failed"), std::string::npos);
  EXPECT_EQ(kubectl->call("GET", "/readyz").body, "ok");  // times = 1
}

}  // namespace
}  // namespace tetherd::test
