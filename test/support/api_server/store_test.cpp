// The store and the pure parts of the server, without sockets.

#include "test/support/api_server/store.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "test/support/api_server/resources.h"
#include "test/support/api_server/wire.h"

namespace tetherd::test::apiserver {
namespace {
namespace json = boost::json;

const ResourceType& edge_nodes() {
  return *parse_path("/apis/tetherd.io/v1alpha1/namespaces/ns/edgenodes").type;
}
const ResourceType& leases() {
  return *parse_path("/apis/coordination.k8s.io/v1/namespaces/ns/leases").type;
}

json::object node(const std::string& name, json::object spec = {}) {
  return json::object{{"metadata", json::object{{"name", name}}}, {"spec", std::move(spec)}};
}

TEST(MergePatch, Rfc7386Examples) {
  struct Case {
    const char* target;
    const char* patch;
    const char* result;
  } cases[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Case& c : cases)
    EXPECT_EQ(merge_patch(json::parse(c.target), json::parse(c.patch)), json::parse(c.result))
        << c.target << " + " << c.patch;
}

const ResourceType& pods() {
  return *parse_path("/api/v1/namespaces/ns/pods").type;
}

TEST(FieldSelector, ParsesNameAndNamespace) {
  Expected<FieldSelector> parsed =
      parse_field_selector("metadata.name=a,metadata.namespace!=b", edge_nodes());
  ASSERT_TRUE(parsed.ok());
  const json::object any;
  EXPECT_TRUE(parsed.value().matches({"edgenodes.tetherd.io", "x", "a"}, any));
  EXPECT_FALSE(parsed.value().matches({"edgenodes.tetherd.io", "b", "a"}, any));
  EXPECT_FALSE(parsed.value().matches({"edgenodes.tetherd.io", "x", "c"}, any));
  EXPECT_EQ(parsed.value().exact_name(), "a");
  EXPECT_TRUE(parse_field_selector("metadata.name==a", edge_nodes()).ok());
  EXPECT_TRUE(parse_field_selector("", edge_nodes()).ok());

  Expected<FieldSelector> unsupported = parse_field_selector("spec.nodeName=a", edge_nodes());
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.error().code, 400u);
  EXPECT_EQ(status_message(unsupported.error()), "field label not supported: spec.nodeName");
  EXPECT_FALSE(parse_field_selector("nonsense", edge_nodes()).ok());
}

TEST(FieldSelector, PodsAlsoByNodeAndPhase) {
  Expected<FieldSelector> parsed =
      parse_field_selector("spec.nodeName=edge-1,status.phase!=Failed", pods());
  ASSERT_TRUE(parsed.ok());
  const ObjectKey key{"pods", "ns", "p"};
  EXPECT_TRUE(parsed.value().matches(
      key,
      json::parse(R"({"spec":{"nodeName":"edge-1"},"status":{"phase":"Running"}})").as_object()));
  EXPECT_TRUE(parsed.value().matches(
      key, json::parse(R"({"spec":{"nodeName":"edge-1"}})").as_object()));  // no phase: ""
  EXPECT_FALSE(parsed.value().matches(
      key,
      json::parse(R"({"spec":{"nodeName":"edge-1"},"status":{"phase":"Failed"}})").as_object()));
  EXPECT_FALSE(
      parsed.value().matches(key, json::parse(R"({"spec":{"nodeName":"edge-2"}})").as_object()));
  // Unscheduled pods: spec.nodeName is "".
  Expected<FieldSelector> unscheduled = parse_field_selector("spec.nodeName=", pods());
  ASSERT_TRUE(unscheduled.ok());
  EXPECT_TRUE(unscheduled.value().matches(key, json::object{}));

  Expected<FieldSelector> other = parse_field_selector("spec.restartPolicy=Always", pods());
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(status_message(other.error()), "field label not supported: spec.restartPolicy");
}

TEST(WatchFilter, ObjectsMovingInAndOutOfTheSelection) {
  WatchFilter meshed{&pods(), "ns", {}, false, parse_label_selector("mesh").value()};
  const ObjectKey key{"pods", "ns", "p"};
  auto pod = [](const char* labels, const char* version) {
    return json::parse(std::string(R"({"metadata":{"name":"p","resourceVersion":")") + version +
                       R"(","labels":)" + labels + "}}")
        .as_object();
  };
  auto event = [&](EventType type, json::object object, std::optional<json::object> previous) {
    return StoreEvent{type, key, 7, watch_line(type, object), object, std::move(previous)};
  };
  auto sent = [&](const StoreEvent& e) -> std::optional<json::value> {
    std::optional<std::string> line = meshed.event_line(e);
    if (!line) return std::nullopt;
    return json::parse(*line);
  };

  const json::object in = pod(R"({"mesh":"yes"})", "7"), out = pod("{}", "7");
  EXPECT_FALSE(sent(event(EventType::kAdded, out, std::nullopt)));
  EXPECT_EQ(sent(event(EventType::kAdded, in, std::nullopt))->at("type"), "ADDED");
  EXPECT_EQ(sent(event(EventType::kModified, in, pod(R"({"mesh":"yes"})", "6")))->at("type"),
            "MODIFIED");
  EXPECT_FALSE(sent(event(EventType::kModified, out, pod("{}", "6"))));
  // Starts matching: ADDED; stops: DELETED with its last matching state at the event's version.
  EXPECT_EQ(sent(event(EventType::kModified, in, pod("{}", "6")))->at("type"), "ADDED");
  std::optional<json::value> left =
      sent(event(EventType::kModified, out, pod(R"({"mesh":"yes"})", "6")));
  ASSERT_TRUE(left);
  EXPECT_EQ(left->at("type"), "DELETED");
  EXPECT_EQ(left->at("object").at("metadata").at("labels").at("mesh"), "yes");
  EXPECT_EQ(left->at("object").at("metadata").at("resourceVersion"), "7");
  EXPECT_EQ(sent(event(EventType::kDeleted, in, pod(R"({"mesh":"yes"})", "6")))->at("type"),
            "DELETED");
  EXPECT_FALSE(sent(event(EventType::kDeleted, out, pod("{}", "6"))));
}

