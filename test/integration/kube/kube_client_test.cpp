// Every verb tetherd uses, against the test API server over real mTLS.
#include "agent/kube/kube_client.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/core/kube_time.h"
#include "test/integration/kube/kube_fixture.h"

namespace tetherd::test {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using kube::ApiResult;
using kube::ErrorKind;
using kube::KubeClient;

const std::string kNodeA = kube::object_path(kube::kEdgeNodes, kNamespace, "node-a");
const std::string kLeases = kube::collection_path(kube::kLeases, kNamespace);
const std::string kLeaseA = kube::object_path(kube::kLeases, kNamespace, "tetherd-node-a");

json::object lease(const std::string& renew_time) {
  return json::object{
      {"apiVersion", "coordination.k8s.io/v1"},
      {"kind", "Lease"},
      {"metadata", {{"name", "tetherd-node-a"}, {"namespace", kNamespace}}},
      {"spec",
       {{"holderIdentity", "node-a"}, {"leaseDurationSeconds", 40}, {"renewTime", renew_time}}}};
}

TEST(KubePaths, CoreAndGroupResources) {
  EXPECT_EQ(kube::object_path(kube::kEdgeNodes, "ns", "a", "status"),
            "/apis/tetherd.io/v1alpha1/namespaces/ns/edgenodes/a/status");
  EXPECT_EQ(kube::collection_path(kube::kSecrets, "linkerd"), "/api/v1/namespaces/linkerd/secrets");
  EXPECT_EQ(kube::query_escape("metadata.name=node-a"), "metadata.name%3Dnode-a");
}

TEST_F(KubeTest, LeaseCreateGetUpdateAndAConflict) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto created = run(kube.create(kLeases, lease("2026-11-21T10:00:00.000000Z")));
  ASSERT_TRUE(created) << describe(created.error());
  const auto rv1 = rv_of(*created);

  auto got = run(kube.get(kLeaseA));
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(rv_of(*got), rv1);

  auto renewed = *got;
  renewed["spec"].as_object()["renewTime"] = "2026-11-21T10:00:10.000000Z";
  auto updated = run(kube.update(kLeaseA, renewed));
  ASSERT_TRUE(updated) << describe(updated.error());
  EXPECT_NE(rv_of(*updated), rv1);
  EXPECT_EQ(updated->at("spec").at("renewTime").as_string(), "2026-11-21T10:00:10.000000Z");

  // Someone else renewed meanwhile: our copy (rv1) is stale.
  auto stale = run(kube.update(kLeaseA, *got));
  ASSERT_FALSE(stale);
  EXPECT_TRUE(stale.error().conflict()) << describe(stale.error());
  EXPECT_NE(describe(stale.error()).find("the object has been modified"), std::string::npos);
  EXPECT_FALSE(stale.error().retryable()) << "a conflict needs a re-read, not the same PUT again";

  auto again = run(kube.create(kLeases, lease("x")));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, 409u);
  EXPECT_EQ(again.error().reason, "AlreadyExists");
}

TEST_F(KubeTest, UpdateWithoutResourceVersionIsRefusedBeforeTheNetwork) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto r = run(kube.update(kLeaseA, lease("x")));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalid);
  EXPECT_EQ(server_->requests().size(), 0u);
}

TEST_F(KubeTest, MergePatchOfStatusKeepsSpecAndOfSpecBumpsGeneration) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  auto http = client(kubeconfig());
  KubeClient kube(*http);

  json::object status_patch{
      {"status",
       {{"observedGeneration", 1},
        {"conditions",
         json::array{{{"type", "Ready"}, {"status", "True"}, {"reason", "AllGood"}}}}}}};
  auto patched = run(kube.merge_patch(kNodeA + "/status", status_patch));
  ASSERT_TRUE(patched) << describe(patched.error());
  EXPECT_EQ(patched->at("status").at("conditions").at(0).at("reason").as_string(), "AllGood");
  EXPECT_EQ(patched->at("spec").at("firewall").at("allowedSources").at(0).as_string(),
            "192.0.2.0/24");
  EXPECT_EQ(patched->at("metadata").at("generation").as_int64(), 1);

  auto spec = run(kube.merge_patch(
      kNodeA, {{"spec", {{"firewall", {{"allowedSources", {"198.51.100.0/24"}}}}}}}));
  ASSERT_TRUE(spec) << describe(spec.error());
  EXPECT_EQ(spec->at("metadata").at("generation").as_int64(), 2);
  EXPECT_EQ(spec->at("status").at("conditions").at(0).at("reason").as_string(), "AllGood");
}

