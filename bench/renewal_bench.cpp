// Approval to the renewed client certificate in use (issue 21: under 1 s
// of the CSR's issue, on loopback). Each iteration: a certificate past its
// renewal point, a CredentialRenewal that has asked for its successor (the
// CSR pending), then timed from the admin's approval (the PUT on
// /approval, which the test API server's signer answers at once) through
// the renewal's watch event, the checks and the atomic writes, to a
// request the session's client makes with the new certificate, as the
// daemon hands it over (the renewal's report, then
// HttpsClient::use_credentials). Real mTLS, real files, the test API
// server on loopback.
//
//   build/release/bench/renewal_bench

#include <fstream>
#include <sys/stat.h>

#include <benchmark/benchmark.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "agent/app/credential_renewal.h"
#include "agent/config/kubeconfig_writer.h"
#include "agent/core/node_csr.h"
#include "test/support/api_server/api_server.h"
#include "test/support/fake_clock.h"
#include "test/support/rbac_manifest.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace {

namespace json = boost::json;
using namespace tetherd;
using namespace std::chrono_literals;

struct Cloud {
  Cloud() {
    test::ApiServerOptions options;
    options.identity =
        ca.issue({.common_name = "cloud", .ip_addresses = {"127.0.0.1"}, .client_auth = false});
    options.client_ca_pem = ca.cert_pem();
    options.csr_signer = ca;
    server = std::make_unique<test::ApiServer>(std::move(options));
    for (auto& rule : test::shipped_rules())
      server->allow(std::move(rule));
    const auto admin_cert = ca.issue(
        {.common_name = "system:admin", .organizations = {"system:masters"}, .server_auth = false});
    Kubeconfig k;
    k.server = server->url();
    k.ca_pem = ca.cert_pem();
    k.client_cert_pem = admin_cert.cert_pem;
    k.client_key_pem = admin_cert.key_pem;
    admin_http = std::move(*kube::HttpsClient::create(io.get_executor(), k));
    admin = std::make_unique<kube::KubeClient>(*admin_http);
    config.node_name = "edge-1";
    config.control_plane.emplace();
    config.control_plane->kubeconfig = dir.file("controlplane.kubeconfig");
  }

  // A certificate at 95% of its life: due now, wherever its point fell.
  void enrolled() {
    const auto cert = ca.issue({.common_name = "tetherd:edge-1",
                                .organizations = {"tetherd:nodes"},
                                .not_before_offset = -95h,
                                .lifetime = 100h,
                                .server_auth = false});
    std::ofstream(dir.file("node.crt")) << cert.cert_pem;
    std::ofstream(dir.file("node.key")) << cert.key_pem;
    ::chmod(dir.file("node.key").c_str(), 0600);
    std::ofstream(dir.file("controlplane.kubeconfig"))
        << render_kubeconfig({.server = server->url(),
                              .ca_pem = ca.cert_pem(),
                              .client_certificate = dir.file("node.crt"),
                              .client_key = dir.file("node.key"),
                              .user = "tetherd:edge-1"});
    ::chmod(dir.file("controlplane.kubeconfig").c_str(), 0600);
  }

  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  test::TestCa ca{"cloud CA"};
  test::TempDir dir;
  test::FakeClock clock{std::chrono::system_clock::now()};
  test::RecordingLog log;
  NodeConditions conditions{clock, 1};
  Config config;
  std::unique_ptr<test::ApiServer> server;
  std::unique_ptr<kube::HttpsClient> admin_http;
  std::unique_ptr<kube::KubeClient> admin;
};

void BM_ApprovalToNewCertificateInUse(benchmark::State& state) {
  Cloud cloud;
  for (auto _ : state) {
    state.PauseTiming();
    cloud.clock.step_wall(1min);  // a CSR's name has its time: one per iteration
    cloud.enrolled();
    auto session = std::move(*kube::HttpsClient::create(
        cloud.io.get_executor(), *load_kubeconfig(cloud.config.control_plane->kubeconfig)));
    kube::KubeClient client(*session);
    CredentialRenewal renewal(cloud.io.get_executor(), cloud.clock, cloud.log, cloud.conditions,
                              cloud.config);
    bool in_use = false;
    // As the daemon does: a usable new certificate goes to the session's
    // client, whose next request presents it.
    renewal.on_report([&](const CredentialReport& r) {
      if (r.state != CredentialState::kValid) return;
      auto k = load_kubeconfig(cloud.config.control_plane->kubeconfig);
      if (!k || !session->use_credentials(*k)) return;
      boost::asio::co_spawn(
          cloud.io,
          [&]() -> boost::asio::awaitable<void> {
            auto got = co_await client.get(
                kube::object_path(kube::kLeases, "tetherd-system", "tetherd-edge-1"));
            in_use = got || got.error().not_found();  // answered, with the new certificate
          },
          boost::asio::detached);
    });
    renewal.start();
    while (renewal.report().state != CredentialState::kRenewalPending)
      cloud.io.run_one();
    json::object csr = *cloud.server->get(std::string(kCsrCollection) + "/" + renewal.report().csr);
    csr["status"] = json::object{
        {"conditions",
         json::array{json::object{{"type", "Approved"}, {"status", "True"}, {"reason", "Bench"}}}}};
    const std::string approval =
        std::string(kCsrCollection) + "/" + renewal.report().csr + "/approval";
    state.ResumeTiming();
    boost::asio::co_spawn(
        cloud.io,
        [&]() -> boost::asio::awaitable<void> { co_await cloud.admin->update(approval, csr); },
        boost::asio::detached);
    while (!in_use)
      cloud.io.run_one();
    state.PauseTiming();
    if (cloud.server->requests().back().user != "tetherd:edge-1")
      state.SkipWithError("the last request was not the node's");
    renewal.stop();
    while (!renewal.finished())
      cloud.io.run_one();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_ApprovalToNewCertificateInUse)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
