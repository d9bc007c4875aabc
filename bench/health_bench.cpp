// One health round's cost (issue 7: under 5 ms of CPU). Each iteration runs
// NodeHealth::round() on this thread: the k3s probe (/readyz and the node,
// over a kept-alive mTLS connection to the test API server standing in for
// k3s), the linkerd gateway probe (an HTTP GET and a TCP connect to a
// stand-in on loopback), the host's vitals and clock, and the firewall's
// read-back (backend none here; bench/firewall-apply measures nftables).
// Google Benchmark's CPU column is this thread's CPU time: tetherd's cost,
// not the servers' (they run on threads of their own).
//
//   build/release/bench/health_bench

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/app/node_health.h"
#include "test/support/api_server/api_server.h"
#include "test/support/fake_backend.h"
#include "test/support/fake_clock.h"
#include "test/support/fake_gateway.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace {

namespace json = boost::json;
using namespace tetherd;
using namespace std::chrono_literals;

struct Rig {
  Rig() {
    test::ApiServerOptions options;
    options.identity =
        ca.issue({.common_name = "k3s", .ip_addresses = {"127.0.0.1"}, .client_auth = false});
    options.client_ca_pem = ca.cert_pem();
    server = std::make_unique<test::ApiServer>(std::move(options));
    server->create(
        "/api/v1/nodes",
        json::object{{"metadata", {{"name", "bench"}}},
                     {"status",
                      {{"conditions", json::array{json::object{{"type", "Ready"},
                                                               {"status", "True"},
                                                               {"reason", "KubeletReady"}}}}}}});
    const auto admin = ca.issue(
        {.common_name = "system:admin", .organizations = {"system:masters"}, .server_auth = false});
    Kubeconfig k;
    k.server = server->url();
    k.ca_pem = ca.cert_pem();
    k.client_cert_pem = admin.cert_pem;
    k.client_key_pem = admin.key_pem;
    k3s = std::move(*kube::HttpsClient::create(io.get_executor(), k));
    config.node_name = "bench";
    config.linkerd.emplace();
    config.health.linkerd_gateway = gateway.url();
    config.state.dir = dir.path();
    config.firewall.backend = FirewallBackend::kNone;
    (void)keeper.start(config.firewall);
    health = std::make_unique<NodeHealth>(io, clock, log, config, keeper, conditions, nullptr, k3s,
                                          ProbeDeadlines{}, gateway.gateway_port());
  }

  void round() {
    // run() until the round is over; the work guard keeps the loop from
    // running dry while the round waits on a socket.
    auto work = boost::asio::make_work_guard(io);
    boost::asio::co_spawn(io, health->round(), [this](std::exception_ptr) { io.stop(); });
    io.run();
    io.restart();
    log.records.clear();
  }

  test::TestCa ca{"k3s CA"};
  std::unique_ptr<test::ApiServer> server;
  test::FakeGateway gateway;
  test::TempDir dir;
  boost::asio::io_context io{1};
  test::FakeClock clock;
  test::RecordingLog log;
  NodeConditions conditions{clock, 2};
  Config config;
  std::shared_ptr<kube::HttpsClient> k3s;
  FirewallKeeper keeper{log,
                        StateDir(dir.path()),
                        [](const FirewallConfig&) { return std::make_unique<test::FakeBackend>(); },
                        {},
                        io.get_executor()};
  std::unique_ptr<NodeHealth> health;
};

void BM_HealthRound(benchmark::State& state) {
  Rig rig;
  rig.round();  // the first one dials k3s (TLS handshake): not the steady state
  for (auto _ : state)
    rig.round();
  state.counters["k3s_probe_ms"] =
      std::chrono::duration<double, std::milli>(rig.health->stats().k3s_took).count();
  state.counters["gateway_probe_ms"] =
      std::chrono::duration<double, std::milli>(rig.health->stats().gateway_took).count();
}
BENCHMARK(BM_HealthRound)->Unit(benchmark::kMillisecond);

// The metrics page as a scrape builds it.
void BM_MetricsPage(benchmark::State& state) {
  Rig rig;
  rig.round();
  for (auto _ : state)
    benchmark::DoNotOptimize(rig.health->metrics());
}
BENCHMARK(BM_MetricsPage)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