TEST_F(KubeTest, ListWithFieldSelectorAndWhatRbacRefuses) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-b", {"203.0.113.0/24"}));
  // A user outside the nodes' group, allowed its own EdgeNode by name only.
  server_->allow({.user = "tetherd:node-x",
                  .verbs = {"get", "list"},
                  .group = "tetherd.io",
                  .resource = "edgenodes",
                  .namespace_ = kNamespace,
                  .names = {"node-a"}});
  auto http = client(kubeconfig("tetherd:node-x", nullptr, {}));
  KubeClient kube(*http);
  const auto edgenodes = kube::collection_path(kube::kEdgeNodes, kNamespace);

  auto mine = run(kube.list(edgenodes, "metadata.name=node-a"));
  ASSERT_TRUE(mine) << describe(mine.error());
  ASSERT_EQ(mine->items.size(), 1u);
  EXPECT_EQ(mine->items[0].at("metadata").at("name").as_string(), "node-a");
  EXPECT_EQ(mine->resource_version, std::to_string(server_->resource_version()));

  auto all = run(kube.list(edgenodes));
  ASSERT_FALSE(all);
  EXPECT_EQ(all.error().code, 403u);

  auto other = run(kube.get(kube::object_path(kube::kEdgeNodes, kNamespace, "node-b")));
  ASSERT_FALSE(other);
  EXPECT_EQ(
      describe(other.error()),
      "HTTP 403 Forbidden: GET " + server_->url() +
          "/apis/tetherd.io/v1alpha1/namespaces/tetherd-system/"
          "edgenodes/node-b: edgenodes.tetherd.io \"node-b\" is forbidden: User "
          "\"tetherd:node-x\" cannot get resource \"edgenodes\" in API group \"tetherd.io\" in "
          "the namespace \"tetherd-system\"");
  EXPECT_FALSE(other.error().retryable());

  auto node_http = client(kubeconfig());
  KubeClient node_a(*node_http);
  auto missing = run(node_a.get(kLeaseA));
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().not_found()) << describe(missing.error());
}

TEST_F(KubeTest, ConnectionsAreKeptAliveAndAClosedOneIsReplacedUnseen) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(run(kube.get(kNodeA)));
  EXPECT_EQ(server_->connections_accepted(), 1u);
  EXPECT_EQ(http->connections_opened(), 1u);
  EXPECT_EQ(http->tls_version(), "TLSv1.3") << "1.3 when the server has it";

  // The server (or a NAT box) closes the idle connection; the next GET is
  // not an error: it goes out again on a fresh connection.
  server_->drop_connections();
  auto after = run(kube.get(kNodeA));
  ASSERT_TRUE(after) << describe(after.error());
  EXPECT_EQ(http->connections_opened(), 2u);
}

TEST_F(KubeTest, DisconnectAllEndsARequestInFlightAtOnce) {
  server_->misbehave({.what = Misbehaviour::kStall});
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto pending = start(kube.get(kNodeA));
  ASSERT_TRUE(server_->wait_for_requests(1, kDeadline));
  on_client_thread([&] { http->disconnect_all(); });
  auto r = finish(pending);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, "Disconnected");
  EXPECT_NE(r.error().message.find("connection closed by tetherd"), std::string::npos);
}

// A stop: close() ends what is in flight like disconnect_all(), and what
// an owner begins after it (its loop carried on by an answer that was
// already in) fails at once instead of opening a connection the stop did
// not see.
TEST_F(KubeTest, CloseAlsoRefusesWhatIsBegunAfterIt) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  ASSERT_TRUE(run(kube.get(kNodeA)));  // one connection, kept idle
  on_client_thread([&] { http->close(); });
  auto r = run(kube.get(kNodeA));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, "Disconnected");
  auto w = run(kube.watch(kube::collection_path(kube::kEdgeNodes, kNamespace), {},
                          [](const kube::WatchEvent&) {}));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().reason, "Disconnected");
  EXPECT_EQ(http->connections_opened(), 1u) << "nothing opened after close()";
  EXPECT_EQ(server_->connections_accepted(), 1u);
}

