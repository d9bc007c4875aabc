// A resume with 200 meshed pods on the node, every proxy's certificate
// expired in the sleep (issue 22: under 2 s of tetherd's work plus the
// evictions' round trips). Each iteration: 200 pods in the test API server
// (as k3s), one stand-in proxy serving all their admin ports' pages, a
// MeshWatch that has read them all valid; then the wall clock jumps 7 days
// (the resume) and one pass is timed: the list, 200 reads, the verdict and
// 200 evictions (4 at a time) answered. Real TLS to the API server, real
// sockets to the proxy, on loopback. Counters: the pass's wall time per
// pod, and the CPU time of tetherd's thread alone (the API server and the
// proxy run on threads of their own).
//
//   build/release/bench/mesh_bench

#include <ctime>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/app/mesh_watch.h"
#include "test/support/api_server/api_server.h"
#include "test/support/fake_proxy.h"
#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"
#include "test/support/test_pki.h"

namespace {

namespace json = boost::json;
using namespace tetherd;
using namespace std::chrono_literals;

constexpr int kPods = 200;

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

struct K3s {
  K3s() {
    test::ApiServerOptions options;
    options.identity =
        ca.issue({.common_name = "k3s", .ip_addresses = {"127.0.0.1"}, .client_auth = false});
    options.client_ca_pem = ca.cert_pem();
    server = std::make_unique<test::ApiServer>(std::move(options));
    const auto admin = ca.issue(
        {.common_name = "system:admin", .organizations = {"system:masters"}, .server_auth = false});
    Kubeconfig k;
    k.server = server->url();
    k.ca_pem = ca.cert_pem();
    k.client_cert_pem = admin.cert_pem;
    k.client_key_pem = admin.key_pem;
    http = std::shared_ptr<kube::HttpsClient>(*kube::HttpsClient::create(io.get_executor(), k));
  }
  void pods() {
    for (int i = 0; i < kPods; ++i) {
      const std::string name = "web-" + std::to_string(i);
      server->create(
          "/api/v1/namespaces/shop/pods",
          {{"apiVersion", "v1"},
           {"kind", "Pod"},
           {"metadata",
            {{"name", name},
             {"namespace", "shop"},
             {"labels", {{"linkerd.io/control-plane-ns", "linkerd"}}},
             {"ownerReferences",
              json::array{json::object{
                  {"kind", "ReplicaSet"}, {"name", "web"}, {"uid", "rs"}, {"controller", true}}}}}},
           {"spec",
            {{"nodeName", "edge-1"},
             {"containers",
              json::array{json::object{
                  {"name", "linkerd-proxy"},
                  {"ports", json::array{json::object{{"name", "linkerd-admin"},
                                                     {"containerPort", proxy.port()}}}}}}}}}});
      server->patch_status(
          "/api/v1/namespaces/shop/pods/" + name,
          {{"phase", "Running"},
           {"podIP", "127.0.0.1"},
           {"conditions", json::array{json::object{{"type", "Ready"}, {"status", "True"}}}}});
    }
  }
  void pass(MeshWatch& mesh) {
    bool done = false;
    boost::asio::co_spawn(io, mesh.pass(), [&](std::exception_ptr e) {
      done = true;
      if (e) std::rethrow_exception(e);
    });
    while (!done) {
      io.restart();
      io.run_one();
    }
  }

  test::TestCa ca{"k3s-ca"};
  std::unique_ptr<test::ApiServer> server;
  boost::asio::io_context io;
  std::shared_ptr<kube::HttpsClient> http;
  test::FakeProxy proxy;
};

void BM_ResumeToEveryEviction(benchmark::State& state) {
  K3s k3s;
  double cpu = 0;
  for (auto _ : state) {
    state.PauseTiming();
    test::SimClock clock{std::chrono::system_clock::now()};
    NodeConditions conditions{clock, 1};
    test::RecordingLog log;
    k3s.proxy.serve(test::FakeProxy::page(clock.wall() + 20h, 1, 0, 64 << 10));
    k3s.pods();
    // The machinery's cost, not the daemon's pace: the per-minute bound
    // (30 by default) would spread these 200 over seven minutes.
    MeshTiming timing;
    timing.evictions_per_minute = kPods;
    timing.cap = kPods;  // 200 pods: over the default cap of 120 per pass
    MeshWatch mesh(
        k3s.io.get_executor(), clock, log, conditions, "edge-1", true, [] { return true; }, timing);
    mesh.set_k3s(k3s.http);
    k3s.pass(mesh);  // all read valid
    clock.suspend(7 * 24h);
    mesh.resumed(clock.wall());
    state.ResumeTiming();
    const double before = thread_cpu_seconds();
    k3s.pass(mesh);
    cpu += thread_cpu_seconds() - before;
    state.PauseTiming();
    if (mesh.stats().evictions != kPods) state.SkipWithError("not every pod was evicted");
    state.ResumeTiming();
  }
  state.counters["tetherd_cpu_ms"] =
      benchmark::Counter(cpu * 1e3 / static_cast<double>(state.iterations()));
  state.counters["pods"] = kPods;
}
BENCHMARK(BM_ResumeToEveryEviction)->Unit(benchmark::kMillisecond)->Iterations(5)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