TEST(Paths, RoutesWhatTheServerServes) {
  ResourcePath status = parse_path("/apis/tetherd.io/v1alpha1/namespaces/ns/edgenodes/n/status");
  EXPECT_EQ(status.kind, PathKind::kStatus);
  EXPECT_EQ(status.namespace_, "ns");
  EXPECT_EQ(status.name, "n");
  EXPECT_EQ(parse_path("/api/v1/namespaces/ns/secrets/s").kind, PathKind::kObject);
  EXPECT_EQ(parse_path("/api/v1/namespaces/ns/configmaps").kind, PathKind::kCollection);
  EXPECT_EQ(parse_path("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l/status").kind,
            PathKind::kUnknown);  // leases have no status subresource
  EXPECT_EQ(parse_path("/api/v1/namespaces/ns/services").kind, PathKind::kUnknown);
  ResourcePath eviction = parse_path("/api/v1/namespaces/ns/pods/p/eviction");
  EXPECT_EQ(eviction.kind, PathKind::kEviction);
  EXPECT_EQ(eviction.namespace_, "ns");
  EXPECT_EQ(eviction.name, "p");
  EXPECT_EQ(parse_path("/api/v1/namespaces/ns/configmaps/c/eviction").kind, PathKind::kUnknown);
  EXPECT_EQ(parse_path("/apis/policy/v1/namespaces/ns/poddisruptionbudgets/b/status").kind,
            PathKind::kStatus);
  EXPECT_EQ(parse_path("/apis/tetherd.io/v1/namespaces/ns/edgenodes").kind, PathKind::kUnknown);
  EXPECT_EQ(parse_path("/api/v1/namespaces/ns/secrets/").kind, PathKind::kUnknown);
  EXPECT_EQ(parse_path("/readyz").kind, PathKind::kReadyz);
  // CertificateSigningRequests: cluster-scoped, with /status and /approval.
  ResourcePath approval =
      parse_path("/apis/certificates.k8s.io/v1/certificatesigningrequests/c/approval");
  EXPECT_EQ(approval.kind, PathKind::kApproval);
  EXPECT_EQ(approval.name, "c");
  EXPECT_EQ(approval.namespace_, "");
  EXPECT_EQ(parse_path("/apis/certificates.k8s.io/v1/certificatesigningrequests/c/status").kind,
            PathKind::kStatus);
  EXPECT_EQ(
      parse_path("/apis/certificates.k8s.io/v1/namespaces/ns/certificatesigningrequests").kind,
      PathKind::kUnknown);
  EXPECT_EQ(parse_path("/apis/tetherd.io/v1alpha1/namespaces/ns/edgenodes/n/approval").kind,
            PathKind::kUnknown);
  QueryParams query = parse_query("fieldSelector=metadata.name%3Dnode-a&watch=1&x=a+b");
  EXPECT_EQ(query["fieldSelector"], "metadata.name=node-a");
  EXPECT_EQ(query["x"], "a b");
}

