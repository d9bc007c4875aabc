#pragma once
// The node's health: a probe round every health.interval (and at once after
// a resume), its results damped into conditions (core/health.h), and the
// outputs: the EdgeNode's status (through the Tether), one journal line per
// transition, Prometheus metrics and the local status document that
// `tetherctl status` reads.
//
// A round runs the network probes concurrently, each under its own
// deadline, and the cheap local ones in line:
//   K3sReady             the local k3s API's /readyz and this node's Ready
//                        condition (when a cluster kubeconfig is usable);
//   LinkerdGatewayReady  the gateway's readiness URL and a TCP connect to
//                        4143 (when linkerd is configured);
//   FirewallInSync       the live rules read back against the desired ones
//                        (and repaired: FirewallKeeper::reconcile);
//   ClockSynchronized    the kernel's clock discipline (adjtimex);
//   MeshHealthy          after each round, the meshed proxies on this node
//                        (app/mesh_watch.h, when linkerd is configured and
//                        k3s reachable; its own pass, not awaited here);
//   status.node          load, memory, disk, uptime, last resume.
// The conditions are the node's (core/node_conditions.h): the rounds report
// their results there, as the Tether (Connected, the spec's verdict) and
// the daemon (CertificatesValid, CredentialsValid) do; this object writes
// the journal line of every transition, whoever made it, and serves the
// board's view on the metrics and the socket.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include "agent/adapters/http_server.h"
#include "agent/app/firewall_keeper.h"
#include "agent/app/mesh_watch.h"
#include "agent/app/tether.h"
#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/health.h"
#include "agent/core/log.h"
#include "agent/core/node_conditions.h"
#include "agent/core/timer.h"
#include "agent/kube/https_client.h"
#include "agent/tunnel/tunnel_agent.h"

namespace tetherd {

// Per-probe deadlines: well inside the shortest interval (1 s is allowed,
// but a round that overruns only delays the next one).
struct ProbeDeadlines {
  Duration k3s = std::chrono::seconds(5);
  Duration gateway = std::chrono::seconds(2);
};

struct HealthStats {
  std::uint64_t rounds = 0;
  std::uint64_t transitions = 0;
  std::uint64_t resumes = 0;
  std::uint64_t rotations = 0;  // issuers written
  // The last round's probe durations, for the metrics.
  Duration k3s_took{}, gateway_took{}, local_took{};
};

class NodeHealth {
 public:
  // `k3s`: a client for the local cluster's API (cluster.kubeconfig), or
  // null when there is none; `tether`: null when standalone.
  NodeHealth(boost::asio::io_context& io, const Clock& clock, Log& log, const Config& config,
             FirewallKeeper& firewall, NodeConditions& conditions, Tether* tether,
             std::shared_ptr<kube::HttpsClient> k3s, ProbeDeadlines deadlines = {},
             std::uint16_t gateway_port = kGatewayPort);
  // The linkerd gateway's data port, on the readiness URL's host.
  static constexpr std::uint16_t kGatewayPort = 4143;
  ~NodeHealth();

