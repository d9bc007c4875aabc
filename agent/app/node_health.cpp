#include "agent/app/node_health.h"

#include <cstdio>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/serialize.hpp>

#include "agent/adapters/host_facts.h"
#include "agent/app/health_metrics.h"
#include "agent/app/probes.h"
#include "agent/core/host_health.h"
#include "agent/core/kube_time.h"
#include "agent/core/prometheus_text.h"

namespace tetherd {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

// Where k3s keeps its images, volumes and database.
constexpr const char* kRancherDir = "/var/lib/rancher";

std::string load_text(double load) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", load);
  return text;
}

Priority priority_of(ConditionStatus status) {
  return status == ConditionStatus::kTrue ? Priority::kNotice : Priority::kWarning;
}

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

MeshSummary summary_of(const MeshReport& r) {
  return MeshSummary{r.meshed, r.expired, r.unreadable, r.bundle_sha256, r.stale_bundle};
}

}  // namespace

NodeHealth::NodeHealth(asio::io_context& io, const Clock& clock, Log& log, const Config& config,
                       FirewallKeeper& firewall, NodeConditions& conditions, Tether* tether,
                       std::shared_ptr<kube::HttpsClient> k3s, ProbeDeadlines deadlines,
                       std::uint16_t gateway_port)
    : io_(io),
      clock_(clock),
      log_(log),
      node_(config.node_name),
      interval_(config.health.interval),
      gateway_url_(config.linkerd ? config.health.linkerd_gateway : std::string()),
      firewall_(firewall),
      tether_(tether),
      k3s_(std::move(k3s)),
      deadlines_(deadlines),
      gateway_port_(gateway_port),
      conditions_(conditions),
      disk_paths_{kRancherDir, config.state.dir},
      timer_(io, clock) {
  conditions_.set_threshold(config.health.threshold);
  // Every transition, whoever made it, is a journal line.
  listening_ = conditions_.listen(
      [this](const NodeConditions::Change& change) { note(change.transitions); });
  follow_mesh(config);
}

void NodeHealth::follow_mesh(const Config& config) {
  std::erase_if(retired_mesh_, [](const auto& m) { return m->finished(); });
  if (!config.linkerd) {
    if (!mesh_) return;
    mesh_->stop();
    retired_mesh_.push_back(std::move(mesh_));
    forget(condition_type::kMeshHealthy);
    if (tether_) tether_->set_mesh(std::nullopt);  // status.linkerd goes too
    return;
  }
  if (mesh_ && mesh_->node() != node_) {  // renamed: the pods are another node's
    mesh_->stop();
    retired_mesh_.push_back(std::move(mesh_));
  }
  if (mesh_) {
    mesh_->set_heal(config.linkerd->heal_expired_proxies);
    return;
  }
  // Healing waits until linkerd's issuer is known and in force by the wall
  // clock now (not by the last verdict, which may be from before a sleep):
  // a new proxy could get no certificate otherwise.
  auto issuer_valid = [this] {
    const WallTime now = clock_.wall();
    bool known = false;
    for (const CertificateExpiry& c : certificates_) {
      if (c.role != "issuer") continue;
      known = true;
      if (c.not_after <= now) return false;
    }
    return known;
  };
  mesh_ = std::make_unique<MeshWatch>(io_.get_executor(), clock_, log_, conditions_, node_,
                                      config.linkerd->heal_expired_proxies, issuer_valid);
  mesh_->set_k3s(k3s_);
  mesh_->set_trust_bundle(bundle_sha256_, bundle_since_, roll_bundle_);
  mesh_->on_report([this](const MeshReport& r) {
    if (tether_) tether_->set_mesh(summary_of(r));
  });
  if (running_) mesh_->start();
}

void NodeHealth::set_trust_bundle(std::string sha256, WallTime since, bool roll) {
  bundle_sha256_ = std::move(sha256);
  bundle_since_ = since;
  roll_bundle_ = roll;
  if (mesh_) mesh_->set_trust_bundle(bundle_sha256_, bundle_since_, roll_bundle_);
}

void NodeHealth::set_k3s(std::shared_ptr<kube::HttpsClient> k3s) {
  k3s_ = std::move(k3s);
  if (mesh_) mesh_->set_k3s(k3s_);
}