TEST(Store, CreateSetsServerMetadataAndDropsStatus) {
  Store store(10);
  json::object in = node("a", {{"x", 1}});
  in["status"] = json::object{{"ready", true}};
  Expected<json::object> created = store.create(edge_nodes(), "ns", in);
  ASSERT_TRUE(created.ok());
  const json::object& object = created.value();
  EXPECT_EQ(object.at("kind"), "EdgeNode");
  EXPECT_EQ(object.at("apiVersion"), "tetherd.io/v1alpha1");
  const json::object& metadata = object.at("metadata").get_object();
  EXPECT_EQ(metadata.at("namespace"), "ns");
  EXPECT_EQ(metadata.at("generation"), 1);
  EXPECT_EQ(metadata.at("uid").get_string().size(), 36u);
  EXPECT_EQ(std::string(metadata.at("resourceVersion").as_string()),
            std::to_string(store.resource_version()));
  EXPECT_FALSE(object.contains("status"));

  Expected<json::object> again = store.create(edge_nodes(), "ns", node("a"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(status_message(again.error()), "edgenodes.tetherd.io \"a\" already exists");
  Expected<json::object> nameless = store.create(edge_nodes(), "ns", json::object{});
  ASSERT_FALSE(nameless.ok());
  EXPECT_EQ(nameless.error().code, 422u);
}

TEST(Store, GenerationCountsSpecChangesOnly) {
  Store store(10);
  ASSERT_TRUE(store.create(edge_nodes(), "ns", node("a", {{"x", 1}})).ok());
  json::object labelled = store.get(edge_nodes(), "ns", "a").value();
  labelled["metadata"].get_object()["labels"] = json::object{{"l", "v"}};
  json::object after_label =
      store.update(edge_nodes(), "ns", "a", labelled, WriteScope::kObject).value();
  EXPECT_EQ(after_label.at("metadata").at("generation"), 1);
  json::object after_spec =
      store.patch(edge_nodes(), "ns", "a", json::parse(R"({"spec":{"x":2}})"), WriteScope::kObject)
          .value();
  EXPECT_EQ(after_spec.at("metadata").at("generation"), 2);
  EXPECT_EQ(after_spec.at("metadata").at("labels").at("l"), "v");
}

TEST(Store, WriteWithoutChangeIsNoWrite) {
  Store store(10);
  ASSERT_TRUE(store.create(leases(), "ns", node("l", {{"holderIdentity", "a"}})).ok());
  std::uint64_t version = store.resource_version();
  json::object same = store.get(leases(), "ns", "l").value();
  json::object result = store.update(leases(), "ns", "l", same, WriteScope::kObject).value();
  EXPECT_EQ(store.resource_version(), version);
  EXPECT_EQ(std::string(result.at("metadata").at("resourceVersion").as_string()),
            std::to_string(version));
}

TEST(Store, StaleWriteConflicts) {
  Store store(10);
  json::object created = store.create(leases(), "ns", node("l")).value();
  ASSERT_TRUE(
      store.patch(leases(), "ns", "l", json::parse(R"({"spec":{"a":1}})"), WriteScope::kObject)
          .ok());
  Expected<json::object> stale = store.update(leases(), "ns", "l", created, WriteScope::kObject);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code, 409u);
  EXPECT_EQ(
      status_message(stale.error()),
      "Operation cannot be fulfilled on leases.coordination.k8s.io \"l\": the object has been "
      "modified; please apply your changes to the latest version and try again");
}

TEST(Store, ExactListRebuildsThePast) {
  Store store(10);
  ASSERT_TRUE(store.create(leases(), "ns", node("a", {{"v", 1}})).ok());
  std::uint64_t then = store.resource_version();
  ASSERT_TRUE(
      store.patch(leases(), "ns", "a", json::parse(R"({"spec":{"v":2}})"), WriteScope::kObject)
          .ok());
  ASSERT_TRUE(store.create(leases(), "ns", node("b")).ok());
  ASSERT_TRUE(store.remove(leases(), "ns", "a", std::nullopt).ok());

  WatchFilter all{&leases(), "ns", {}};
  Expected<ListResult> past = store.list(all, then);
  ASSERT_TRUE(past.ok());
  ASSERT_EQ(past.value().items.size(), 1u);
  EXPECT_EQ(past.value().items[0].at("spec").at("v"), 1);
  EXPECT_EQ(past.value().resource_version, then);
  EXPECT_EQ(store.list(all, std::nullopt).value().items.size(), 1u);  // only b now

  store.compact();
  Expected<ListResult> gone = store.list(all, then);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, 410u);
}

TEST(Store, HistoryLimitExpiresOldWatches) {
  Store store(2);
  std::uint64_t start = store.resource_version();
  for (const char* name : {"a", "b", "c"})
    ASSERT_TRUE(store.create(leases(), "ns", node(name)).ok());
  WatchFilter all{&leases(), "ns", {}};
  auto sink = [](std::shared_ptr<const StoreEvent>) {};
  Expected<WatchStart> too_old = store.watch(all, start, sink);
  ASSERT_FALSE(too_old.ok());
  EXPECT_EQ(status_message(too_old.error()), "too old resource version: " + std::to_string(start) +
                                                 " (" + std::to_string(start + 1) + ")");
  Expected<WatchStart> kept = store.watch(all, start + 1, sink);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept.value().initial.size(), 2u);
}

TEST(Wire, ChunksAndSizes) {
  EXPECT_EQ(format_chunk("hello\n"), "6\r\nhello\n\r\n");
  EXPECT_EQ(oversized_object(1000).size(), 1000u);
  EXPECT_NO_THROW(json::parse(oversized_object(1000)));
  std::string event = oversized_event("EdgeNode", "tetherd.io/v1alpha1", 4096);
  EXPECT_EQ(event.size(), 4096u);
  EXPECT_NO_THROW(json::parse(event));
}

}  // namespace
}  // namespace tetherd::test::apiserver