// In process (the simulations' transport): a watch hears each line, and
// a disconnect_all() ends it as closing its socket would; after close()
// no watch begins at all.
struct ParkedWatch {
  asio::io_context& io;
  int watches = 0;
  std::optional<asio::steady_timer> parked;
  bool cut = false;
  std::string target;
  Duration asked_idle{};
  asio::awaitable<ApiResult<void>> run(kube::HttpRequest request, Duration idle,
                                       kube::HttpsClient::BodySink sink,
                                       std::function<void()> on_open,
                                       kube::HttpsClient::Cut on_cut) {
    ++watches;
    target = request.target;
    asked_idle = idle;
    parked.emplace(io, asio::steady_timer::time_point::max());
    on_cut([this] {
      cut = true;
      parked->cancel();
    });
    on_open();
    auto fed = sink("{\"type\":\"ADDED\"}\n");
    if (!fed) co_return fed.error();
    co_await parked->async_wait(asio::as_tuple(asio::use_awaitable));
    kube::ApiError ended{ErrorKind::kTransport, 0, cut ? "Disconnected" : "", "cut", std::nullopt};
    co_return ended;
  }
};
asio::awaitable<ApiResult<kube::HttpResponse>> answer_ok(kube::HttpRequest request) {
  co_return kube::HttpResponse{200, request.target, "", ""};
}

TEST(KubeInProcess, AWatchIsCutByDisconnectAllAndNoneBeginsAfterClose) {
  asio::io_context io;
  ParkedWatch server{io};
  auto http = kube::HttpsClient::create_in_process(
      io.get_executor(), "https://cloud.example:6443", answer_ok,
      [&](kube::HttpRequest request, Duration idle, kube::HttpsClient::BodySink sink,
          std::function<void()> on_open, kube::HttpsClient::Cut on_cut) {
        return server.run(std::move(request), idle, std::move(sink), std::move(on_open),
                          std::move(on_cut));
      });
  std::vector<std::string> heard;
  bool opened = false;
  std::optional<ApiResult<void>> ended;
  const auto watch = [&]() -> asio::awaitable<void> {
    // Named, not a temporary in the co_await: GCC 12 relocates an
    // aggregate temporary there instead of moving it.
    kube::HttpRequest request{boost::beast::http::verb::get, "/watch", {}, {}};
    ended = co_await http->stream(
        std::move(request), std::chrono::seconds(150),
        [&](std::string_view line) -> ApiResult<bool> {
          heard.emplace_back(line);
          return true;
        },
        [&] { opened = true; });
  };
  asio::co_spawn(io, watch(), asio::detached);
  io.poll();
  ASSERT_EQ(heard.size(), 1u);
  EXPECT_TRUE(opened);
  EXPECT_FALSE(ended) << "a watch runs until it is cut";
  http->disconnect_all();
  io.poll();
  ASSERT_TRUE(ended);
  ASSERT_FALSE(*ended);
  EXPECT_EQ(ended->error().reason, "Disconnected");
  http->disconnect_all();  // nothing left to cut: no second call of the first cut
  http->close();
  ended.reset();
  asio::co_spawn(io, watch(), asio::detached);
  io.restart();  // it ran out of work when the first watch ended
  io.poll();
  ASSERT_TRUE(ended);
  ASSERT_FALSE(*ended);
  EXPECT_EQ(ended->error().reason, "Disconnected");
  EXPECT_EQ(server.watches, 1) << "nothing begins after close()";
  EXPECT_EQ(server.target, "/watch");
  EXPECT_EQ(server.asked_idle, std::chrono::seconds(150));
}

