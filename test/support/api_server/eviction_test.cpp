// The eviction subresource over HTTP: PodDisruptionBudgets honoured as
// kube-apiserver honours them, its Status answers, its RBAC, and the
// evictions a test can count or refuse.

#include <regex>

#include <boost/json/parse.hpp>

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {
namespace json = boost::json;

constexpr char kPods[] = "/api/v1/namespaces/apps/pods";
constexpr char kBudgets[] = "/apis/policy/v1/namespaces/apps/poddisruptionbudgets";
constexpr char kJson[] = "application/json";

std::string eviction(const std::string& name, const std::string& namespace_ = "apps") {
  return R"({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":")" + name +
         R"(","namespace":")" + namespace_ + R"("}})";
}

std::string eviction_path(const std::string& pod) {
  return std::string(kPods) + "/" + pod + "/eviction";
}

class EvictionTest : public ApiServerTest {
 protected:
  // A running, ready pod labelled app=`app`.
  void running_pod(const std::string& name, const std::string& app = "web",
                   const std::string& phase = "Running", const std::string& ready = "True") {
    server().create(
        kPods, json::object{{"metadata", json::object{{"name", name}, {"labels", {{"app", app}}}}},
                            {"spec", json::object{{"nodeName", "edge-1"}}}});
    server().patch_status(
        object(kPods, name),
        json::object{{"phase", phase},
                     {"conditions", json::array{{{"type", "Ready"}, {"status", ready}}}}});
  }

  // A budget over app=`app`, as the disruption controller would have computed it.
  void budget(const std::string& name, std::int64_t allowed, const std::string& app = "web",
              std::int64_t observed = 1) {
    json::object selector{{"matchLabels", json::object{{"app", app}}}};
    server().create(
        kBudgets,
        json::object{{"metadata", json::object{{"name", name}}},
                     {"spec", json::object{{"minAvailable", 1}, {"selector", selector}}}});
    server().patch_status(object(kBudgets, name), json::object{{"observedGeneration", observed},
                                                               {"disruptionsAllowed", allowed},
                                                               {"currentHealthy", 2},
                                                               {"desiredHealthy", 1},
                                                               {"expectedPods", 2}});
  }

  HttpResponse evict(const std::string& pod) {
    return admin()->call("POST", eviction_path(pod), eviction(pod), kJson);
  }

  bool exists(const std::string& pod) { return server().get(object(kPods, pod)).has_value(); }
};

TEST_F(EvictionTest, WithinTheBudgetThePodGoesAndTheBudgetCountsIt) {
  start();
  running_pod("web-1");
  running_pod("web-2");
  budget("web", 1);
  const std::string before =
      str(*server().get(object(kBudgets, "web")), {"metadata", "resourceVersion"});
  auto watcher = admin();
  ASSERT_EQ(
      watcher->start_watch(std::string(kBudgets) + "?watch=true&resourceVersion=" + before).status,
      200u);
  ASSERT_TRUE(server().wait_for_watches(1, kWait));

  HttpResponse evicted = evict("web-1");
  ASSERT_EQ(evicted.status, 201u) << evicted.body;
  EXPECT_EQ(evicted.json(), json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},)"
                                        R"("status":"Success","code":201})"));
  EXPECT_FALSE(exists("web-1"));
  const json::object stored = *server().get(object(kBudgets, "web"));
  EXPECT_EQ(num(stored, {"status", "disruptionsAllowed"}), 0);
  EXPECT_TRUE(std::regex_match(str(stored, {"status", "disruptedPods", "web-1"}),
                               std::regex("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ")));
  EXPECT_NE(str(stored, {"metadata", "resourceVersion"}), before);
  json::value written = json::parse(watcher->next_chunk().data);
  EXPECT_EQ(str(written, {"type"}), "MODIFIED");
  EXPECT_EQ(num(written, {"object", "status", "disruptionsAllowed"}), 0);

  // None left: 429 with the budget's cause, and no Retry-After.
  HttpResponse refused = evict("web-2");
  EXPECT_EQ(refused.status, 429u);
  EXPECT_EQ(refused.header("retry-after"), "");
  EXPECT_EQ(refused.json(),
            json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
                        R"("message":"Cannot evict pod as it would violate the pod's disruption )"
                        R"(budget.","reason":"TooManyRequests","details":{"causes":[{"reason":)"
                        R"("DisruptionBudget","message":"The disruption budget web needs 1 )"
                        R"(healthy pods and has 2 currently"}]},"code":429})"));
  EXPECT_TRUE(exists("web-2"));
  EXPECT_EQ(server().evictions(), std::vector<std::string>{"apps/web-1"});

  // The disruption controller (the test) gives one back.
  server().patch_status(object(kBudgets, "web"), json::object{{"disruptionsAllowed", 1}});
  EXPECT_EQ(evict("web-2").status, 201u);
  EXPECT_EQ(server().evictions(), (std::vector<std::string>{"apps/web-1", "apps/web-2"}));
}

