// The Kubernetes client's costs: decoding a watch stream (what every spec
// change and bookmark costs the node), and a GET over a kept-alive mTLS
// connection on loopback (the client's overhead per request, with the test
// API server standing in for kube-apiserver).
//   build/release/bench/kube_bench

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include "agent/kube/kube_client.h"
#include "agent/kube/watch_decoder.h"
#include "test/support/api_server/api_server.h"
#include "test/support/test_pki.h"

namespace {

namespace json = boost::json;
using namespace tetherd;

// An EdgeNode MODIFIED event with `sources` CIDRs, as kube-apiserver sends it.
std::string modified_event(int rv, int sources) {
  json::array cidrs;
  for (int i = 0; i < sources; ++i)
    cidrs.emplace_back("10." + std::to_string(i / 256) + "." + std::to_string(i % 256) + ".0/24");
  json::object event{{"type", "MODIFIED"},
                     {"object",
                      {{"apiVersion", "tetherd.io/v1alpha1"},
                       {"kind", "EdgeNode"},
                       {"metadata",
                        {{"name", "node-a"},
                         {"namespace", "tetherd-system"},
                         {"uid", "6b1f5a8e-8f3c-4d4e-9d1a-0c6f3e2b7a11"},
                         {"resourceVersion", std::to_string(rv)},
                         {"generation", rv},
                         {"creationTimestamp", "2026-11-21T10:00:00Z"}}},
                       {"spec", {{"firewall", {{"allowedSources", std::move(cidrs)}}}}}}}};
  return json::serialize(event) + "\n";
}

void BM_WatchDecode(benchmark::State& state) {
  const int sources = static_cast<int>(state.range(0));
  std::string stream;
  for (int i = 0; i < 100; ++i)
    stream += modified_event(1000 + i, sources);
  constexpr std::size_t kRead = 16 << 10;  // what one read of the client hands over
  std::vector<kube::WatchEvent> events;
  for (auto _ : state) {
    kube::WatchDecoder decoder;
    for (std::size_t i = 0; i < stream.size(); i += kRead) {
      events.clear();
      if (!decoder.feed(std::string_view(stream).substr(i, kRead), events)) {
        state.SkipWithError("decode failed");
        return;
      }
    }
    benchmark::DoNotOptimize(events);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
  state.SetItemsProcessed(state.iterations() * 100);
  state.counters["event_bytes"] = static_cast<double>(stream.size() / 100);
}
BENCHMARK(BM_WatchDecode)->Arg(1)->Arg(100)->Arg(1000);

void BM_GetOverMtls(benchmark::State& state) {
  test::TestCa ca("bench CA");
  test::ApiServerOptions options;
  options.identity = ca.issue({"kube-apiserver", {}, {"localhost"}, {"127.0.0.1"}});
  options.client_ca_pem = ca.cert_pem();
  test::ApiServer server(std::move(options));
  server.allow(
      {"tetherd:node-a", {"get"}, "tetherd.io", "edgenodes", "tetherd-system", {"node-a"}});
  auto node = json::parse(modified_event(1, 10)).at("object").as_object();
  node["metadata"].as_object().erase("resourceVersion");
  server.create(kube::collection_path(kube::kEdgeNodes, "tetherd-system"), std::move(node));
  const auto client_cert = ca.issue({"tetherd:node-a", {}, {}, {}});
  Kubeconfig k;
  k.server = server.url();
  k.ca_pem = ca.cert_pem();
  k.client_cert_pem = client_cert.cert_pem;
  k.client_key_pem = client_cert.key_pem;

  boost::asio::io_context io;
  auto http = kube::HttpsClient::create(io.get_executor(), k);
  if (!http) {
    state.SkipWithError(http.error().message.c_str());
    return;
  }
  kube::KubeClient client(**http);
  const auto path = kube::object_path(kube::kEdgeNodes, "tetherd-system", "node-a");
  bool failed = false;
  for (auto _ : state) {
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          auto r = co_await client.get(path);
          failed = failed || !r;
        },
        boost::asio::detached);
    io.restart();
    io.run();
  }
  if (failed) state.SkipWithError("a GET failed");
  state.counters["connections"] = static_cast<double>((*http)->connections_opened());
}
BENCHMARK(BM_GetOverMtls)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
