// What standard clients meet besides the objects, in-process (kubectl's own
// run is test/integration/kubectl_test.cpp): discovery, /openapi/v2, RBAC
// objects written through the API becoming rules, strategic merge patches,
// TokenRequest and SelfSubjectAccessReview.

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;

constexpr char kJson[] = "application/json";
constexpr char kEdgeNodes[] = "/apis/tetherd.io/v1alpha1/namespaces/ns/edgenodes";
constexpr char kRbac[] = "/apis/rbac.authorization.k8s.io/v1";

class DiscoveryTest : public ApiServerTest {};

const json::object* resource(const json::value& list, std::string_view name) {
  for (const json::value& entry : list.at("resources").as_array())
    if (entry.at("name") == json::value(name)) return &entry.as_object();
  return nullptr;
}

TEST_F(DiscoveryTest, ListsEveryGroupVersionAndItsResources) {
  start();
  auto kubectl = admin();
  HttpResponse api = kubectl->call("GET", "/api");
  ASSERT_EQ(api.status, 200u);
  EXPECT_EQ(str(api.json(), {"kind"}), "APIVersions");
  EXPECT_EQ(api.json().at("versions"), json::array{"v1"});

  HttpResponse groups = kubectl->call("GET", "/apis");
  ASSERT_EQ(groups.status, 200u);
  EXPECT_EQ(str(groups.json(), {"kind"}), "APIGroupList");
  std::set<std::string> names;
  const json::value group_list = groups.json();
  for (const json::value& group : group_list.at("groups").as_array()) {
    names.insert(std::string(group.at("name").as_string()));
    EXPECT_EQ(group.at("preferredVersion"), group.at("versions").at(0));
  }
  EXPECT_EQ(names, (std::set<std::string>{"tetherd.io", "coordination.k8s.io", "apps", "policy",
                                          "certificates.k8s.io", "apiextensions.k8s.io",
                                          "rbac.authorization.k8s.io",
                                          "admissionregistration.k8s.io", "authorization.k8s.io"}));

  HttpResponse core = kubectl->call("GET", "/api/v1");
  ASSERT_EQ(core.status, 200u);
  EXPECT_FALSE(core.json().as_object().contains("apiVersion"));  // as kube-apiserver's
  EXPECT_EQ(str(core.json(), {"groupVersion"}), "v1");
  const json::value core_list = core.json();
  const json::object* token = resource(core_list, "serviceaccounts/token");
  ASSERT_NE(token, nullptr);
  EXPECT_EQ(token->at("kind"), "TokenRequest");
  EXPECT_EQ(token->at("group"), "authentication.k8s.io");
  const json::object* pods = resource(core_list, "pods");
  ASSERT_NE(pods, nullptr);
  EXPECT_EQ(pods->at("kind"), "Pod");
  EXPECT_EQ(pods->at("singularName"), "pod");
  EXPECT_EQ(pods->at("namespaced"), true);
  EXPECT_EQ(pods->at("shortNames"), json::array{"po"});
  ASSERT_NE(resource(core_list, "pods/status"), nullptr);
  const json::object* eviction = resource(core_list, "pods/eviction");
  ASSERT_NE(eviction, nullptr);
  EXPECT_EQ(*eviction, json::parse(R"({"name":"pods/eviction","singularName":"",)"
                                   R"("namespaced":true,"kind":"Eviction","verbs":["create"],)"
                                   R"("group":"policy","version":"v1"})"));
  const json::value policy = kubectl->call("GET", "/apis/policy/v1").json();
  const json::object* budgets = resource(policy, "poddisruptionbudgets");
  ASSERT_NE(budgets, nullptr);
  EXPECT_EQ(budgets->at("kind"), "PodDisruptionBudget");
  EXPECT_EQ(budgets->at("shortNames"), json::array{"pdb"});
  ASSERT_NE(resource(policy, "poddisruptionbudgets/status"), nullptr);

  HttpResponse tetherd = kubectl->call("GET", "/apis/tetherd.io/v1alpha1");
  ASSERT_EQ(tetherd.status, 200u);
  EXPECT_EQ(str(tetherd.json(), {"apiVersion"}), "v1");
  const json::value tetherd_list = tetherd.json();
  const json::object* edgenodes = resource(tetherd_list, "edgenodes");
  ASSERT_NE(edgenodes, nullptr);
  EXPECT_EQ(edgenodes->at("singularName"), "edgenode");
  EXPECT_EQ(edgenodes->at("namespaced"), true);
  EXPECT_EQ(edgenodes->at("kind"), "EdgeNode");
  EXPECT_EQ(edgenodes->at("shortNames"), json::array{"en"});
  ASSERT_NE(resource(tetherd_list, "edgenodes/status"), nullptr);
  const json::value csrs = kubectl->call("GET", "/apis/certificates.k8s.io/v1").json();
  ASSERT_NE(resource(csrs, "certificatesigningrequests/approval"), nullptr);
  ASSERT_NE(resource(csrs, "certificatesigningrequests"), nullptr);
  EXPECT_EQ(resource(csrs, "certificatesigningrequests")->at("namespaced"), false);

  EXPECT_EQ(kubectl->call("GET", "/apis/tetherd.io/v1").status, 404u);
  EXPECT_EQ(kubectl->call("GET", "/apis/nothing.example/v1").status, 404u);

  HttpResponse openapi = kubectl->call("GET", "/openapi/v2");
  ASSERT_EQ(openapi.status, 200u);
  EXPECT_EQ(str(openapi.json(), {"swagger"}), "2.0");
  HttpResponse protobuf =
      kubectl->call("GET", "/openapi/v2", {}, {},
                    {{"Accept", "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}});
  ASSERT_EQ(protobuf.status, 200u);
  EXPECT_EQ(protobuf.body.substr(0, 5), std::string("\x0a\x03"
                                                    "2.0",
                                                    5));
}

TEST_F(DiscoveryTest, AnonymousUsersMayNotDiscover) {
  ApiServerOptions options = default_options();
  options.anonymous = true;
  start(options);
  HttpResponse api = client(std::nullopt)->call("GET", "/apis");
  EXPECT_EQ(api.status, 403u);
  EXPECT_EQ(str(api.json(), {"message"}),
            "forbidden: User \"system:anonymous\" cannot get path \"/apis\"");
}

TEST_F(DiscoveryTest, RbacObjectsWrittenThroughTheApiBecomeRules) {
  start();
  auto kubectl = admin();
  auto node = client(user_cert("tetherd:edge-1", {"tetherd:nodes"}));
  EXPECT_EQ(node->call("GET", kEdgeNodes).status, 403u);

  ASSERT_EQ(kubectl
                ->call("POST", std::string(kRbac) + "/namespaces/ns/roles",
                       R"({"metadata":{"name":"r"},"rules":[{"apiGroups":["tetherd.io"],)"
                       R"("resources":["edgenodes"],"verbs":["list"]}]})",
                       kJson)
                .status,
            201u);
  // A binding to a role that does not exist grants nothing.
  ASSERT_EQ(kubectl
                ->call("POST", std::string(kRbac) + "/namespaces/ns/rolebindings",
                       R"({"metadata":{"name":"b"},"roleRef":{"kind":"Role","name":"other",)"
                       R"("apiGroup":"rbac.authorization.k8s.io"},"subjects":[{"kind":"Group",)"
                       R"("name":"tetherd:nodes"}]})",
                       kJson)
                .status,
            201u);
  EXPECT_EQ(node->call("GET", kEdgeNodes).status, 403u);
  // Pointed at the role (a strategic merge patch, as kubectl apply sends), it does.
  HttpResponse patched = kubectl->call(
      "PATCH", std::string(kRbac) + "/namespaces/ns/rolebindings/b",
      R"({"$setElementOrder/subjects":[{"name":"tetherd:nodes"}],"roleRef":{"name":"r"}})",
      "application/strategic-merge-patch+json");
  ASSERT_EQ(patched.status, 200u) << patched.body;
  EXPECT_FALSE(patched.json().as_object().contains("$setElementOrder/subjects"));
  EXPECT_EQ(node->call("GET", kEdgeNodes).status, 200u);
  // In its namespace only, and for its verbs only.
  EXPECT_EQ(node->call("GET", "/apis/tetherd.io/v1alpha1/namespaces/other/edgenodes").status, 403u);
  EXPECT_EQ(node->call("POST", kEdgeNodes, R"({"metadata":{"name":"x"}})", kJson).status, 403u);

  ASSERT_EQ(kubectl->call("DELETE", std::string(kRbac) + "/namespaces/ns/roles/r").status, 200u);
  EXPECT_EQ(node->call("GET", kEdgeNodes).status, 403u);
}

TEST_F(DiscoveryTest, CustomResourcesTakeNoStrategicMergePatch) {
  start();
  auto kubectl = admin();
  ASSERT_EQ(kubectl->call("POST", kEdgeNodes, R"({"metadata":{"name":"a"}})", kJson).status, 201u);
  HttpResponse refused = kubectl->call("PATCH", std::string(kEdgeNodes) + "/a", R"({"spec":{}})",
                                       "application/strategic-merge-patch+json");
  EXPECT_EQ(refused.status, 415u);
}

TEST_F(DiscoveryTest, TokenRequestAndSelfSubjectAccessReview) {
  ApiServerOptions options = default_options();
  options.anonymous = true;  // certificates optional: a token alone may authenticate
  start(options);
  auto kubectl = admin();
  const std::string accounts = "/api/v1/namespaces/ns/serviceaccounts";
  HttpResponse missing = kubectl->call("POST", accounts + "/sa/token", "{}", kJson);
  EXPECT_EQ(missing.status, 404u);
  ASSERT_EQ(kubectl->call("POST", accounts, R"({"metadata":{"name":"sa"}})", kJson).status, 201u);
  HttpResponse short_lived =
      kubectl->call("POST", accounts + "/sa/token", R"({"spec":{"expirationSeconds":60}})", kJson);
  EXPECT_EQ(short_lived.status, 422u);
  HttpResponse issued = kubectl->call("POST", accounts + "/sa/token", "{}", kJson);
  ASSERT_EQ(issued.status, 201u) << issued.body;
  EXPECT_EQ(str(issued.json(), {"kind"}), "TokenRequest");
  EXPECT_EQ(str(issued.json(), {"apiVersion"}), "authentication.k8s.io/v1");
  EXPECT_EQ(num(issued.json(), {"spec", "expirationSeconds"}), 3600);
  const std::string token = str(issued.json(), {"status", "token"});
  ASSERT_FALSE(token.empty());

  kubectl->call("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                R"({"metadata":{"name":"csr"},"rules":[{"apiGroups":["certificates.k8s.io"],)"
                R"("resources":["certificatesigningrequests"],"verbs":["list"]}]})",
                kJson);
  kubectl->call("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                R"({"metadata":{"name":"csr"},"roleRef":{"kind":"ClusterRole","name":"csr",)"
                R"("apiGroup":"rbac.authorization.k8s.io"},"subjects":[{"kind":"ServiceAccount",)"
                R"("name":"sa","namespace":"ns"}]})",
                kJson);
  auto sa = client(std::nullopt);
  const std::vector<std::pair<std::string, std::string>> bearer{
      {"Authorization", "Bearer " + token}};
  EXPECT_EQ(
      sa->call("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests", {}, {}, bearer)
          .status,
      200u);
  HttpResponse denied = sa->call("GET", kEdgeNodes, {}, {}, bearer);
  EXPECT_EQ(denied.status, 403u);
  EXPECT_NE(str(denied.json(), {"message"}).find("system:serviceaccount:ns:sa"), std::string::npos);
  EXPECT_EQ(sa->call("GET", kEdgeNodes, {}, {}, {{"Authorization", "Bearer wrong"}}).status, 401u);

  auto review = [&](const std::string& verb) {
    HttpResponse answer = sa->call(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        R"({"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview",)"
        R"("spec":{"resourceAttributes":{"verb":")" +
            verb + R"(","group":"certificates.k8s.io","resource":"certificatesigningrequests"}}})",
        kJson, bearer);
    EXPECT_EQ(answer.status, 201u) << answer.body;
    EXPECT_EQ(str(answer.json(), {"kind"}), "SelfSubjectAccessReview");
    return answer.json().at("status").at("allowed").as_bool();
  };
  EXPECT_TRUE(review("list"));
  EXPECT_FALSE(review("delete"));
}

}  // namespace
}  // namespace tetherd::test