bool NodeHealth::finished() const {
  if (running_ || (mesh_ && !mesh_->finished())) return false;
  return std::all_of(retired_mesh_.begin(), retired_mesh_.end(),
                     [](const auto& m) { return m->finished(); });
}

NodeHealth::~NodeHealth() = default;

void NodeHealth::start() {
  running_ = true;
  if (mesh_) mesh_->start();
  asio::co_spawn(io_, loop(), [this](std::exception_ptr e) {
    running_ = false;
    rethrow(e);
  });
}

void NodeHealth::stop() {
  stopped_ = true;
  timer_.cancel();
  if (mesh_) mesh_->stop();
  if (metrics_server_) metrics_server_->stop();
  if (status_server_) status_server_->stop();
}

void NodeHealth::serve(const std::string& metrics_listen, const std::string& socket_path) {
  using Request = HttpServer::Request;
  using Response = HttpServer::Response;
  if (auto r = listen_metrics(metrics_listen); !r) {
    log_.warning("metrics-unavailable",
                 "cannot serve metrics: " + r.error().message + "; the rest runs on",
                 {{"LISTEN", metrics_listen}});
  }
  if (!socket_path.empty()) {
    auto server = listen_unix(io_, socket_path, 0600, [this](const Request& r) {
      if (r.target != "/v1/status")
        return Response{404, "text/plain; charset=utf-8", "see /v1/status\n"};
      return Response{200, "application/json", boost::json::serialize(status_document())};
    });
    if (server) {
      status_server_ = std::move(*server);
    } else {
      log_.warning(
          "status-socket-unavailable",
          "cannot serve tetherctl status: " + server.error().message + "; the rest runs on",
          {{"SOCKET", socket_path}});
    }
  }
}

Result<void> NodeHealth::listen_metrics(const std::string& listen) {
  using Request = HttpServer::Request;
  using Response = HttpServer::Response;
  if (listen == metrics_listen_ && (metrics_server_ || listen.empty())) return {};
  std::unique_ptr<HttpServer> next;
  if (!listen.empty()) {
    auto server = listen_tcp(io_, listen, [this](const Request& r) {
      if (r.target != "/metrics")
        return Response{404, "text/plain; charset=utf-8", "see /metrics\n"};
      return Response{200, std::string(kPrometheusContentType), metrics()};
    });
    if (!server) return server.error();
    next = std::move(*server);
  }
  if (metrics_server_) metrics_server_->stop();
  metrics_server_ = std::move(next);
  metrics_listen_ = listen;
  if (metrics_server_) {
    log_.info("metrics-listening", "Prometheus metrics on http://" + listen + "/metrics",
              {{"LISTEN", listen}});
  }
  return {};
}

void NodeHealth::reconfigure(const Config& config) {
  node_ = config.node_name;
  gateway_url_ = config.linkerd ? config.health.linkerd_gateway : std::string();
  conditions_.set_threshold(config.health.threshold);
  disk_paths_ = {kRancherDir, config.state.dir};
  follow_mesh(config);
  if (config.health.interval != interval_) {
    interval_ = config.health.interval;
    // The wait under way was armed with the old interval: armed again,
    // counted from the last round's start.
    rearm_ = true;
    timer_.cancel();
  }
  if (!gateway_url_.empty()) return;
  // Not probed any more: the condition goes with its probe.
  forget(condition_type::kLinkerdGatewayReady);
}

void NodeHealth::set_tether(Tether* tether) {
  if (tether == tether_) return;
  tether_ = tether;
  if (tether_ == nullptr) return;
  // The conditions are the node's, not the session's: the new one finds
  // them on the board. What it writes besides them comes from here.
  if (!certificates_.empty()) tether_->set_certificates(certificates_);
  if (facts_) tether_->set_node_vitals(*facts_);
  if (mesh_ && mesh_->report()) tether_->set_mesh(summary_of(*mesh_->report()));
}

void NodeHealth::resumed(WallTime at) {
  last_resume_ = at;
  if (mesh_) mesh_->resumed(at);
  ++stats_.resumes;
  poked_ = true;
  timer_.cancel();
}

