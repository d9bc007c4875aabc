// Resume to the new linkerd issuer written (issue 6: under 200 ms on
// loopback, key generation included). Each iteration: an expired issuer in
// the Secret, a three-day suspend on the FakeClock, then timed from the
// clocks' resume check (ResumeDetector) through the IssuerRotation's pass
// (read the ConfigMap and the Secret, judge, generate a P-256 key, sign,
// PUT) to its result. The local k3s is the test API server over mTLS on
// loopback. Also: the pass's parts alone (mint, and a check that writes
// nothing), to show where the time goes.
//
//   build/release/bench/issuer_bench

#include <fstream>
#include <sys/stat.h>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/adapters/issuer_mint.h"
#include "agent/app/issuer_rotation.h"
#include "agent/app/resume_detector.h"
#include "agent/core/base64.h"
#include "test/support/api_server/api_server.h"
#include "test/support/fake_clock.h"
#include "test/support/linkerd_pki.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace {

namespace json = boost::json;
using namespace tetherd;
using namespace std::chrono_literals;

struct LocalK3s {
  LocalK3s() {
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
    http = std::move(*kube::HttpsClient::create(io.get_executor(), k));
    client = std::make_unique<kube::KubeClient>(*http);
    std::ofstream(dir.file("anchor.key")) << anchor.key_pem;
    ::chmod(dir.file("anchor.key").c_str(), 0600);
    config.trust_anchor_key = dir.file("anchor.key");
    server->create(kube::collection_path(kube::kConfigMaps, "linkerd"),
                   json::object{{"metadata", {{"name", kTrustRootsConfigMapName}}},
                                {"data", {{kTrustRootsKey, anchor.cert_pem}}}});
    server->create(kube::collection_path(kube::kSecrets, "linkerd"),
                   json::object{{"metadata", {{"name", kIssuerSecretName}}}, {"data", data()}});
    server->create(kube::collection_path(kube::kDeployments, "linkerd"),
                   json::object{{"metadata", {{"name", "linkerd-identity"}}},
                                {"spec", {{"template", {{"metadata", json::object{}}}}}}});
  }

  // An issuer that expires an hour from the fake now: a three-day sleep
  // later it has expired.
  json::object data() const {
    const auto issuer = test::make_linkerd_issuer(anchor, {clock.wall() - 2h, clock.wall() + 1h});
    return {{"tls.crt", encode_base64(issuer.cert_pem)},
            {"tls.key", encode_base64(issuer.key_pem)},
            {"ca.crt", encode_base64(anchor.cert_pem)}};
  }

  void reset_secret() {
    const std::string path = kube::object_path(kube::kSecrets, "linkerd", kIssuerSecretName);
    json::object secret = *server->get(path);
    secret["data"] = data();
    server->update(path, secret);
  }

  boost::asio::io_context io{1};
  // As on the daemon's loop, something always waits there (here, nothing
  // else would): run_one() must block, not find the loop idle and stop.
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  test::TestCa ca{"k3s client CA"};
  test::TempDir dir;
  test::FakeClock clock{std::chrono::system_clock::now()};
  test::RecordingLog log;
  test::PemPair anchor = test::make_linkerd_anchor({clock.wall() - 1h, clock.wall() + 10 * 8760h});
  LinkerdConfig config;
  std::unique_ptr<test::ApiServer> server;
  std::unique_ptr<kube::HttpsClient> http;
  std::unique_ptr<kube::KubeClient> client;
};

void BM_ResumeToIssuerWritten(benchmark::State& state) {
  LocalK3s k3s;
  ResumeDetector resume(k3s.io, k3s.clock, k3s.log, {.bus_address = "none"});
  IssuerRotation rotation(k3s.io, *k3s.client, k3s.clock, k3s.log, k3s.config,
                          {.confirm_timeout = 0s});
  bool written = false;
  rotation.on_result([&](const RotationResult& r) { written = r.rotated; });
  resume.on_resumed([&](const ResumeEvent&) { rotation.request(RotationTrigger::kResume); });
  resume.start();
  for (auto _ : state) {
    state.PauseTiming();
    k3s.reset_secret();
    k3s.clock.suspend(72h);
    written = false;
    state.ResumeTiming();
    resume.check_clock();
    while (!written)
      k3s.io.run_one();
    state.PauseTiming();
    // The reload confirmation (a restart, with no identity controller
    // here) is after the write, not part of the number.
    while (rotation.busy())
      k3s.io.run_one();
    if (!written) state.SkipWithError("no rotation");
    state.ResumeTiming();
  }
  resume.stop();
}
BENCHMARK(BM_ResumeToIssuerWritten)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CheckOnly(benchmark::State& state) {
  LocalK3s k3s;
  IssuerRotation rotation(k3s.io, *k3s.client, k3s.clock, k3s.log, k3s.config);
  for (auto _ : state) {
    std::optional<IssuerReport> report;
    boost::asio::co_spawn(k3s.io, rotation.check(),
                          [&](std::exception_ptr, IssuerReport r) { report = std::move(r); });
    while (!report)
      k3s.io.run_one();
    benchmark::DoNotOptimize(report);
  }
}
BENCHMARK(BM_CheckOnly)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MintIssuer(benchmark::State& state) {
  const auto now = std::chrono::system_clock::now();
  const auto anchor = test::make_linkerd_anchor({now - 1h, now + 87600h});
  auto cert = x509::parse_certificates(anchor.cert_pem, "anchor");
  auto key = x509::parse_private_key(anchor.key_pem, "anchor key");
  for (auto _ : state) {
    auto minted = mint_issuer(cert->front(), *key, now, 8760h);
    benchmark::DoNotOptimize(minted);
  }
}
BENCHMARK(BM_MintIssuer)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