TEST_F(EvictionTest, ABudgetThatCannotSayRefuses) {
  start();
  running_pod("web-1");
  budget("web", 1, "web", 0);  // observedGeneration behind metadata.generation
  HttpResponse processing = evict("web-1");
  EXPECT_EQ(processing.status, 429u);
  EXPECT_EQ(processing.header("retry-after"), "10");
  EXPECT_EQ(num(processing.json(), {"details", "retryAfterSeconds"}), 10);
  EXPECT_EQ(str(processing.json(), {"message"}),
            "Cannot evict pod as it would violate the pod's disruption budget.");
  EXPECT_EQ(processing.json().at("details").at("causes"),
            json::parse(R"([{"reason":"DisruptionBudget","message":"The disruption budget web )"
                        R"(is still being processed by the server."}])"));

  server().patch_status(object(kBudgets, "web"),
                        json::object{{"observedGeneration", 1}, {"disruptionsAllowed", -1}});
  HttpResponse negative = evict("web-1");
  EXPECT_EQ(negative.status, 403u);
  EXPECT_EQ(str(negative.json(), {"reason"}), "Forbidden");
  EXPECT_EQ(str(negative.json(), {"message"}),
            "poddisruptionbudget.policy \"web\" is forbidden: pdb disruptions allowed is negative");
  EXPECT_EQ(str(negative.json(), {"details", "kind"}), "poddisruptionbudget");

  budget("web-too", 1);
  HttpResponse two = evict("web-1");
  EXPECT_EQ(two.status, 500u);
  EXPECT_EQ(two.json(),
            json::parse(R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
                        R"("message":"This pod has more than one PodDisruptionBudget, which the )"
                        R"(eviction subresource does not support.","code":500})"));
  EXPECT_TRUE(exists("web-1"));
  EXPECT_TRUE(server().evictions().empty());
}

TEST_F(EvictionTest, PodsNoBudgetHoldsGoAtOnce) {
  start();
  budget("web", 0);
  running_pod("done", "web", "Succeeded");
  running_pod("failed", "web", "Failed");
  running_pod("pending", "web", "Pending");
  running_pod("unready", "web", "Running", "False");  // no disruption: the budget has its 1
  running_pod("other", "db");                         // not the budget's
  running_pod("going");
  json::object going = *server().get(object(kPods, "going"));
  going["metadata"].as_object()["deletionTimestamp"] = "2026-01-01T00:00:00Z";
  server().update(object(kPods, "going"), going);
  const json::object untouched = *server().get(object(kBudgets, "web"));

  for (const char* pod : {"done", "failed", "pending", "unready", "other", "going"}) {
    EXPECT_EQ(evict(pod).status, 201u) << pod;
    EXPECT_FALSE(exists(pod)) << pod;
  }
  EXPECT_EQ(*server().get(object(kBudgets, "web")), untouched);

  // A budget with an empty selector selects nothing.
  running_pod("web-1");
  server().update(object(kBudgets, "web"),
                  json::object{{"metadata", json::object{{"name", "web"}}},
                               {"spec", json::object{{"selector", json::object{}}}}});
  EXPECT_EQ(evict("web-1").status, 201u);
}

TEST_F(EvictionTest, BadRequestsAndRbac) {
  start();
  running_pod("web-1");
  auto kubectl = admin();
  HttpResponse missing = kubectl->call("POST", eviction_path("nope"), eviction("nope"), kJson);
  EXPECT_EQ(missing.status, 404u);
  EXPECT_EQ(str(missing.json(), {"message"}), "pods \"nope\" not found");
  HttpResponse renamed = kubectl->call("POST", eviction_path("web-1"), eviction("web-2"), kJson);
  EXPECT_EQ(renamed.status, 400u);
  EXPECT_EQ(str(renamed.json(), {"message"}), "name in URL does not match name in Eviction object");
  EXPECT_EQ(kubectl->call("POST", eviction_path("web-1"), eviction("web-1", "other"), kJson).status,
            400u);
  EXPECT_EQ(kubectl->call("POST", eviction_path("web-1"), R"({"kind":"Pod"})", kJson).status, 400u);
  EXPECT_EQ(kubectl->call("GET", eviction_path("web-1")).status, 405u);

  server().allow(AccessRule{"agent", {"delete"}, "", "pods", "apps", {}, {}});
  auto agent = client(user_cert("agent"));
  HttpResponse forbidden = agent->call("POST", eviction_path("web-1"), eviction("web-1"), kJson);
  EXPECT_EQ(forbidden.status, 403u);
  EXPECT_EQ(str(forbidden.json(), {"message"}),
            "pods \"web-1\" is forbidden: User \"agent\" cannot create resource \"pods/eviction\" "
            "in API group \"\" in the namespace \"apps\"");
  server().allow(AccessRule{"agent", {"create"}, "", "pods/eviction", "apps", {}, {}});
  EXPECT_EQ(agent->call("POST", eviction_path("web-1"), eviction("web-1"), kJson).status, 201u);
  EXPECT_EQ(server().evictions(), std::vector<std::string>{"apps/web-1"});
}

TEST_F(EvictionTest, EveryEvictionRefusedOnDemand) {
  start();
  running_pod("web-1");
  // The API's flow control refusing them, budgets or not.
  server().misbehave({.what = Misbehaviour::kStatus429, .times = 2, .path_contains = "/eviction"});
  EXPECT_EQ(evict("web-1").status, 429u);
  EXPECT_EQ(evict("web-1").status, 429u);
  EXPECT_TRUE(exists("web-1"));
  EXPECT_TRUE(server().evictions().empty());
  EXPECT_EQ(evict("web-1").status, 201u);
}

}  // namespace
}  // namespace tetherd::test