awaitable<void> NodeHealth::loop() {
  while (!stopped_) {
    poked_ = false;
    round_started_ = clock_.monotonic();
    co_await round();
    Duration wait = interval_;
    while (!stopped_ && !poked_ && wait > Duration::zero()) {
      timer_.expires_after(wait);
      co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
      if (!std::exchange(rearm_, false)) break;
      wait = round_started_ + interval_ - clock_.monotonic();
    }
  }
}

awaitable<void> NodeHealth::round() {
  ++stats_.rounds;
  // The network probes concurrently, each bounded by its own deadline; the
  // local ones meanwhile, in line (they are system calls).
  auto network = asio::co_spawn(io_, k3s_probe() && gateway_probe(), asio::use_awaitable);
  local_round();
  auto [k3s, gateway] = co_await std::move(network);
  if (stopped_) co_return;
  // A reload may have removed a probe while it ran: its answer is dropped,
  // or it would bring back a condition nothing probes any more.
  if (k3s && k3s_) {
    stats_.k3s_took = k3s->took;
    take(condition_type::kK3sReady, *k3s);
  }
  if (gateway && !gateway_url_.empty()) {
    stats_.gateway_took = gateway->took;
    take(condition_type::kLinkerdGatewayReady, *gateway);
  }
  // Its own pass: a hundred proxies read do not hold the next round back.
  if (mesh_) mesh_->poke();
  std::erase_if(retired_mesh_, [](const auto& m) { return m->finished(); });
}

awaitable<std::optional<ProbeResult>> NodeHealth::k3s_probe() {
  // Held for the probe: a reload may replace the client meanwhile.
  const std::shared_ptr<kube::HttpsClient> k3s = k3s_;
  if (k3s == nullptr) co_return std::nullopt;
  co_return co_await probe_k3s(*k3s, node_, deadlines_.k3s, clock_);
}

awaitable<std::optional<ProbeResult>> NodeHealth::gateway_probe() {
  if (gateway_url_.empty()) co_return std::nullopt;
  co_return co_await probe_linkerd_gateway(io_.get_executor(), gateway_url_, gateway_port_,
                                           deadlines_.gateway);
}

void NodeHealth::local_round() {
  const MonoTime started = clock_.monotonic();
  const HostFacts host = read_host_facts(disk_paths_);
  take(condition_type::kClockSynchronized, clock_synchronized(host.clock));

  NodeVitals facts;
  if (host.load) {
    facts.load1 = load_text(host.load->one);
    facts.load5 = load_text(host.load->five);
    facts.load15 = load_text(host.load->fifteen);
  }
  facts.memory_available_bytes = host.memory_available_bytes.value_or(0);
  facts.memory_total_bytes = host.memory_total_bytes.value_or(0);
  for (const DiskSpace& d : host.disks) {
    if (d.present) facts.disk.push_back({d.path, d.available_bytes, d.total_bytes});
  }
  facts.uptime_seconds = std::chrono::duration_cast<std::chrono::seconds>(host.uptime).count();
  facts.last_resume = last_resume_;
  facts_ = facts;
  if (tether_) tether_->set_node_vitals(std::move(facts));

  // The live rules against the desired ones, repaired if someone changed
  // them; and whether another firewall now blocks what we allow.
  // Off the event loop (the backend may be slow): judged when it is done.
  firewall_.reconcile(
      [this, alive = std::weak_ptr<int>(alive_)](const Result<firewall::Firewall::Drift>& drift) {
        if (alive.expired() || stopped_) return;
        const Result<void> live =
            drift ? Result<void>() : Result<void>(make_error(drift.error().message));
        // Without a control plane the static allowlist is what the node
        // was asked to hold; with one, the session's verdict on the spec.
        if (tether_ == nullptr) conditions_.firewall_standalone(firewall_.summary());
        conditions_.firewall_checked(live);
      });
  firewall_.check_surroundings();
  stats_.local_took = clock_.monotonic() - started;
}

void NodeHealth::take(std::string_view type, const ProbeResult& result) {
  conditions_.probed(type, result);
}

void NodeHealth::forget(std::string_view type) {
  conditions_.forget(type);
}

void NodeHealth::certificates(std::vector<CertificateExpiry> certificates, bool rotated) {
  if (rotated) ++stats_.rotations;
  certificates_ = certificates;
  if (tether_) tether_->set_certificates(std::move(certificates));
}

