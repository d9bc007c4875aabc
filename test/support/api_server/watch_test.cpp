// Watches as kube-apiserver streams them: chunked, one JSON event per chunk
// and line, resumption from a resourceVersion, bookmarks, clean ends, 410.

#include <boost/json/parse.hpp>

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {
namespace json = boost::json;

json::object named(const std::string& name) {
  return json::object{{"metadata", json::object{{"name", name}}}, {"spec", json::object{}}};
}

// One event: the chunk is exactly one line of JSON.
json::value event_of(const WatchChunk& chunk) {
  EXPECT_EQ(chunk.kind, WatchChunk::Kind::kChunk) << chunk.error.message();
  EXPECT_FALSE(chunk.data.empty());
  if (chunk.data.empty()) return {};
  EXPECT_EQ(chunk.data.back(), '\n');
  EXPECT_EQ(chunk.data.find('\n'), chunk.data.size() - 1) << "one line per chunk";
  boost::system::error_code ec;
  json::value event = json::parse(chunk.data, ec);
  EXPECT_FALSE(ec) << chunk.data;
  return event;
}

class WatchTest : public ApiServerTest {
 protected:
  std::string node(const std::string& name) { return object(kEdgeNodes, name); }
};

TEST_F(WatchTest, FramingAndEventsFromTheCurrentState) {
  start();
  server().create(kEdgeNodes, named("node-a"));
  auto watcher = admin();
  HttpResponse head =
      watcher->start_watch(std::string(kEdgeNodes) + "?watch=true&allowWatchBookmarks=true");
  ASSERT_FALSE(head.error) << head.error.message();
  EXPECT_EQ(head.status, 200u);
  EXPECT_EQ(head.header("transfer-encoding"), "chunked");
  EXPECT_EQ(head.header("content-type"), "application/json");
  EXPECT_EQ(head.header("content-length"), "");

  json::value added = event_of(watcher->next_chunk());  // synthetic, for what exists
  EXPECT_EQ(str(added, {"type"}), "ADDED");
  EXPECT_EQ(str(added, {"object", "metadata", "name"}), "node-a");
  EXPECT_EQ(str(added, {"object", "kind"}), "EdgeNode");
  ASSERT_TRUE(server().wait_for_watches(1, kWait));
  EXPECT_EQ(server().requests().back().watch, true);

  server().create(kEdgeNodes, named("node-b"));
  json::value second = event_of(watcher->next_chunk());
  EXPECT_EQ(str(second, {"type"}), "ADDED");
  EXPECT_EQ(str(second, {"object", "metadata", "name"}), "node-b");

  server().patch_status(node("node-a"), json::object{{"agentVersion", "0.1.0"}});
  json::value modified = event_of(watcher->next_chunk());
  EXPECT_EQ(str(modified, {"type"}), "MODIFIED");
  EXPECT_EQ(str(modified, {"object", "status", "agentVersion"}), "0.1.0");
  EXPECT_EQ(str(modified, {"object", "metadata", "resourceVersion"}),
            std::to_string(server().resource_version()));

  server().remove(node("node-b"));
  json::value deleted = event_of(watcher->next_chunk());
  EXPECT_EQ(str(deleted, {"type"}), "DELETED");
  EXPECT_EQ(str(deleted, {"object", "metadata", "name"}), "node-b");
  EXPECT_EQ(str(deleted, {"object", "metadata", "resourceVersion"}),
            std::to_string(server().resource_version()));  // the deletion's version

  // Changes elsewhere move the bookmark on, without events.
  server().create(kLeases, named("tetherd-node-a"));
  server().bookmark_now();
  json::value bookmark = event_of(watcher->next_chunk());
  EXPECT_EQ(str(bookmark, {"type"}), "BOOKMARK");
  EXPECT_EQ(str(bookmark, {"object", "kind"}), "EdgeNode");
  EXPECT_EQ(str(bookmark, {"object", "apiVersion"}), "tetherd.io/v1alpha1");
  EXPECT_EQ(str(bookmark, {"object", "metadata", "resourceVersion"}),
            std::to_string(server().resource_version()));

  server().end_watches();
  EXPECT_EQ(watcher->next_chunk().kind, WatchChunk::Kind::kEnd);
  EXPECT_TRUE(server().wait_for_no_watches(kWait));
  // The connection is free again for ordinary requests.
  EXPECT_EQ(watcher->call("GET", "/readyz").status, 200u);
  EXPECT_EQ(server().connections_accepted(), 1u);
}

TEST_F(WatchTest, ResumesFromAResourceVersion) {
  start();
  std::string from =
      str(server().create(kEdgeNodes, named("node-a")), {"metadata", "resourceVersion"});
  server().patch_status(node("node-a"), json::object{{"x", 1}});
  server().create(kEdgeNodes, named("node-b"));
  auto watcher = admin();
  ASSERT_EQ(
      watcher->start_watch(std::string(kEdgeNodes) + "?watch=1&resourceVersion=" + from).status,
      200u);
  json::value first = event_of(watcher->next_chunk());
  EXPECT_EQ(str(first, {"type"}), "MODIFIED");
  EXPECT_EQ(str(first, {"object", "metadata", "name"}), "node-a");
  json::value second = event_of(watcher->next_chunk());
  EXPECT_EQ(str(second, {"type"}), "ADDED");
  EXPECT_EQ(str(second, {"object", "metadata", "name"}), "node-b");
}

TEST_F(WatchTest, FieldSelectorAndNoBookmarksUnlessAsked) {
  start();
  server().create(kEdgeNodes, named("node-a"));
  server().create(kEdgeNodes, named("node-b"));
  auto watcher = admin();
  ASSERT_EQ(watcher
                ->start_watch(std::string(kEdgeNodes) +
                              "?watch=true&fieldSelector=metadata.name%3Dnode-b&resourceVersion=" +
                              std::to_string(server().resource_version()))
                .status,
            200u);
  ASSERT_TRUE(server().wait_for_watches(1, kWait));
  server().bookmark_now();  // not asked for: nothing
  server().patch_status(node("node-a"), json::object{{"x", 1}});
  server().patch_status(node("node-b"), json::object{{"x", 2}});
  json::value only = event_of(watcher->next_chunk());
  EXPECT_EQ(str(only, {"type"}), "MODIFIED");
  EXPECT_EQ(str(only, {"object", "metadata", "name"}), "node-b");
}

TEST_F(WatchTest, LabelSelectorSendsObjectsAsTheyEnterAndLeaveTheSelection) {
  start();
  const std::string pods = "/api/v1/namespaces/apps/pods";
  auto pod = [](const std::string& name, json::object labels) {
    return json::object{{"metadata", json::object{{"name", name}, {"labels", std::move(labels)}}},
                        {"spec", json::object{{"nodeName", "edge-1"}}}};
  };
  const json::object meshed{{"linkerd.io/control-plane-ns", "linkerd"}};
  server().create(pods, pod("web-1", meshed));
  server().create(pods, pod("plain", {}));
  const std::string from = std::to_string(server().resource_version());
  const std::string query =
      "?watch=true&allowWatchBookmarks=true&fieldSelector=spec.nodeName%3Dedge-1"
      "&labelSelector=linkerd.io%2Fcontrol-plane-ns";
  auto watcher = admin();
  ASSERT_EQ(watcher->start_watch(pods + query).status, 200u);
  json::value first = event_of(watcher->next_chunk());
  EXPECT_EQ(str(first, {"type"}), "ADDED");
  EXPECT_EQ(str(first, {"object", "metadata", "name"}), "web-1");
  ASSERT_TRUE(server().wait_for_watches(1, kWait));

  server().patch_status(pods + "/plain", json::object{{"phase", "Running"}});  // not selected
  server().update(pods + "/plain", pod("plain", meshed));
  json::value entered = event_of(watcher->next_chunk());
  EXPECT_EQ(str(entered, {"type"}), "ADDED");
  EXPECT_EQ(str(entered, {"object", "metadata", "name"}), "plain");

  server().update(pods + "/web-1", pod("web-1", {}));
  const std::string left_at = std::to_string(server().resource_version());
  json::value left = event_of(watcher->next_chunk());
  EXPECT_EQ(str(left, {"type"}), "DELETED");
  EXPECT_EQ(str(left, {"object", "metadata", "name"}), "web-1");
  // Its last state in the selection, at the version it left it.
  EXPECT_EQ(str(left, {"object", "metadata", "labels", "linkerd.io/control-plane-ns"}), "linkerd");
  EXPECT_EQ(str(left, {"object", "metadata", "resourceVersion"}), left_at);

  server().remove(pods + "/web-1");  // out of the selection already: nothing
  server().bookmark_now();
  EXPECT_EQ(str(event_of(watcher->next_chunk()), {"type"}), "BOOKMARK");

  // Resumed from before it all, the history is selected the same way.
  auto resumed = admin();
  ASSERT_EQ(resumed->start_watch(pods + query + "&resourceVersion=" + from).status, 200u);
  EXPECT_EQ(str(event_of(resumed->next_chunk()), {"type"}), "ADDED");    // plain
  EXPECT_EQ(str(event_of(resumed->next_chunk()), {"type"}), "DELETED");  // web-1
  ASSERT_TRUE(server().wait_for_watches(2, kWait));
  server().bookmark_now();
  EXPECT_EQ(str(event_of(resumed->next_chunk()), {"type"}), "BOOKMARK");

  HttpResponse malformed = admin()->call("GET", pods + "?watch=true&labelSelector=a%3D%3D%3Db");
  EXPECT_EQ(malformed.status, 400u);
  EXPECT_EQ(str(malformed.json(), {"message"}),
            "unable to parse requirement: found '=', expected: identifier");
}

TEST_F(WatchTest, TimeoutSecondsEndsTheStreamCleanly) {
  start();
  auto watcher = admin();
  auto started = std::chrono::steady_clock::now();
  ASSERT_EQ(watcher->start_watch(std::string(kLeases) + "?watch=true&timeoutSeconds=1").status,
            200u);
  EXPECT_EQ(watcher->next_chunk().kind, WatchChunk::Kind::kEnd);
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(900));
  EXPECT_TRUE(server().wait_for_no_watches(kWait));
}