  // The first round now, then one per interval.
  void start();
  // GET /metrics on `metrics_listen` ("ADDRESS:PORT"; empty: not served) and
  // GET /v1/status on the unix socket `socket_path` (mode 0600; empty: not
  // served). What cannot be served is logged; the rest runs on. stop()
  // closes both.
  void serve(const std::string& metrics_listen, const std::string& socket_path);
  // Serves the metrics on a new address (a reload's metrics.listen; empty:
  // off). The new listener is bound before the old one closes: one that
  // cannot be had leaves the old one serving, and the error says why.
  Result<void> listen_metrics(const std::string& metrics_listen);
  const std::string& metrics_listen() const { return metrics_listen_; }
  // A reload: the node's name, health.interval (the wait under way is cut
  // short when the new interval has already passed), health.threshold,
  // health.linkerdGateway and the state directory's disk.
  void reconfigure(const Config& config);
  // The control plane's session, new or gone after a reload: the new one
  // gets the certificates and vitals known here.
  void set_tether(Tether* tether);
  // The tunnel as it is when the metrics or the status document are made
  // (nullopt: no tunnel).
  struct TunnelView {
    std::string server;
    tunnel::TunnelReport report;
  };
  void set_tunnel_view(std::function<std::optional<TunnelView>()> view) {
    tunnel_view_ = std::move(view);
  }
  void stop();
  // The machine woke: a round now (the timer, on CLOCK_MONOTONIC, stood
  // still), and `at` becomes status.node.lastResumeTime.
  void resumed(WallTime at);
  // The local cluster's client, once its kubeconfig could be used: the next
  // round probes it.
  // A probe in flight keeps the client it started with alive.
  void set_k3s(std::shared_ptr<kube::HttpsClient> k3s);
  // linkerd's trust bundle in force (its hash), and whether the meshed pods
  // started with another are rolled (a bundle from the cloud).
  void set_trust_bundle(std::string sha256, WallTime since, bool roll);
  // A condition whose producer is gone (a reload removed its section).
  void forget(std::string_view type);
  // The certificates behind CertificatesValid, for status.certificates and
  // the expiry metrics; `rotated` counts a new issuer.
  void certificates(std::vector<CertificateExpiry> certificates, bool rotated);

  // One round; start() runs them on the timer. For tests and the bench.
  boost::asio::awaitable<void> round();

  const Conditions& conditions() const;
  // The status as tetherd reports it (the Tether's when there is one).
  NodeStatus status() const;
  // GET /v1/status on the local socket (see tetherctl's status_view.h).
  boost::json::object status_document() const;
  // GET /metrics, in the Prometheus text format.
  std::string metrics() const;
  const HealthStats& stats() const { return stats_; }
  // "Ready=False (ClockNotSynchronized)", or "" before the first condition:
  // for systemd's STATUS=.
  std::string summary() const;
  // Called after each transition (for STATUS=).
  void on_transition(std::function<void()> listener) { on_transition_ = std::move(listener); }
  bool finished() const;
  // The meshed proxies' watch; null without linkerd.
  MeshWatch* mesh() const { return mesh_.get(); }

 private:
  void take(std::string_view type, const ProbeResult& result);
  void note(const std::vector<ConditionTransition>& transitions);
  boost::asio::awaitable<void> loop();
  boost::asio::awaitable<std::optional<ProbeResult>> k3s_probe();
  boost::asio::awaitable<std::optional<ProbeResult>> gateway_probe();
  void local_round();
  // linkerd configured: the watch made (or its heal switch set); not: stopped.
  void follow_mesh(const Config& config);

  boost::asio::io_context& io_;
  const Clock& clock_;
  Log& log_;
  std::string node_;
  Duration interval_;
  std::string gateway_url_;  // empty: not probed
  FirewallKeeper& firewall_;
  Tether* tether_;
  std::function<std::optional<TunnelView>()> tunnel_view_;
  std::shared_ptr<kube::HttpsClient> k3s_;
  ProbeDeadlines deadlines_;
  std::uint16_t gateway_port_;
  NodeConditions& conditions_;
  NodeConditions::Subscription listening_;
  std::vector<CertificateExpiry> certificates_;
  std::optional<NodeVitals> facts_;
  std::optional<WallTime> last_resume_;
  std::vector<std::string> disk_paths_;
  std::string metrics_listen_;
  std::unique_ptr<HttpServer> metrics_server_;
  std::unique_ptr<HttpServer> status_server_;
  Timer timer_;
  MonoTime round_started_{};
  bool poked_ = false;
  bool rearm_ = false;  // a new interval: the wait under way is armed again
  bool stopped_ = false;
  // Expires with this object: a callback from the firewall's worker that
  // comes after it checks.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  bool running_ = false;
  std::unique_ptr<MeshWatch> mesh_;
  std::string bundle_sha256_;
  WallTime bundle_since_{};
  bool roll_bundle_ = false;
  std::vector<std::unique_ptr<MeshWatch>> retired_mesh_;  // stopped, until finished
  HealthStats stats_;
  std::function<void()> on_transition_;
};

}  // namespace tetherd