std::string NodeHealth::summary() const {
  const Condition* ready = conditions_.find(condition_type::kReady);
  if (ready == nullptr) return {};
  std::string out = "Ready=" + std::string(to_string(ready->status));
  if (ready->status != ConditionStatus::kTrue) out += " (" + ready->reason + ")";
  return out;
}

void NodeHealth::note(const std::vector<ConditionTransition>& transitions) {
  for (const ConditionTransition& t : transitions) {
    ++stats_.transitions;
    const std::string from = t.first ? "none" : std::string(to_string(t.from));
    log_.write(priority_of(t.to), "condition-changed",
               t.type + " is " + std::string(to_string(t.to)) +
                   (t.reason.empty() ? "" : " (" + t.reason + ")") +
                   (t.message.empty() ? "" : ": " + t.message),
               {{"CONDITION", t.type},
                {"STATUS", std::string(to_string(t.to))},
                {"PREVIOUS_STATUS", from},
                {"REASON", t.reason},
                {"NODE", node_}});
  }
  if (!transitions.empty() && on_transition_) on_transition_();
}

const Conditions& NodeHealth::conditions() const {
  return conditions_.all();
}

NodeStatus NodeHealth::status() const {
  if (tether_) return tether_->status();
  NodeStatus s;
  s.conditions = conditions_.all();
  s.firewall_sources = firewall_.source_count();
  s.firewall_backend = std::string(firewall_.backend_name());
  s.refused_recently = firewall_.refused_recently();
  s.agent_version = TETHERD_VERSION;
  s.certificates = certificates_;
  s.node = facts_;
  if (mesh_ && mesh_->report()) s.linkerd = summary_of(*mesh_->report());
  return s;
}

boost::json::object NodeHealth::status_document() const {
  // "time": the moment this answer was made, so `tetherctl status` draws ages
  // and times left as of the answer, whatever clock it runs under.
  boost::json::object doc{{"nodeName", node_}, {"time", format_kube_time(clock_.wall())}};
  if (tether_) {
    doc["controlPlane"] =
        boost::json::object{{"server", tether_->server()}, {"summary", tether_->summary()}};
  }
  if (auto t = tunnel_view_ ? tunnel_view_() : std::nullopt) {
    const tunnel::RelayStats& totals = t->report.totals;
    boost::json::object o{{"server", t->server},
                          {"serversWanted", t->report.servers_wanted},
                          {"serversHeld", t->report.servers.size()},
                          {"connections", totals.connections},
                          {"dialsServed", totals.dials},
                          {"dialsRefused", totals.dials_refused},
                          {"dialsFailed", totals.dials_failed},
                          {"bytesToDestinations", totals.bytes_to_destinations},
                          {"bytesToServers", totals.bytes_to_server}};
    if (!t->report.problem.empty()) o["problem"] = t->report.problem;
    doc["tunnel"] = std::move(o);
  }
  doc["status"] = status_object(status());
  return doc;
}

std::string NodeHealth::metrics() const {
  MetricsInputs in;
  in.status = status();
  if (tether_) {
    in.control_plane = true;
    in.connected = tether_->connected();
    in.reconnects = tether_->stats().connects > 0 ? tether_->stats().connects - 1 : 0;
    in.status_writes = tether_->stats().status_writes;
    in.status_write_failures = tether_->stats().status_failures;
    in.lease_renewals = tether_->lease_stats().renewals;
    in.lease_failures = tether_->lease_stats().failures;
  }
  in.resumes = stats_.resumes;
  in.rotations = stats_.rotations;
  in.health_rounds = stats_.rounds;
  in.condition_transitions = stats_.transitions;
  if (k3s_) in.k3s_probe = stats_.k3s_took;
  if (!gateway_url_.empty()) in.gateway_probe = stats_.gateway_took;
  in.local_probe = stats_.local_took;
  if (mesh_) in.mesh = mesh_->stats();
  in.evidence = firewall_.evidence();
  in.evidence_read_at = firewall_.evidence_read_at();
  if (auto t = tunnel_view_ ? tunnel_view_() : std::nullopt) in.tunnel = std::move(t->report);
  if (auto process = read_process_stats()) in.process = *process;
  return render_metrics(in);
}

}  // namespace tetherd