TEST_F(WatchTest, BookmarksOnAnInterval) {
  ApiServerOptions options = default_options();
  options.bookmark_interval = std::chrono::milliseconds(20);
  start(options);
  auto watcher = admin();
  ASSERT_EQ(
      watcher->start_watch(std::string(kLeases) + "?watch=true&allowWatchBookmarks=true").status,
      200u);
  EXPECT_EQ(str(event_of(watcher->next_chunk()), {"type"}), "BOOKMARK");
  EXPECT_EQ(str(event_of(watcher->next_chunk()), {"type"}), "BOOKMARK");
}

TEST_F(WatchTest, TooOldResourceVersionIsAnErrorEvent) {
  start();
  std::string old = std::to_string(server().resource_version());
  server().create(kEdgeNodes, named("node-a"));
  server().compact();
  std::string now = std::to_string(server().resource_version());

  auto watcher = admin();
  HttpResponse head =
      watcher->start_watch(std::string(kEdgeNodes) + "?watch=true&resourceVersion=" + old);
  EXPECT_EQ(head.status, 200u);  // as kube-apiserver: the 410 comes inside the stream
  json::value error = event_of(watcher->next_chunk());
  EXPECT_EQ(str(error, {"type"}), "ERROR");
  EXPECT_EQ(str(error, {"object", "kind"}), "Status");
  EXPECT_EQ(num(error, {"object", "code"}), 410);
  EXPECT_EQ(str(error, {"object", "reason"}), "Expired");
  EXPECT_EQ(str(error, {"object", "message"}),
            "too old resource version: " + old + " (" + now + ")");
  EXPECT_EQ(watcher->next_chunk().kind, WatchChunk::Kind::kEnd);
  EXPECT_EQ(server().open_watches(), 0u);

  // From the current version it works; so does a list.
  auto fresh = admin();
  EXPECT_EQ(
      fresh->start_watch(std::string(kEdgeNodes) + "?watch=true&resourceVersion=" + now).status,
      200u);
  ASSERT_TRUE(server().wait_for_watches(1, kWait));
  HttpResponse exact = admin()->call(
      "GET", std::string(kEdgeNodes) + "?resourceVersion=" + old + "&resourceVersionMatch=Exact");
  EXPECT_EQ(exact.status, 410u);
  EXPECT_EQ(str(exact.json(), {"reason"}), "Expired");
  EXPECT_EQ(admin()->call("GET", std::string(kEdgeNodes) + "?resourceVersion=" + old).status, 200u);
}

