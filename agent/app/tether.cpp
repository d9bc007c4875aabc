// The tether's life cycle and the glue between its parts. The jobs are in
// their own files: tether_session.cpp (the session's events),
// tether_spec.cpp (the EdgeNode's spec taken in), tether_status.cpp (status
// written) and tether_sleep.cpp (suspend and resume).
#include "agent/app/tether.h"

#include <algorithm>
#include <exception>
#include <utility>

#include <boost/asio/co_spawn.hpp>

#include "agent/core/lease.h"

namespace tetherd {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

Tether::Tether(asio::io_context& io, const Clock& clock, Log& log, FirewallKeeper& firewall,
               NodeConditions& conditions, std::unique_ptr<kube::HttpsClient> http,
               const Config& config, TetherTiming timing)
    : io_(io),
      clock_(clock),
      log_(log),
      firewall_(firewall),
      conditions_(conditions),
      http_(std::move(http)),
      client_(*http_),
      node_(config.node_name),
      namespace_(config.control_plane->namespace_),
      server_(http_->server()),
      objects_retry_(timing.retry ? *timing.retry : kube::default_retry_context(clock)),
      objects_watch_(timing.watch),
      reflector_(client_, kube::collection_path(kube::kEdgeNodes, namespace_),
                 "metadata.name=" + node_, timing.watch, objects_retry_, *this),
      lease_(client_, clock, log,
             LeaseSpec{lease_name(node_), namespace_, node_,
                       std::chrono::duration_cast<std::chrono::seconds>(
                           config.control_plane->lease_duration)},
             config.control_plane->heartbeat_interval, std::move(timing.lease_wait)),
      publisher_(std::max(config.health.interval, kStatusReportInterval)),
      health_interval_(config.health.interval),
      status_timer_(io, clock) {
  status_.agent_version = TETHERD_VERSION;
  cloud_.namespace_ = namespace_;
  // Any condition's change, whoever made it, is news for the EdgeNode.
  listening_ = conditions_.listen([this](const NodeConditions::Change&) {
    if (quiet_ || stopped_) return;
    poke_status();
  });
  lease_.jitter(objects_retry_.random);
  lease_.on_result([this](const kube::ApiResult<kube::LeaseRenewal>& result) {
    if (result) {
      reflector_.lease_renewed();
      // The first Lease after one that failed: a follower whose try failed
      // after the session watched again (the wake-up on_state gives) need
      // not wait out its backoff either. Not at every renewal: a follower
      // failing on its own (a list slower than the deadline) would then
      // retry in step with the heartbeat. Nor after a Lease the server
      // answered with an error (a 409, a 503): the server was there, and
      // on a link whose renewals alternate a follower would retry at
      // every other heartbeat.
      if (std::exchange(lease_failed_, false))
        for (auto* follower : {issuer_follower_.get(), bundle_follower_.get()})
          if (follower) follower->server_back();
    } else {
      if (result.error().unreachable()) lease_failed_ = true;
      reflector_.lease_failed(result.error());
    }
  });
}

Tether::~Tether() = default;

void Tether::start() {
  const auto& in_force = firewall_.in_force();
  if (in_force.sources.empty()) {
    set_firewall(ConditionStatus::kTrue, "StaticAllowlist",
                 "the static allowlist is in force; the control plane has not sent sources yet");
  } else {
    set_firewall(ConditionStatus::kTrue, "SavedStateApplied",
                 "the last good desired state (" + std::to_string(in_force.sources.size()) +
                     " sources) is in force until the control plane answers");
  }
  set_condition(condition_type::kConnected, ConditionStatus::kUnknown, "Connecting",
                "connecting to " + server_);
  log_.info("tether-starting", "connecting to the control plane at " + server_,
            {{"CONTROL_PLANE", server_}, {"NODE", node_}});
  spawn(reflector_.run());
  spawn(lease_.run());
  spawn(write_status_loop());
}

void Tether::spawn(awaitable<void> job) {
  ++running_;
  asio::co_spawn(io_, std::move(job), [this](std::exception_ptr e) {
    --running_;
    // Exceptions are for what cannot happen: let one end io.run(), and
    // with it the daemon, so that systemd restarts it.
    if (e) std::rethrow_exception(e);
  });
}

void Tether::stop() {
  if (stopped_) return;
  stopped_ = true;
  reflector_.stop();
  lease_.stop();
  status_timer_.cancel();
  // close(): a retired session opens nothing again, whatever its loops
  // do with an answer that was already in.
  http_->close();
  for (auto* follower : {issuer_follower_.get(), bundle_follower_.get()})
    if (follower) follower->stop();
  if (objects_http_) objects_http_->close();
}

void Tether::on_server_date(std::function<void(std::string_view)> listener) {
  http_->on_server_date(std::move(listener));
}

kube::ApiResult<void> Tether::use_credentials(const Kubeconfig& kubeconfig) {
  auto taken = http_->use_credentials(kubeconfig);
  if (taken && objects_http_) return objects_http_->use_credentials(kubeconfig);
  return taken;
}

void Tether::follow_objects_with(std::unique_ptr<kube::HttpsClient> http) {
  objects_http_ = std::move(http);
  objects_client_ = std::make_unique<kube::KubeClient>(*objects_http_);
}

std::shared_ptr<kube::ObjectFollower> Tether::follow(const kube::Resource& resource,
                                                     const std::string& name,
                                                     kube::FollowedObject& into) {
  into = {};
  if (name.empty()) return nullptr;
  if (!objects_client_) {
    into.error = "this tetherd follows no objects of the control plane";
    return nullptr;
  }
  kube::RetryContext retry = objects_retry_;
  // Five times the session's (5 minutes for its 60 s); a test's short cap
  // stays short for its followers too.
  retry.policy.cap = std::min<Duration>(kFollowerBackoffCap, 5 * retry.policy.cap);
  auto follower = std::make_shared<kube::ObjectFollower>(
      *objects_client_, kube::collection_path(resource, namespace_), name, std::move(retry),
      // `into` is the member this follower fills; a follower replaced
      // since is stopped, and says nothing more.
      [this, &into, weak = std::weak_ptr<int>(alive_)](const kube::FollowedObject& seen) {
        if (weak.expired() || stopped_) return;
        into = seen;
        changed();
      },
      objects_watch_);
  // The coroutine holds the follower until its run() ends, after a stop.
  spawn([](std::shared_ptr<kube::ObjectFollower> f) -> awaitable<void> {
    co_await f->run();
  }(follower));
  return follower;
}

void Tether::follow_refs(const LinkerdRefs& refs) {
  const LinkerdRefs before = cloud_.refs;
  cloud_.refs = refs;
  if (refs.issuer_secret != before.issuer_secret) {
    if (issuer_follower_) issuer_follower_->stop();
    issuer_follower_.reset();
    issuer_follower_ = follow(kube::kSecrets, refs.issuer_secret, cloud_.issuer);
  }
  if (refs.bundle_config_map != before.bundle_config_map) {
    if (bundle_follower_) bundle_follower_->stop();
    bundle_follower_.reset();
    bundle_follower_ = follow(kube::kConfigMaps, refs.bundle_config_map, cloud_.bundle);
  }
  log_.info(
      "linkerd-references",
      "spec.linkerd: issuer " +
          (refs.issuer_secret.empty() ? std::string("minted on the node, if at all")
                                      : "from Secret " + namespace_ + "/" + refs.issuer_secret) +
          "; trust bundle " +
          (refs.bundle_config_map.empty() ? std::string("left as it is")
                                          : "from ConfigMap " + namespace_ + "/" +
                                                refs.bundle_config_map + " key " + refs.bundle_key),
      {{"CONTROL_PLANE", server_}});
  changed();
}

NodeStatus Tether::status() const {
  NodeStatus s = status_;
  // Derived as of now, not as of the last write: the local view (tetherctl
  // status) shows the firewall before the first status write too.
  s.conditions = conditions_.all();
  s.firewall_sources = firewall_.source_count();
  s.firewall_backend = std::string(firewall_.backend_name());
  s.refused_recently = firewall_.refused_recently();
  return s;
}

std::string Tether::summary() const {
  const SessionState s = state();
  if (s == SessionState::kWatching || s == SessionState::kListing) return "watching " + server_;
  std::string text = std::string(to_string(s));
  for (auto& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (last_error_ && s != SessionState::kDisconnected) text += ": " + kube::describe(*last_error_);
  return text;
}

void Tether::changed() {
  if (on_change_) on_change_();
}

void Tether::set_condition(std::string_view type, ConditionStatus status, std::string_view reason,
                           std::string_view message) {
  conditions_.report(type, status, reason, message);
}

void Tether::set_firewall(ConditionStatus status, std::string_view reason,
                          std::string_view message) {
  conditions_.firewall_verdict(status, reason, message);
}

void Tether::set_certificates(std::vector<CertificateExpiry> certificates) {
  if (certificates == status_.certificates) return;
  status_.certificates = std::move(certificates);
  poke_status();
}

void Tether::set_mesh(std::optional<MeshSummary> mesh) {
  if (status_.linkerd == mesh) return;
  status_.linkerd = std::move(mesh);
  poke_status();
}

void Tether::set_node_vitals(NodeVitals facts) {
  // Written with the next status, not on its own: the facts change every
  // round, and a write per round would be a write per interval anyway.
  status_.node = std::move(facts);
}

void Tether::retime(const Config& config) {
  if (stopped_) return;
  lease_.retime(
      config.control_plane->heartbeat_interval,
      std::chrono::duration_cast<std::chrono::seconds>(config.control_plane->lease_duration));
  publisher_.set_interval(std::max(config.health.interval, kStatusReportInterval));
  health_interval_ = config.health.interval;
  poke_status();
}

void Tether::poke_status() {
  status_poked_ = true;
  status_timer_.cancel();
}

}  // namespace tetherd
