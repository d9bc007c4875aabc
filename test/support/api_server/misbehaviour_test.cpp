// Each misbehaviour, seen from a client: what arrives, what does not, and
// that the server behaves again afterwards.

#include <thread>

#include <boost/json/parse.hpp>

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {
namespace json = boost::json;

MisbehaviourSpec spec(Misbehaviour what) {
  MisbehaviourSpec s;
  s.what = what;
  return s;
}

class MisbehaviourTest : public ApiServerTest {
 protected:
  void SetUp() override {
    start();
    server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-a"}}}});
    server().create(kEdgeNodes, json::object{{"metadata", json::object{{"name", "node-b"}}}});
  }
  std::string watch_path() { return std::string(kEdgeNodes) + "?watch=true"; }
};

TEST_F(MisbehaviourTest, TooManyRequestsCarriesRetryAfter) {
  MisbehaviourSpec s = spec(Misbehaviour::kStatus429);
  s.retry_after_seconds = 3;
  server().misbehave(s);
  auto kubectl = admin();
  HttpResponse throttled = kubectl->call("GET", kEdgeNodes);
  EXPECT_EQ(throttled.status, 429u);
  EXPECT_EQ(throttled.header("retry-after"), "3");
  EXPECT_EQ(str(throttled.json(), {"reason"}), "TooManyRequests");
  EXPECT_EQ(num(throttled.json(), {"details", "retryAfterSeconds"}), 3);
  EXPECT_EQ(num(throttled.json(), {"code"}), 429);
  EXPECT_EQ(kubectl->call("GET", kEdgeNodes).status, 200u);  // times = 1
}

TEST_F(MisbehaviourTest, ServerErrorsForMatchingRequestsOnly) {
  MisbehaviourSpec s = spec(Misbehaviour::kStatus503);
  s.times = 2;
  s.path_contains = "/leases";
  s.retry_after_seconds = 7;
  server().misbehave(s);
  auto kubectl = admin();
  EXPECT_EQ(kubectl->call("GET", kEdgeNodes).status, 200u);
  HttpResponse unavailable = kubectl->call("GET", kLeases);
  EXPECT_EQ(unavailable.status, 503u);
  EXPECT_EQ(unavailable.header("retry-after"), "7");
  EXPECT_EQ(str(unavailable.json(), {"reason"}), "ServiceUnavailable");
  EXPECT_EQ(kubectl->call("GET", kLeases).status, 503u);
  EXPECT_EQ(kubectl->call("GET", kLeases).status, 200u);

  server().misbehave(spec(Misbehaviour::kStatus500));
  HttpResponse internal = kubectl->call("GET", kLeases);
  EXPECT_EQ(internal.status, 500u);
  EXPECT_EQ(str(internal.json(), {"reason"}), "InternalError");
  EXPECT_EQ(str(internal.json(), {"message"}),
            "Internal error occurred: etcdserver: request timed out");
}

// A write whose answer is lost: the server acts, the client hears a cut.
TEST_F(MisbehaviourTest, AMethodNarrowsTheRequestsItMatches) {
  MisbehaviourSpec s = spec(Misbehaviour::kDropMidStream);
  s.method = "POST";
  server().misbehave(s);
  auto kubectl = admin();
  EXPECT_EQ(kubectl->call("GET", kEdgeNodes).status, 200u) << "a GET is not a POST";
  HttpResponse cut =
      kubectl->call("POST", kEdgeNodes, R"({"metadata":{"name":"node-c"}})", "application/json");
  EXPECT_TRUE(cut.error);
  EXPECT_TRUE(server().get(std::string(kEdgeNodes) + "/node-c")) << "created all the same";
  EXPECT_EQ(admin()->call("GET", std::string(kEdgeNodes) + "/node-c").status, 200u)
      << "on a new connection: the cut one is gone";
}

TEST_F(MisbehaviourTest, DropMidStreamCutsAnswersAndWatches) {
  server().misbehave(spec(Misbehaviour::kDropMidStream));
  auto kubectl = admin();
  HttpResponse cut = kubectl->call("GET", kEdgeNodes);
  EXPECT_TRUE(cut.error);
  EXPECT_EQ(server().requests().back().status, 200u);

  MisbehaviourSpec s = spec(Misbehaviour::kDropMidStream);
  s.watch_only = true;
  s.after_events = 1;
  server().misbehave(s);
  auto watcher = admin();
  EXPECT_EQ(watcher->call("GET", kEdgeNodes).status, 200u);  // not a watch
  ASSERT_EQ(watcher->start_watch(watch_path()).status, 200u);
  EXPECT_EQ(watcher->next_chunk().kind, WatchChunk::Kind::kChunk);
  WatchChunk after = watcher->next_chunk();  // node-b's ADDED never comes, nor the last chunk
  EXPECT_EQ(after.kind, WatchChunk::Kind::kError);
  EXPECT_TRUE(server().wait_for_no_watches(kWait));
}

TEST_F(MisbehaviourTest, StallHoldsTheRequestUntilReleased) {
  server().misbehave(spec(Misbehaviour::kStall));
  auto kubectl = admin();
  std::thread releaser([this] {
    if (server().wait_for_requests(1, kWait)) server().release_stalls();
  });
  auto started = std::chrono::steady_clock::now();
  HttpResponse stalled = kubectl->call("GET", kEdgeNodes);
  releaser.join();
  EXPECT_TRUE(stalled.error);  // closed, not timed out
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
  EXPECT_EQ(server().requests().at(0).status, 0u);
  EXPECT_EQ(admin()->call("GET", kEdgeNodes).status, 200u);
}

TEST_F(MisbehaviourTest, StallWatchSendsNothingAfterItsEvents) {
  MisbehaviourSpec s = spec(Misbehaviour::kStallWatch);
  s.after_events = 1;
  server().misbehave(s);
  auto watcher = admin();
  ASSERT_EQ(
      watcher->start_watch(watch_path() + "&allowWatchBookmarks=true&timeoutSeconds=1").status,
      200u);
  EXPECT_EQ(watcher->next_chunk().kind, WatchChunk::Kind::kChunk);
  ASSERT_TRUE(server().wait_for_watches(1, kWait));
  server().bookmark_now();
  server().end_watches();
  server().patch_status(object(kEdgeNodes, "node-a"), json::object{{"x", 1}});
  watcher->set_deadline(std::chrono::milliseconds(1500));  // past timeoutSeconds=1
  WatchChunk silence = watcher->next_chunk();
  EXPECT_EQ(silence.kind, WatchChunk::Kind::kError);
  EXPECT_TRUE(silence.timed_out) << silence.error.message();
  server().release_stalls();
  EXPECT_TRUE(server().wait_for_no_watches(kWait));
}

TEST_F(MisbehaviourTest, DripSendsOneByteAtATime) {
  MisbehaviourSpec s = spec(Misbehaviour::kDrip);
  s.drip_interval = std::chrono::milliseconds(1);
  server().misbehave(s);
  auto kubectl = admin();
  auto started = std::chrono::steady_clock::now();
  HttpResponse dripped = kubectl->call("GET", "/readyz");
  auto elapsed = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(dripped.status, 200u);
  EXPECT_EQ(dripped.body, "ok");
  EXPECT_GE(elapsed, std::chrono::milliseconds(100));  // ~200 bytes, 1 ms apart
  auto fast = std::chrono::steady_clock::now();
  EXPECT_EQ(kubectl->call("GET", "/readyz").body, "ok");
  EXPECT_LT(std::chrono::steady_clock::now() - fast, elapsed);
}

TEST_F(MisbehaviourTest, OversizedBodiesAndEvents) {
  MisbehaviourSpec s = spec(Misbehaviour::kOversizedBody);
  s.oversize_bytes = 1 << 20;
  server().misbehave(s);
  auto kubectl = admin();
  HttpResponse big = kubectl->call("GET", kEdgeNodes);
  EXPECT_EQ(big.status, 200u);
  EXPECT_EQ(big.body.size(), 1u << 20);
  EXPECT_TRUE(big.json().is_object());

  s.after_events = 1;
  server().misbehave(s);
  auto watcher = admin();
  ASSERT_EQ(watcher->start_watch(watch_path()).status, 200u);
  EXPECT_LT(watcher->next_chunk().data.size(), 1000u);
  WatchChunk huge = watcher->next_chunk();
  EXPECT_EQ(huge.data.size(), (1u << 20) + 1);          // and its newline
  EXPECT_LT(watcher->next_chunk().data.size(), 1000u);  // then the watch goes on
}

TEST_F(MisbehaviourTest, MalformedJsonBodiesAndEvents) {
  server().misbehave(spec(Misbehaviour::kMalformedJson));
  auto kubectl = admin();
  HttpResponse bad = kubectl->call("GET", object(kEdgeNodes, "node-a"));
  EXPECT_EQ(bad.status, 200u);
  EXPECT_EQ(bad.header("content-type"), "application/json");
  boost::system::error_code ec;
  json::parse(bad.body, ec);
  EXPECT_TRUE(ec);

  server().misbehave(spec(Misbehaviour::kMalformedJson));
  auto watcher = admin();
  ASSERT_EQ(watcher->start_watch(watch_path()).status, 200u);
  WatchChunk line = watcher->next_chunk();
  ASSERT_EQ(line.kind, WatchChunk::Kind::kChunk);
  EXPECT_EQ(line.data.back(), '\n');
  json::parse(line.data, ec);
  EXPECT_TRUE(ec);
}

TEST_F(MisbehaviourTest, GoneOverHttpForWatchesOnly) {
  server().misbehave(spec(Misbehaviour::kGoneHttp));
  auto kubectl = admin();
  EXPECT_EQ(kubectl->call("GET", kEdgeNodes).status, 200u);  // a list does not match
  HttpResponse gone = kubectl->start_watch(watch_path() + "&resourceVersion=101");
  EXPECT_EQ(gone.status, 410u);
  WatchChunk body = kubectl->next_chunk();
  EXPECT_EQ(str(json::parse(body.data), {"reason"}), "Expired");
  EXPECT_EQ(num(json::parse(body.data), {"code"}), 410);
  EXPECT_EQ(str(json::parse(body.data), {"message"}), "too old resource version: 101 (102)");
  EXPECT_EQ(admin()->start_watch(watch_path()).status, 200u);
}

class TlsMisbehaviourTest : public ApiServerTest {
 protected:
  void SetUp() override {
    ApiServerOptions options = default_options();
    LeafOptions wrong;
    wrong.common_name = "somewhere-else";
    wrong.dns_names = {"wrong.example"};
    wrong.ip_addresses = {"192.0.2.1"};
    options.wrong_host = test_ca().issue(wrong);
    LeafOptions expired;
    expired.common_name = "kube-apiserver";
    expired.ip_addresses = {"127.0.0.1"};
    expired.not_before_offset = -std::chrono::hours(48);
    expired.lifetime = std::chrono::hours(24);
    options.expired = test_ca().issue(expired);
    start(options);
  }
};

TEST_F(TlsMisbehaviourTest, WrongHostCertificateFailsNameVerification) {
  server().misbehave(spec(Misbehaviour::kWrongHostCert));
  boost::system::error_code refused = admin()->connect();
  EXPECT_TRUE(refused);
  EXPECT_NE(refused.message().find("certificate verify failed"), std::string::npos)
      << refused.message();
  EXPECT_FALSE(admin()->connect());  // times = 1
}

TEST_F(TlsMisbehaviourTest, ExpiredCertificateFailsVerification) {
  MisbehaviourSpec s = spec(Misbehaviour::kExpiredCert);
  s.times = 2;
  server().misbehave(s);
  EXPECT_TRUE(admin()->connect());
  EXPECT_TRUE(admin()->connect());
  EXPECT_FALSE(admin()->connect());
  EXPECT_EQ(server().connections_accepted(), 3u);
}

TEST_F(TlsMisbehaviourTest, ArmingWithoutTheIdentityIsRefused) {
  ApiServer plain(default_options());
  EXPECT_THROW(plain.misbehave(spec(Misbehaviour::kExpiredCert)), std::invalid_argument);
}

}  // namespace
}  // namespace tetherd::test