// In process (the simulations'), an answer's Date is heard as a socket's
// is, each time; a client closed tells no one.
TEST(KubeInProcess, AnAnswersDateIsHeardAsASocketsIs) {
  asio::io_context io;
  const std::string date = "Mon, 07 Dec 2026 08:00:00 GMT";
  auto http = kube::HttpsClient::create_in_process(
      io.get_executor(), "https://cloud.example:6443",
      [&](kube::HttpRequest r) -> asio::awaitable<ApiResult<kube::HttpResponse>> {
        co_return kube::HttpResponse{404, r.target, "", date};
      });
  std::vector<std::string> heard;
  http->on_server_date([&](std::string_view d) { heard.emplace_back(d); });
  const auto get = [&]() -> asio::awaitable<void> {
    kube::HttpRequest request{boost::beast::http::verb::get, "/api", {}, {}};
    co_await http->send(std::move(request));
  };
  asio::co_spawn(io, get(), asio::detached);
  asio::co_spawn(io, get(), asio::detached);
  io.run();
  EXPECT_EQ(heard, (std::vector<std::string>{date, date}));
  http->close();
  asio::co_spawn(io, get(), asio::detached);
  io.restart();
  io.run();
  EXPECT_EQ(heard.size(), 2u) << "closed: refused, and no one told";
}

// The control plane's clock, heard with every answer (a 404 too) and with
// a watch's head: the daemon's witness of true time (ClockWitness).
TEST_F(KubeTest, TheServersDateIsHeardWithEachAnswer) {
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace),
                  edge_node("node-a", {"192.0.2.0/24"}));
  auto http = client(kubeconfig());
  std::vector<std::string> heard;
  http->on_server_date([&](std::string_view date) { heard.emplace_back(date); });
  KubeClient kube(*http);
  ASSERT_TRUE(run(kube.get(kNodeA)));
  EXPECT_FALSE(run(kube.get(kLeaseA)));  // 404
  kube::WatchOptions options;
  options.timeout = std::chrono::seconds(1);
  ASSERT_TRUE(run(kube.watch(kube::collection_path(kube::kEdgeNodes, kNamespace), options,
                             [](const kube::WatchEvent&) {})));
  ASSERT_EQ(heard.size(), 3u);
  for (const std::string& date : heard) {
    const auto t = parse_http_date(date);
    ASSERT_TRUE(t) << date;
    EXPECT_LT(std::chrono::abs(*t - std::chrono::system_clock::now()), std::chrono::seconds(30))
        << date;
  }
}

TEST_F(KubeTest, ABearerTokenWorksAndAnUnknownOneGets401) {
  // k3s's own kubeconfig style: a token, a CA, the server at 127.0.0.1.
  ApiServerOptions options;
  TestCa ca("k3s-server-ca");
  options.identity = ca.issue({.common_name = "k3s", .ip_addresses = {"127.0.0.1"}});
  options.client_ca_pem = ca.cert_pem();
  options.tokens = {{"s3cr3t-token", "tetherd:node-a"}};
  ApiServer k3s(std::move(options));
  k3s.allow({"tetherd:node-a", {"get"}, "", "configmaps", "linkerd", {}});
  k3s.create("/api/v1/namespaces/linkerd/configmaps",
             {{"apiVersion", "v1"},
              {"kind", "ConfigMap"},
              {"metadata", {{"name", "linkerd-identity-trust-roots"}, {"namespace", "linkerd"}}},
              {"data", {{"ca-bundle.crt", "x"}}}});
  Kubeconfig k;
  k.server = k3s.url();
  k.ca_pem = ca.cert_pem();
  k.token = "s3cr3t-token";
  auto http = client(k);
  KubeClient kube(*http);
  auto cm = run(kube.get("/api/v1/namespaces/linkerd/configmaps/linkerd-identity-trust-roots"));
  ASSERT_TRUE(cm) << describe(cm.error());
  EXPECT_EQ(cm->at("data").at("ca-bundle.crt").as_string(), "x");

  k.token = "wrong";
  auto bad = client(k);
  KubeClient kube_bad(*bad);
  auto denied = run(kube_bad.get("/api/v1/namespaces/linkerd/configmaps/x"));
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, 401u);
}

}  // namespace
}  // namespace tetherd::test