TEST_F(WatchTest, ExactListShowsThePast) {
  start();
  std::string then =
      str(server().create(kEdgeNodes, named("node-a")), {"metadata", "resourceVersion"});
  server().create(kEdgeNodes, named("node-b"));
  HttpResponse past = admin()->call(
      "GET", std::string(kEdgeNodes) + "?resourceVersion=" + then + "&resourceVersionMatch=Exact");
  ASSERT_EQ(past.status, 200u);
  EXPECT_EQ(past.json().at("items").as_array().size(), 1u);
  EXPECT_EQ(str(past.json(), {"metadata", "resourceVersion"}), then);
}

TEST_F(WatchTest, ClientThatGoesAwayClosesItsWatch) {
  start();
  {
    auto watcher = admin();
    ASSERT_EQ(watcher->start_watch(std::string(kLeases) + "?watch=true").status, 200u);
    ASSERT_TRUE(server().wait_for_watches(1, kWait));
  }
  EXPECT_TRUE(server().wait_for_no_watches(kWait));
  EXPECT_EQ(server().watches_started(), 1u);
}

TEST_F(WatchTest, DropConnectionsCutsWatchesAbruptly) {
  start();
  auto watcher = admin();
  ASSERT_EQ(watcher->start_watch(std::string(kLeases) + "?watch=true").status, 200u);
  ASSERT_TRUE(server().wait_for_watches(1, kWait));
  server().drop_connections();
  EXPECT_EQ(watcher->next_chunk().kind, WatchChunk::Kind::kError);
  EXPECT_TRUE(server().wait_for_no_watches(kWait));
}

}  // namespace
}  // namespace tetherd::test
