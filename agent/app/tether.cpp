#include "agent/app/tether.h"

#include <exception>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>

#include "agent/core/edge_node.h"
#include "agent/core/lease.h"

namespace tetherd {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;

namespace {

// The Connected condition's reason for a failure: what an operator reading
// `kubectl get edgenode -o yaml` or `tetherctl status` should look into.
std::string_view unreachable_reason(const kube::ApiError& e) {
  switch (e.kind) {
    case kube::ErrorKind::kTls:
      return "TLSHandshakeFailed";
    case kube::ErrorKind::kTimeout:
      return "Timeout";
    case kube::ErrorKind::kTransport:
      return "Unreachable";
    case kube::ErrorKind::kDecode:
    case kube::ErrorKind::kTooLarge:
    case kube::ErrorKind::kInvalid:
      return "BadResponse";
    case kube::ErrorKind::kHttp:
      break;
  }
  if (e.code == 401) return "Unauthorized";
  if (e.code == 403) return "Forbidden";
  if (e.code == 404) return "NotFound";
  if (e.code == 429) return "Throttled";
  if (e.code >= 500) return "ServerError";
  return "RequestFailed";
}

// metadata.generation of an object that did not decode, if it has one: the
// status says which generation was looked at and refused.
std::optional<std::int64_t> generation_of(const json::object& object) {
  const auto* metadata = object.if_contains("metadata");
  if (!metadata || !metadata->is_object()) return std::nullopt;
  const auto* generation = metadata->as_object().if_contains("generation");
  if (!generation || !generation->is_int64() || generation->as_int64() < 0) return std::nullopt;
  return generation->as_int64();
}

// Exceptions are for what cannot happen: let one end io.run(), and with it
// the daemon, so that systemd restarts it.
void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

}  // namespace

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
      reflector_(client_, kube::collection_path(kube::kEdgeNodes, namespace_),
                 "metadata.name=" + node_, timing.watch,
                 timing.retry ? std::move(*timing.retry) : kube::default_retry_context(clock),
                 *this),
      lease_(client_, clock, log,
             LeaseSpec{lease_name(node_), namespace_, node_,
                       std::chrono::duration_cast<std::chrono::seconds>(
                           config.control_plane->lease_duration)},
             config.control_plane->heartbeat_interval, std::move(timing.lease_wait)),
      publisher_(config.health.interval),
      health_interval_(config.health.interval),
      status_timer_(io, clock) {
  status_.agent_version = TETHERD_VERSION;
  // Any condition's change, whoever made it, is news for the EdgeNode.
  listening_ = conditions_.listen([this](const NodeConditions::Change&) {
    if (quiet_ || stopped_) return;
    poke_status();
    changed();
  });
  lease_.on_result([this](const kube::ApiResult<kube::LeaseRenewal>& result) {
    if (result)
      reflector_.lease_renewed();
    else
      reflector_.lease_failed(result.error());
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
  running_ = 3;
  auto done = [this](std::exception_ptr e) {
    --running_;
    rethrow(e);
  };
  asio::co_spawn(io_, reflector_.run(), done);
  asio::co_spawn(io_, lease_.run(), done);
  asio::co_spawn(io_, write_status_loop(), done);
}

void Tether::stop() {
  if (stopped_) return;
  stopped_ = true;
  reflector_.stop();
  lease_.stop();
  status_timer_.cancel();
  http_->disconnect_all();
}

void Tether::resumed() {
  if (stopped_) return;
  going_to_sleep_ = false;
  log_.notice("tether-redial", "resumed from suspend: redialling the control plane at " + server_,
              {{"CONTROL_PLANE", server_}});
  reflector_.resumed();
  lease_.renew_now();
  poke_status();
}

void Tether::suspending(std::function<void()> done) {
  if (stopped_) {
    done();
    return;
  }
  going_to_sleep_ = true;
  // Set without poking the status loop: the write below is the one.
  quiet_ = true;
  conditions_.report(condition_type::kConnected, ConditionStatus::kFalse, "Suspending",
                     "the node is going to sleep; it redials " + server_ + " when it wakes");
  quiet_ = false;
  ++running_;
  asio::co_spawn(io_, last_status_before_sleep(std::move(done)), [this](std::exception_ptr e) {
    --running_;
    rethrow(e);
  });
}

awaitable<void> Tether::last_status_before_sleep(std::function<void()> done) {
  // Only over a session that works: a node asleep in a backoff has nothing
  // to say that the cloud could hear.
  const std::size_t writes = stats_.status_writes;
  if (connected()) co_await write_status();
  const bool written = stats_.status_writes > writes;
  // A write slower than logind's patience: the machine slept and woke
  // meanwhile, and resumed() has redialled. Do not undo that.
  if (!going_to_sleep_ || stopped_) {
    done();
    co_return;
  }
  // Then quiet: the watch and every kept-alive connection closed, and no
  // redial until the resume.
  reflector_.suspending();
  http_->disconnect_all();
  log_.notice("tether-suspended",
              std::string(written ? "wrote Connected=False (Suspending) and closed"
                                  : "could not tell the control plane; closed") +
                  " the connection to " + server_ + " for the sleep",
              {{"CONTROL_PLANE", server_}});
  changed();
  done();
}

NodeStatus Tether::status() const {
  NodeStatus s = status_;
  s.conditions = conditions_.all();
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
  publisher_.set_interval(config.health.interval);
  health_interval_ = config.health.interval;
  poke_status();
}

void Tether::poke_status() {
  status_poked_ = true;
  status_timer_.cancel();
}

// --- the EdgeNode -----------------------------------------------------------

namespace {

bool named(const json::object& object, std::string_view name) {
  const auto* metadata = object.if_contains("metadata");
  const auto* n =
      metadata && metadata->is_object() ? metadata->as_object().if_contains("name") : nullptr;
  return n && n->is_string() && n->as_string() == name;
}

}  // namespace

void Tether::on_list(const std::vector<json::object>& items, const std::string&) {
  // The field selector asks for our EdgeNode alone; anything else is not
  // ours to act on.
  for (const auto& item : items) {
    if (named(item, node_)) {
      take(item);
      return;
    }
  }
  edge_node_missing("there is no EdgeNode " + namespace_ + "/" + node_);
}

void Tether::on_event(const kube::WatchEvent& event) {
  // Likewise for the watch: another node's EdgeNode (a server or proxy that
  // ignores the field selector) is neither applied nor counted as ours
  // deleted.
  using T = kube::WatchEventType;
  const bool about_an_object =
      event.type == T::kAdded || event.type == T::kModified || event.type == T::kDeleted;
  if (about_an_object && !named(event.object, node_)) return;
  switch (event.type) {
    case kube::WatchEventType::kAdded:
    case kube::WatchEventType::kModified:
      take(event.object);
      break;
    case kube::WatchEventType::kDeleted:
      edge_node_missing("the EdgeNode " + namespace_ + "/" + node_ + " was deleted");
      break;
    default:
      break;  // bookmarks only move the resourceVersion
  }
}

void Tether::take(const json::object& object) {
  // Every status write comes back as a MODIFIED event with the same spec:
  // only a new spec is news (and one whose apply failed, tried again).
  const json::value* spec_json = object.if_contains("spec");
  json::value spec_now = spec_json ? *spec_json : json::value(nullptr);
  if (last_spec_ && *last_spec_ == spec_now && !apply_failed_) {
    missing_ = false;
    return;
  }
  last_spec_ = std::move(spec_now);
  ++judged_;
  apply_failed_ = false;
  rejected_.reset();
  auto spec = decode_edge_node(object);
  if (!spec) {
    ++stats_.specs_rejected;
    if (auto g = generation_of(object)) status_.observed_generation = *g;
    log_.warning("edgenode-rejected",
                 "EdgeNode " + namespace_ + "/" + node_ +
                     " rejected, the rules in force are kept: " + spec.error().message,
                 {{"CONTROL_PLANE", server_}});
    set_firewall(ConditionStatus::kFalse, "InvalidSpec", spec.error().message);
    return;
  }
  missing_ = false;
  status_.observed_generation = spec->generation;
  if (spec->rotate != rotate_) {
    // The certificates' trigger, whatever becomes of the firewall part.
    rotate_ = spec->rotate;
    changed();
  }
  const std::string generation = "generation " + std::to_string(spec->generation);
  const std::string applied = std::to_string(spec->firewall.sources.size()) +
                              " sources from the control plane (" + generation + ")";
  // The saved state applied at boot, or an update that only touched
  // another part of the spec: nothing for the kernel to do (or it is being
  // done, and its end says how it went).
  if (spec->firewall == firewall_.wanted()) {
    if (!firewall_.busy() || spec->firewall == firewall_.in_force()) {
      set_firewall(ConditionStatus::kTrue, "Applied", applied);
    } else {
      // The apply in flight is this spec's too: its answer speaks for it.
      speaks_for_ = judged_;
      applied_text_ = applied;
    }
    return;
  }
  if (auto fits = firewall_.check(spec->firewall); !fits) {
    ++stats_.specs_rejected;
    rejected_ = object;
    log_.warning("edgenode-rejected",
                 "EdgeNode " + namespace_ + "/" + node_ + " (" + generation +
                     ") rejected, the rules in force are kept: " + fits.error().message,
                 {{"CONTROL_PLANE", server_}});
    set_firewall(ConditionStatus::kFalse, "InvalidSpec", fits.error().message);
    return;
  }
  // Applied off the event loop (ufw takes a program run per rule): the
  // condition says so meanwhile (the status writer waits a moment for the
  // apply's end, see write_status_loop).
  set_firewall(ConditionStatus::kUnknown, "Applying", "applying " + applied);
  const std::uint64_t launched = ++applies_launched_;
  authority_ = launched;
  speaks_for_ = judged_;
  applied_text_ = applied;
  firewall_.update(spec->firewall,
                   [this, launched, alive = std::weak_ptr<int>(alive_)](Result<void> r) {
                     if (alive.expired() || stopped_) return;
                     // Only the latest apply answers, and only for the spec
                     // judged last: a newer one (rejected, say) speaks for
                     // the condition now, and this answer only counts.
                     if (launched != authority_ || speaks_for_ != judged_) {
                       ++(r ? stats_.specs_applied : stats_.specs_rejected);
                       return;
                     }
                     const std::string applied = applied_text_;
                     if (!r) {
                       ++stats_.specs_rejected;
                       apply_failed_ = true;
                       set_firewall(ConditionStatus::kFalse, "ApplyFailed", r.error().message);
                       return;
                     }
                     ++stats_.specs_applied;
                     set_firewall(ConditionStatus::kTrue, "Applied", applied);
                     changed();
                   });
}

void Tether::firewall_policy_changed() {
  if (!rejected_ || stopped_) return;
  const json::object object = std::move(*rejected_);
  rejected_.reset();
  last_spec_.reset();  // the same spec, judged anew
  take(object);
}

void Tether::edge_node_missing(std::string_view why) {
  // A spec of an EdgeNode that is gone is not judged again on a reload.
  rejected_.reset();
  if (!missing_) {
    log_.notice("edgenode-missing",
                std::string(why) + "; creating it with the sources in force, which stay applied",
                {{"CONTROL_PLANE", server_}, {"NODE", node_}});
  }
  missing_ = true;
  poke_status();
}

// --- the session ------------------------------------------------------------

void Tether::on_error(const kube::ApiError& error, Duration retry_in) {
  // One line per outage, and one more only when the kind of trouble
  // changes (unreachable, then a TLS failure): not one per retry.
  const std::string_view reason = unreachable_reason(error);
  const bool news = !last_error_ || unreachable_reason(*last_error_) != reason;
  last_error_ = error;
  if (news) {
    log_.warning("controlplane-unreachable",
                 kube::describe(error) + "; retrying in " +
                     std::to_string(
                         std::chrono::duration_cast<std::chrono::milliseconds>(retry_in).count()) +
                     " ms, the rules in force are kept",
                 {{"CONTROL_PLANE", server_}});
  }
  set_condition(condition_type::kConnected, ConditionStatus::kFalse, reason, kube::describe(error));
  changed();
}

void Tether::on_state(SessionState state) {
  if (reflector_.session().connected()) {
    const Condition* connected = conditions_.find(condition_type::kConnected);
    if (last_error_ || !connected || connected->status != ConditionStatus::kTrue) {
      ++stats_.connects;
      log_.notice("controlplane-connected",
                  "watching EdgeNode " + namespace_ + "/" + node_ + " at " + server_,
                  {{"CONTROL_PLANE", server_}, {"NODE", node_}});
    }
    last_error_.reset();
    set_condition(condition_type::kConnected, ConditionStatus::kTrue, "Watching",
                  "watching EdgeNode " + namespace_ + "/" + node_ + " at " + server_);
  } else if (state == SessionState::kConnecting && !last_error_) {
    set_condition(condition_type::kConnected, ConditionStatus::kUnknown, "Connecting",
                  "connecting to " + server_);
  }
  changed();
}

// --- status -----------------------------------------------------------------

void Tether::refresh_firewall_status() {
  status_.firewall_sources = firewall_.source_count();
  status_.firewall_backend = std::string(firewall_.backend_name());
}

awaitable<void> Tether::write_status_loop() {
  // How long a write waits for a firewall apply in flight, so that it
  // carries the apply's outcome: nftables takes milliseconds (one write, as
  // before), ufw minutes (written meanwhile as Applying).
  constexpr Duration kApplyWait = std::chrono::seconds(2);
  std::optional<Duration> apply_began;
  while (!stopped_) {
    status_poked_ = false;
    if (connected() && firewall_.busy()) {
      const Duration now = clock_.monotonic();
      if (!apply_began) apply_began = now;
      if (now - *apply_began < kApplyWait) {
        // The apply's end pokes this loop.
        status_timer_.expires_after(kApplyWait - (now - *apply_began));
        co_await status_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
    } else {
      apply_began.reset();
    }
    if (connected()) co_await write_status();
    if (stopped_) break;
    if (status_poked_) continue;  // something changed while writing
    status_timer_.expires_after(health_interval_);
    co_await status_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

awaitable<void> Tether::create_edge_node() {
  json::array sources;
  for (const auto& s : firewall_.in_force().sources)
    sources.emplace_back(s);
  json::object firewall{{"allowedSources", std::move(sources)}};
  if (!firewall_.in_force().ports.empty()) {
    json::array ports;
    for (auto p : firewall_.in_force().ports)
      ports.emplace_back(p);
    firewall["ports"] = std::move(ports);
  }
  json::object object{{"apiVersion", "tetherd.io/v1alpha1"},
                      {"kind", "EdgeNode"},
                      {"metadata",
                       {{"name", node_},
                        {"namespace", namespace_},
                        {"labels", {{"app.kubernetes.io/managed-by", "tetherd"}}}}},
                      {"spec", {{"firewall", std::move(firewall)}}}};
  auto collection = kube::collection_path(kube::kEdgeNodes, namespace_);
  auto created = co_await client_.create(std::move(collection), std::move(object));
  if (created || created.error().code == 409) {
    // Made, or made by someone else meanwhile: the watch brings it either way.
    missing_ = false;
    if (created) {
      ++stats_.edge_nodes_created;
      log_.notice("edgenode-created", "created EdgeNode " + namespace_ + "/" + node_,
                  {{"CONTROL_PLANE", server_}, {"NODE", node_}});
    }
    co_return;
  }
  ++stats_.status_failures;
  if (status_streak_++ == 0) {
    log_.warning("edgenode-create-failed",
                 "cannot create EdgeNode " + namespace_ + "/" + node_ + ": " +
                     kube::describe(created.error()) +
                     " (an admin can create it, see the README's enrolment section)",
                 {{"CONTROL_PLANE", server_}});
  }
}

awaitable<void> Tether::write_status() {
  if (missing_) {
    co_await create_edge_node();
    if (missing_ || stopped_) co_return;
  }
  refresh_firewall_status();
  const json::object patch = status_patch(status());
  const WallTime now = clock_.wall();
  if (!publisher_.due(patch, now)) co_return;
  auto path = kube::object_path(kube::kEdgeNodes, namespace_, node_, "status");
  json::object body = patch;
  auto written = co_await client_.merge_patch(std::move(path), std::move(body));
  if (written) {
    publisher_.written(patch, now);
    ++stats_.status_writes;
    if (status_streak_ > 0) {
      log_.notice(
          "status-written",
          "EdgeNode status written again after " + std::to_string(status_streak_) + " failures",
          {{"CONTROL_PLANE", server_}});
    }
    status_streak_ = 0;
    co_return;
  }
  ++stats_.status_failures;
  if (written.error().not_found()) {
    edge_node_missing("EdgeNode " + namespace_ + "/" + node_ + " not found writing its status");
    co_return;
  }
  if (status_streak_++ == 0) {
    log_.warning("status-write-failed",
                 "cannot write the EdgeNode status: " + kube::describe(written.error()),
                 {{"CONTROL_PLANE", server_}});
  }
}

}  // namespace tetherd
