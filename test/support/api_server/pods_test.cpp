// Core v1 pods as a node's agent meets them: the generic verbs and the
// status subresource, the pods of one node (fieldSelector spec.nodeName,
// status.phase), the meshed ones (labelSelector, for every type), in one
// namespace or across all of them.

#include <boost/json/serialize.hpp>

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {
namespace json = boost::json;

constexpr char kPods[] = "/api/v1/namespaces/apps/pods";
constexpr char kEveryPod[] = "/api/v1/pods";
constexpr char kJson[] = "application/json";
constexpr char kMergePatch[] = "application/merge-patch+json";
constexpr char kMeshed[] = "linkerd.io/control-plane-ns";

json::object pod(const std::string& name, const std::string& node, json::object labels = {}) {
  return json::object{{"metadata", json::object{{"name", name}, {"labels", std::move(labels)}}},
                      {"spec", json::object{{"nodeName", node}}}};
}

// The names a list answered, in its order.
std::vector<std::string> names(const HttpResponse& list) {
  std::vector<std::string> out;
  const json::value body = list.json();
  if (!body.is_object() || !body.as_object().contains("items")) return out;
  for (const json::value& item : body.at("items").as_array())
    out.push_back(str(item, {"metadata", "name"}));
  return out;
}

class PodsTest : public ApiServerTest {
 protected:
  // apps/web-1 and linkerd/identity are meshed on edge-1; apps/web-2 is
  // meshed on edge-2; apps/plain is on edge-1 without the mesh.
  void create_pods() {
    const json::object meshed{{kMeshed, "linkerd"}};
    server().create(kPods, pod("web-1", "edge-1", meshed));
    server().create(kPods, pod("web-2", "edge-2", meshed));
    server().create(kPods, pod("plain", "edge-1"));
    server().create("/api/v1/namespaces/linkerd/pods", pod("identity", "edge-1", meshed));
    server().patch_status(object(kPods, "web-1"), json::object{{"phase", "Running"}});
    server().patch_status(object(kPods, "plain"), json::object{{"phase", "Succeeded"}});
  }
};

TEST_F(PodsTest, VerbsAndTheStatusSubresourceAsOtherBuiltIns) {
  start();
  auto kubectl = admin();
  json::object body = pod("web-1", "edge-1");
  body["apiVersion"] = "v1";
  body["kind"] = "Pod";
  body["status"] = json::object{{"phase", "Running"}};
  HttpResponse created = kubectl->call("POST", kPods, json::serialize(body), kJson);
  ASSERT_EQ(created.status, 201u) << created.body;
  EXPECT_EQ(str(created.json(), {"kind"}), "Pod");
  EXPECT_EQ(str(created.json(), {"metadata", "namespace"}), "apps");
  EXPECT_FALSE(created.json().as_object().contains("status"));  // the kubelet's to write

  HttpResponse running = kubectl->call("PATCH", object(kPods, "web-1") + "/status",
                                       R"({"status":{"phase":"Running"}})", kMergePatch);
  ASSERT_EQ(running.status, 200u) << running.body;
  EXPECT_EQ(str(running.json(), {"status", "phase"}), "Running");
  EXPECT_EQ(str(kubectl->call("GET", object(kPods, "web-1")).json(), {"spec", "nodeName"}),
            "edge-1");

  HttpResponse list = kubectl->call("GET", kPods);
  EXPECT_EQ(str(list.json(), {"kind"}), "PodList");
  EXPECT_FALSE(list.json().at("items").at(0).as_object().contains("kind"));
  EXPECT_EQ(kubectl->call("DELETE", object(kPods, "web-1")).status, 200u);
  EXPECT_EQ(str(kubectl->call("GET", object(kPods, "web-1")).json(), {"message"}),
            "pods \"web-1\" not found");
}

TEST_F(PodsTest, TheMeshedPodsOfOneNode) {
  start();
  create_pods();
  auto kubectl = admin();
  const std::string on_edge_1 = "fieldSelector=spec.nodeName%3Dedge-1";
  const std::string meshed = "labelSelector=linkerd.io%2Fcontrol-plane-ns";
  EXPECT_EQ(names(kubectl->call("GET", std::string(kPods) + "?" + on_edge_1 + "&" + meshed)),
            std::vector<std::string>{"web-1"});
  // Across namespaces, ordered by namespace then name.
  EXPECT_EQ(names(kubectl->call("GET", std::string(kEveryPod) + "?" + on_edge_1 + "&" + meshed)),
            (std::vector<std::string>{"web-1", "identity"}));
  EXPECT_EQ(names(kubectl->call("GET", std::string(kEveryPod) + "?" + on_edge_1)),
            (std::vector<std::string>{"plain", "web-1", "identity"}));
  EXPECT_EQ(
      names(kubectl->call("GET", std::string(kPods) + "?fieldSelector=spec.nodeName!%3Dedge-1")),
      std::vector<std::string>{"web-2"});
  EXPECT_EQ(names(kubectl->call(
                "GET", std::string(kPods) +
                           "?fieldSelector=spec.nodeName%3D%3Dedge-1,status.phase%3DRunning")),
            std::vector<std::string>{"web-1"});
  EXPECT_EQ(names(kubectl->call("GET", std::string(kPods) + "?labelSelector=!" + kMeshed)),
            std::vector<std::string>{"plain"});
  EXPECT_EQ(names(kubectl->call("GET", std::string(kPods) + "?labelSelector=" + kMeshed +
                                           "%20in%20(linkerd,other)")),
            (std::vector<std::string>{"web-1", "web-2"}));

  HttpResponse unsupported =
      kubectl->call("GET", std::string(kPods) + "?fieldSelector=spec.restartPolicy%3DAlways");
  EXPECT_EQ(unsupported.status, 400u);
  EXPECT_EQ(str(unsupported.json(), {"message"}), "field label not supported: spec.restartPolicy");
  HttpResponse malformed = kubectl->call("GET", std::string(kPods) + "?labelSelector=a%20in%20x");
  EXPECT_EQ(malformed.status, 400u);
  EXPECT_EQ(str(malformed.json(), {"reason"}), "BadRequest");
  EXPECT_EQ(str(malformed.json(), {"message"}),
            "unable to parse requirement: found 'x' expected: '('");
}

TEST_F(PodsTest, LabelSelectorsForEveryType) {
  start();
  auto kubectl = admin();
  for (const char* tier : {"a", "b"})
    server().create(
        kConfigMaps,
        json::object{{"metadata", json::object{{"name", std::string("cm-") + tier},
                                               {"labels", json::object{{"tier", tier}}}}}});
  server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-a"}}}});
  EXPECT_EQ(names(kubectl->call("GET", std::string(kConfigMaps) + "?labelSelector=tier%3Db")),
            std::vector<std::string>{"cm-b"});
  EXPECT_EQ(names(kubectl->call("GET", std::string(kConfigMaps) + "?labelSelector=tier!%3Db")),
            std::vector<std::string>{"cm-a"});
  EXPECT_EQ(names(kubectl->call("GET", std::string(kEdgeNodes) + "?labelSelector=tier")),
            std::vector<std::string>{});
  // An exact list of the past is selected by the labels the objects had then.
  const std::string then = std::to_string(server().resource_version());
  server().update(object(kConfigMaps, "cm-a"),
                  json::object{{"metadata", json::object{{"name", "cm-a"}}}});
  EXPECT_EQ(names(kubectl->call("GET", std::string(kConfigMaps) +
                                           "?labelSelector=tier&resourceVersion=" + then +
                                           "&resourceVersionMatch=Exact")),
            (std::vector<std::string>{"cm-a", "cm-b"}));
  EXPECT_EQ(names(kubectl->call("GET", std::string(kConfigMaps) + "?labelSelector=tier")),
            std::vector<std::string>{"cm-b"});
}

TEST_F(PodsTest, AcrossNamespacesListAndWatchOnlyWithAClusterWideRule) {
  start();
  create_pods();
  server().allow(AccessRule{"agent", {"list", "watch"}, "", "pods", "apps", {}, {}});
  auto agent = client(user_cert("agent"));
  EXPECT_EQ(names(agent->call("GET", kPods)),
            (std::vector<std::string>{"plain", "web-1", "web-2"}));
  HttpResponse everywhere = agent->call("GET", kEveryPod);
  EXPECT_EQ(everywhere.status, 403u);
  EXPECT_EQ(str(everywhere.json(), {"message"}),
            "pods is forbidden: User \"agent\" cannot list resource \"pods\" in API group \"\" at "
            "the cluster scope");
  // A ClusterRoleBinding's rule: namespace "".
  server().allow(AccessRule{"agent", {"list", "watch"}, "", "pods", "", {}, {}});
  EXPECT_EQ(names(agent->call("GET", kEveryPod)).size(), 4u);
  EXPECT_EQ(admin()->call("POST", kEveryPod, json::serialize(pod("x", "edge-1")), kJson).status,
            405u);
  EXPECT_EQ(admin()->call("GET", std::string(kEveryPod) + "/web-1").status, 404u);
}

}  // namespace
}  // namespace tetherd::test
