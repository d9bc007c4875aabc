#include "agent/app/daemon.h"

#include <algorithm>
#include <charconv>
#include <csignal>
#include <filesystem>
#include <stdexcept>

#include <boost/asio/post.hpp>

#include "agent/adapters/node_addresses.h"
#include "agent/adapters/x509.h"
#include "agent/app/certs_report.h"
#include "agent/config/kubeconfig.h"
#include "agent/config/small_file.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "agent/core/node_csr.h"
#include "agent/tunnel/tunnel_agent.h"
#include "firewall/desired_state.h"

namespace tetherd {

std::string status_line(const Config& c, const std::string& firewall_summary,
                        const std::string& tether) {
  std::string s = c.standalone()   ? "standalone"
                  : tether.empty() ? "control plane configured"
                                   : "control plane " + tether;
  s += "; node " + c.node_name;
  s += "; firewall " + firewall_summary;
  return s;
}

Daemon::Daemon(boost::asio::io_context& io, const Clock& clock, Log& log, ServiceNotifier& notifier,
               FirewallKeeper& firewall, std::string config_path, ConfigSource load_config,
               Config initial, DaemonParts parts, DaemonFactories factories)
    : clock_(clock),
      log_(log),
      notifier_(notifier),
      firewall_(firewall),
      config_path_(std::move(config_path)),
      load_config_(std::move(load_config)),
      config_(std::move(initial)),
      signals_(io, SIGTERM, SIGINT, SIGHUP),
      io_(io),
      monitor_(parts.monitor),
      addresses_(parts.addresses),
      tether_(parts.tether),
      resume_(parts.resume),
      issuer_(parts.issuer),
      local_(parts.local),
      state_(parts.state ? std::optional<StateDir>(*parts.state) : std::nullopt),
      health_(parts.health),
      own_conditions_(parts.conditions
                          ? nullptr
                          : std::make_unique<NodeConditions>(clock, config_.health.threshold)),
      conditions_(parts.conditions ? parts.conditions : own_conditions_.get()),
      factories_(std::move(factories)),
      files_(parts.files),
      tunnel_gate_(io.get_executor(), clock, log),
      tick_(io, clock),
      issuer_timer_(io, clock),
      reconcile_timer_(io, clock) {
  // One board: whoever reads or writes conditions must share the daemon's.
  if (parts.conditions == nullptr && (health_ || tether_ || factories_.tether))
    throw std::invalid_argument(
        "Daemon: parts.conditions is required with health or a control-plane session");
  tunnel_gate_.on_change([this](const std::string& why) { sync_tunnelled_ports(why); });
}

Daemon::~Daemon() {
  // The health side outlives what the daemon made: it lets go first.
  if (health_) {
    health_->set_tether(nullptr);
    health_->set_tunnel_view({});
  }
}

Result<void> Daemon::start() {
  firewall_.watch_evidence(clock_);
  if (auto r = firewall_.start(config_.firewall); !r) {
    log_.error("firewall-failed", "cannot apply the firewall: " + r.error().message);
    return r;
  }
  follow_backend();
  if (addresses_) {
    // Read again now: an address may have come between the start's read
    // and the subscription.
    if (auto r = addresses_->start([this] { addresses_changed(); }); !r) {
      log_.warning("address-monitor-failed",
                   "cannot watch the node's addresses: " + r.error().message +
                       "; new ones are allowed from the next restart only");
    } else {
      addresses_changed();
    }
  }
  firewall_.check_surroundings();
  // The health round reads the rules back each interval; without it, a
  // timer of its own does.
  if (!health_) arm_reconcile();
  wait_for_signal();
  // After the firewall, never before: the node is protected by its last
  // good rules whether or not the control plane answers (offline first).
  sync_renewal(/*report_now=*/false);
  if (!tether_ && factories_.tether && config_.control_plane && credentials_expired()) {
    log_.error("controlplane-credentials-expired",
               "not connecting to the control plane: " + renewal_->report().message,
               {{"KUBECONFIG", config_.control_plane->kubeconfig}});
  } else if (!tether_ && factories_.tether && config_.control_plane) {
    Kubeconfig used;
    auto made = make_session(config_, used);
    if (!made) {
      log_.error("controlplane-config-invalid",
                 "cannot use the control plane's kubeconfig: " + made.error().message +
                     "; running without the control plane (fix it, then reload tetherd)",
                 {{"KUBECONFIG", config_.control_plane->kubeconfig}});
    } else {
      own_tether_ = std::move(*made);
      tether_ = own_tether_.get();
      session_kubeconfig_ = std::move(used);
    }
  }
  if (tether_) attach_tether(nullptr);
  if (health_) {
    health_->set_tunnel_view([this]() -> std::optional<NodeHealth::TunnelView> {
      if (!tunnel_ || !config_.tunnel) return std::nullopt;
      return NodeHealth::TunnelView{config_.tunnel->server, tunnel_->report()};
    });
  }
  sync_tunnel();
  if (resume_) {
    resume_->on_sleep([this](std::function<void()> done) {
      // The cloud hears that the node sleeps, rather than finding it gone.
      if (tether_ && !stopping_) {
        tether_->suspending(std::move(done));
      } else {
        done();
      }
    });
    resume_->on_resumed([this](const ResumeEvent&) { resumed(); });
    resume_->start();
  }
  if (issuer_) start_issuer();
  if (!local_ && factories_.local && (config_.cluster || config_.linkerd)) {
    own_local_ = factories_.local(config_);
    local_ = own_local_.get();
  }
  if (local_) attach_local(nullptr);
  config_text_ = config_text();
  follow_credentials();
  if (health_) {
    health_->on_transition([this] {
      if (!stopping_) notifier_.notify("STATUS=" + status());
    });
    health_->start();
  }
  if (auto timeout = notifier_.watchdog_timeout()) {
    // A third of the timeout, as systemd recommends; pinged from this loop so
    // a wedged loop is what the watchdog catches.
    watchdog_period_ = *timeout / 3;
  }
  wall_step_.check(clock_.wall(), clock_.boottime());  // the baseline
  arm_tick();
  const std::string status = this->status();
  log_.info("started", "tetherd " TETHERD_VERSION " started: " + status,
            {{"CONFIG", config_path_}, {"NODE", config_.node_name}});
  notifier_.notify("READY=1\nSTATUS=" + status);
  return {};
}

std::string Daemon::status() const {
  std::string line =
      status_line(config_, firewall_.summary(), tether_ ? tether_->summary() : std::string());
  if (health_ && !health_->summary().empty()) line += "; " + health_->summary();
  return line;
}

void Daemon::wait_for_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;  // cancelled by stop()
    if (signo == SIGHUP) {
      reload();
      wait_for_signal();
    } else {
      stop(signo == SIGTERM ? "SIGTERM" : "SIGINT");
    }
  });
}

void Daemon::arm_tick() {
  // The resume check's period bounds how late a resume is noticed when
  // logind cannot say so (and the tick, on CLOCK_MONOTONIC, fires this
  // long after the machine wakes at the latest).
  constexpr Duration kResumeCheck = std::chrono::seconds(10);
  if (watchdog_period_ > Duration::zero()) notifier_.notify("WATCHDOG=1");
  const Duration period =
      watchdog_period_ > Duration::zero() ? std::min(watchdog_period_, kResumeCheck) : kResumeCheck;
  tick_.expires_after(period);
  tick_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    check_resume();
    check_wall_step();
    if (renewal_) renewal_->check_clock();
    reap();
    if (local_ && !local_->complete() && !stopping_) {
      const std::string before = local_->k3s_problem();
      if (local_->attach() || local_->k3s_problem() != before) take_local();
    }
    arm_tick();
  });
}

void Daemon::addresses_changed() {
  if (stopping_) return;
  // A read that failed (getifaddrs out of memory or descriptors) says
  // nothing: the addresses in force stay.
  bool ok = false;
  auto addresses = node_addresses(&ok);
  if (!ok) return;
  firewall_.set_node_addresses(std::move(addresses), [this] {
    if (!stopping_) notifier_.notify("STATUS=" + status());
  });
}

namespace {
// The cloud's issuer Secret last named by the EdgeNode: with one, the node
// never mints, also after a restart before the EdgeNode is read again.
constexpr std::string_view kCloudIssuerFile = "linkerd-cloud-issuer";
// "<sha256> <unix seconds>": when a trust bundle was first seen in force.
constexpr std::string_view kBundleSinceFile = "linkerd-bundle-since";
}  // namespace

WallTime Daemon::bundle_since(const std::string& sha256) {
  // When this bundle was first seen in force (core/mesh.h), so that a
  // restart does not take pods made since for pods made before.
  constexpr std::string_view kFile = kBundleSinceFile;
  const WallTime now = clock_.wall();
  std::optional<std::string> saved;
  if (state_) {
    boost::system::error_code ec;
    saved = state_->read(kFile, ec, 4096);
  }
  if (auto since = saved_bundle_since(saved, sha256, now)) return *since;
  if (state_) {
    if (auto ec = state_->replace(kFile, bundle_since_text(sha256, now)))
      log_.warning("state-write-failed", "cannot save the trust bundle's first sighting in " +
                                             state_->path() + ": " + ec.message());
  }
  return now;
}

void Daemon::cloud_linkerd_known(CloudLinkerd cloud) {
  if (state_ && cloud.refs.issuer_secret != saved_cloud_issuer_) {
    saved_cloud_issuer_ = cloud.refs.issuer_secret;
    if (auto ec = state_->replace(kCloudIssuerFile, cloud.refs.issuer_secret)) {
      log_.warning("state-write-failed", "cannot save spec.linkerd.issuerSecretRef in " +
                                             state_->path() + ": " + ec.message());
    }
  }
  cloud_linkerd_ = std::move(cloud);
  if (!issuer_) return;
  // A spec.linkerd.rotate waiting for the cloud's objects is answered by
  // the pass their arrival makes, not at the next hourly check; not asked
  // again at every change of the session that brings nothing new for it
  // (a follower failing again: the review of the node's year with the
  // issuer in it).
  if (issuer_->use_cloud(cloud_linkerd_) && !rotate_token_pending_.empty())
    issuer_->request(RotationTrigger::kToken, /*force=*/true, rotate_token_pending_);
}

void Daemon::start_issuer() {
  // Before the session has read the EdgeNode, the issuer Secret it named
  // last time: not read yet, so nothing is minted and nothing is said.
  if (state_) {
    boost::system::error_code ec;
    const auto saved = state_->read(kCloudIssuerFile, ec, 4096);
    saved_cloud_issuer_ = saved.value_or("");
    // Only with a control plane to bring it, and only until the session
    // has read the EdgeNode itself.
    const bool unread = config_.control_plane && (!tether_ || !tether_->spec_known());
    if (saved && !saved->empty() && unread && !cloud_linkerd_.issuer_from_cloud()) {
      cloud_linkerd_.refs.issuer_secret = *saved;
      issuer_->use_cloud(cloud_linkerd_, /*pass=*/false);  // the pass below judges with it
    }
  }
  issuer_->on_result([this](const RotationResult& r) { issuer_checked(r); });
  // With a control plane, its first Date comes within moments of the
  // session's first request: the first pass's mint waits for it.
  issuer_->use_clock_witness(
      [this] { return clock_witness_.error(clock_.wall(), clock_.boottime()); },
      config_.control_plane ? kClockWitnessWait : Duration::zero());
  // The key the first pass signs with; another one later runs a pass.
  // From the issuer's own settings: on a reload it starts before config_
  // is the new file, and the old file's key was then "another" one.
  if (const std::string& path = issuer_->config().trust_anchor_key; !path.empty()) {
    auto key = x509::load_private_key_file(path, "");
    anchor_key_seen_ = key ? x509::public_key_sha256(*key) : "";
  }
  if (rotate_token_pending_.empty()) {
    issuer_->request(RotationTrigger::kStart);
  } else {
    issuer_->request(RotationTrigger::kToken, /*force=*/true, rotate_token_pending_);
  }
  arm_issuer_check();
}

void Daemon::take_local() {
  if (health_) {
    if (local_->k3s()) {
      health_->set_k3s(local_->k3s());
    } else if (!local_->k3s_problem().empty()) {
      conditions_->report(condition_type::kK3sReady, ConditionStatus::kFalse, "KubeconfigUnusable",
                          local_->k3s_problem());
    }
  }
  if (!issuer_ && local_->issuer()) {
    issuer_ = local_->issuer();
    issuer_from_local_ = true;
    // What the cloud supplies, for the first pass to judge: no pass of its
    // own (a kCloud pass, then the token's forced one, minted twice; and
    // over a transport that answers without suspending, as the node's
    // year's in-process k3s, it would run before start_issuer set the
    // clock's witness and the result's listener).
    issuer_->use_cloud(cloud_linkerd_, /*pass=*/false);
    // A spec.linkerd.rotate the session read while there was no issuer to
    // ask (k3s's kubeconfig not usable yet), or one pending from before a
    // reload remade the issuer, is the first pass's (one pass, one write
    // for an expired issuer).
    if (tether_) take_rotate_token();
    start_issuer();
  }
}

bool Daemon::check_resume() {
  if (!resume_ || stopping_) return false;
  const auto before = resume_->stats().resumes;
  resume_->check_clock();
  return resume_->stats().resumes > before;
}

std::optional<Duration> Daemon::check_wall_step() {
  const auto step = wall_step_.check(clock_.wall(), clock_.boottime());
  if (!step || stopping_) return step;
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(*step).count();
  log_.notice("wall-clock-stepped",
              "the wall clock stepped " + std::string(seconds < 0 ? "back" : "forward") + " by " +
                  format_duration(seconds < 0 ? -*step : *step) +
                  ": the issuer and the node's credential are judged again",
              {{"STEP_SECONDS", std::to_string(seconds)}});
  if (renewal_) renewal_->clock_stepped();
  judge_clock(/*pass=*/false);  // the pass below judges with it
  if (issuer_) issuer_->request(RotationTrigger::kClockStep);
  return step;
}

void Daemon::heard_control_plane_date(std::string_view date) {
  const auto server = parse_http_date(date);
  if (!server || stopping_) return;
  const bool stale = !clock_witness_.error(clock_.wall(), clock_.boottime());
  clock_witness_.heard(*server, clock_.boottime());
  judge_clock(/*pass=*/true, /*back=*/stale);
}

void Daemon::judge_clock(bool pass, bool back) {
  const auto error = clock_witness_.error(clock_.wall(), clock_.boottime());
  if (!error) return;
  const bool agrees = clock_agrees(*error, clock_agrees_);
  if (clock_agrees_ == agrees) {
    // The word back after a day without it (a long sleep, the control
    // plane out of reach), the clock agreeing as before: a pass without
    // it left an issuer from the future alone, which it may now show to
    // be from a clock that was ahead.
    if (back && agrees && pass && issuer_ && issuer_->left_from_the_future())
      issuer_->request(RotationTrigger::kClockWitness);
    return;
  }
  const bool first = !clock_agrees_;
  clock_agrees_ = agrees;
  // Whole seconds, toward zero: a Date has no fraction.
  const std::string seconds =
      std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*error).count());
  if (!agrees) {
    log_.warning("clock-disagrees",
                 clock_disagreement(*error) +
                     (issuer_ ? ": no linkerd issuer is minted until they agree" : ""),
                 {{"ERROR_SECONDS", seconds}});
  } else if (!first) {
    log_.notice("clock-agrees", "this node's wall clock agrees with the control plane's again",
                {{"ERROR_SECONDS", seconds}});
  }
  // A not-yet-valid issuer may now be known to be from a clock that was
  // ahead, or a pass about to mint must hold off.
  if (issuer_ && pass) issuer_->request(RotationTrigger::kClockWitness);
}

void Daemon::resumed() {
  if (stopping_) return;
  // Every connection is suspect, every certificate older than it thinks,
  // and the firewall may have been changed by whoever ran while we slept.
  if (tether_) tether_->resumed();
  if (tunnel_) {
    tunnel_gate_.let_go();  // the sleep ended its connections: no server's loss
    tunnel_->resumed();
  }
  if (renewal_) renewal_->wake(/*resumed=*/true);
  if (health_) health_->resumed(clock_.wall());
  firewall_changed();
  if (issuer_) issuer_->request(RotationTrigger::kResume);
}

void Daemon::arm_issuer_check() {
  issuer_timer_.expires_after(kIssuerCheckPeriod);
  issuer_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) return;
    // A spec.linkerd.rotate not yet answered (its pass failed) is asked again.
    if (rotate_token_pending_.empty()) {
      issuer_->request(RotationTrigger::kPeriodic);
    } else {
      issuer_->request(RotationTrigger::kToken, /*force=*/true, rotate_token_pending_);
    }
    arm_issuer_check();
  });
}

namespace {
constexpr std::string_view kRotateTokenFile = "linkerd-rotate-token";
}

void Daemon::rotate_token_seen() {
  // Without an issuer (k3s's kubeconfig not usable yet), take_local looks.
  if (issuer_ && take_rotate_token())
    issuer_->request(RotationTrigger::kToken, /*force=*/true, rotate_token_);
}

bool Daemon::take_rotate_token() {
  if (tether_->rotate_token() == rotate_token_) return false;
  rotate_token_ = tether_->rotate_token();
  if (rotate_token_.empty()) return false;
  // A token already acted on (before a restart, say) asks for nothing new.
  if (state_) {
    boost::system::error_code ec;
    if (state_->read(kRotateTokenFile, ec, 4096) == rotate_token_) return false;
  }
  rotate_token_pending_ = rotate_token_;
  log_.notice("issuer-rotation-requested",
              "EdgeNode spec.linkerd.rotate changed: rotating linkerd's issuer now",
              {{"TOKEN", rotate_token_}});
  return true;
}

void Daemon::issuer_checked(const RotationResult& result) {
  if (stopping_) return;
  // The token a pass answered, not the latest one seen: another may have
  // come meanwhile, and has a pass of its own queued.
  // A token is answered by a new issuer, or, with the issuer from the
  // cloud, by a pass that took what the cloud has (nothing minted here):
  // one that had the cloud's answer, not one made before the Secret was
  // read (which says nothing, and takes nothing). A write whose answer was
  // lost, found by a later pass, answers the token it was written for.
  const bool answered = result.rotated ||
                        (result.found_written && result.found_token == result.token) ||
                        (result.from_cloud && result.cloud_read &&
                         issuer_->cloud().issuer_from_cloud() && result.error.empty());
  if (!result.token.empty() && answered) {
    if (state_) {
      if (auto ec = state_->replace(kRotateTokenFile, result.token)) {
        log_.warning("state-write-failed",
                     "cannot save spec.linkerd.rotate in " + state_->path() + ": " + ec.message());
      }
    }
    if (rotate_token_pending_ == result.token) rotate_token_pending_.clear();
  }
  const IssuerVerdict& v = result.before.verdict;
  // The bundle in force, for the proxies started with another; rolled when
  // it came from the cloud (which drives the anchor rotation).
  if (health_ && !result.bundle_sha256.empty())
    health_->set_trust_bundle(result.bundle_sha256, bundle_since(result.bundle_sha256),
                              issuer_->cloud().bundle_from_cloud());
  linkerd_certificates_ = certificate_statuses(result);
  push_certificates(result.rotated);
  // What a mint put in force is judged for itself: under the key file's
  // new root, the old one's end (TrustAnchorExpired) is no longer the news.
  // (The cloud's issuer, taken, is judged by the anchor judged before.)
  const bool rotated_well = result.after
                                ? result.after->valid && result.after->anchor == AnchorState::kValid
                                : v.anchor == AnchorState::kValid;
  if (result.rotated && rotated_well) {
    report(condition_type::kCertificatesValid, ConditionStatus::kTrue, "IssuerRotated",
           "rotated linkerd's issuer (" + std::string(to_string(result.trigger)) +
               "); the new one is valid until " + format_kube_time(result.issued->not_after));
    return;
  }
  if (result.after) {  // minted, and not valid in every respect (an anchor expiring)
    std::string message = "rotated the issuer (" + std::string(to_string(result.trigger)) +
                          "): " + result.after->message;
    if (!result.error.empty()) message += "; " + result.error;
    report(condition_type::kCertificatesValid, ConditionStatus::kFalse, result.after->reason,
           message);
    return;
  }
  std::string message = v.message;
  if (result.rotated)
    message += "; rotated the issuer, valid until " + format_kube_time(result.issued->not_after);
  if (!result.error.empty()) message += "; cannot rotate: " + result.error;
  report(condition_type::kCertificatesValid,
         v.valid ? ConditionStatus::kTrue : ConditionStatus::kFalse, v.reason, message);
}

void Daemon::report(std::string_view type, ConditionStatus status, std::string_view reason,
                    std::string_view message) {
  conditions_->report(type, status, reason, message);
}

void Daemon::arm_reconcile() {
  reconcile_timer_.expires_after(config_.health.interval);
  reconcile_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    firewall_.reconcile();
    firewall_.check_surroundings();
    arm_reconcile();
  });
}

void Daemon::firewall_changed() {
  if (reconcile_pending_ || stopping_) return;
  reconcile_pending_ = true;
  boost::asio::post(io_, [this] {
    reconcile_pending_ = false;
    if (!stopping_) firewall_.reconcile();
  });
}

// --- the parts a reload remakes ---------------------------------------------

void Daemon::attach_tether(std::unique_ptr<Tether> tether) {
  if (tether) {
    own_tether_ = std::move(tether);
    tether_ = own_tether_.get();
  }
  tether_->on_change([this] {
    if (stopping_) return;
    notifier_.notify("STATUS=" + status());
    rotate_token_seen();
    // The issuer and bundle the cloud supplies (a pass runs when they
    // change), once the session has read its EdgeNode.
    if (tether_->spec_known()) cloud_linkerd_known(tether_->cloud_linkerd());
  });
  tether_->on_server_date([this](std::string_view date) { heard_control_plane_date(date); });
  if (health_) health_->set_tether(tether_);
  tether_->start();
}

void Daemon::retire_tether() {
  if (!tether_) return;
  tether_->on_change({});
  tether_->on_server_date({});
  if (health_) health_->set_tether(nullptr);
  tether_->stop();
  if (own_tether_.get() == tether_) retired_tethers_.push_back(std::move(own_tether_));
  tether_ = nullptr;
  // The session's own condition goes with it (a new one says Connecting).
  conditions_->forget(condition_type::kConnected);
  rotate_token_.clear();
  // The cloud's linkerd objects as last known stay in force until the next
  // session has read its EdgeNode (a redial, new credentials): the node
  // must not mint meanwhile.
}

void Daemon::attach_local(std::unique_ptr<LocalCluster> local) {
  if (local) {
    own_local_ = std::move(local);
    local_ = own_local_.get();
  }
  local_->attach();
  take_local();
}

void Daemon::retire_local() {
  if (!local_) return;
  if (issuer_from_local_) {
    issuer_->on_result({});
    issuer_ = nullptr;
    issuer_from_local_ = false;
    issuer_timer_.cancel();
    // A spec.linkerd.rotate not yet answered is asked of the next issuer.
  }
  if (health_) health_->set_k3s(nullptr);
  local_->stop();
  if (own_local_.get() == local_) retired_locals_.push_back(std::move(own_local_));
  local_ = nullptr;
}

void Daemon::follow_backend() {
  if (factories_.monitor) {
    // The monitor watches one backend's rules: a new backend, a new one.
    if (monitor_) {
      monitor_->stop();
      // Its cancelled read still has to run: gone after that.
      boost::asio::post(io_, [gone = std::move(own_monitor_)] {});
      monitor_ = nullptr;
    }
    own_monitor_ = factories_.monitor(firewall_.config());
    monitor_ = own_monitor_.get();
  }
  if (!monitor_) return;
  if (auto r = monitor_->start([this] { firewall_changed(); }); !r) {
    log_.warning("firewall-monitor-failed",
                 "cannot watch for changes to the firewall: " + r.error().message +
                     "; drift is repaired by the periodic check only");
  }
}

bool Daemon::finished() const {
  const auto ended = [](const auto& p) { return p == nullptr || p->finished(); };
  const auto all_ended = [&](const auto& parts) {
    return std::all_of(parts.begin(), parts.end(), ended);
  };
  return ended(own_tether_) && ended(own_local_) && ended(renewal_) && ended(tunnel_) &&
         all_ended(retired_tethers_) && all_ended(retired_locals_) &&
         all_ended(retired_renewals_) && all_ended(retired_tunnels_);
}

void Daemon::reap() {
  std::erase_if(retired_tethers_, [](const auto& t) { return t->finished(); });
  std::erase_if(retired_locals_, [](const auto& l) { return l->finished(); });
  std::erase_if(retired_renewals_, [](const auto& r) { return r->finished(); });
  std::erase_if(retired_tunnels_, [](const auto& t) { return t->finished(); });
}

// --- credential files -------------------------------------------------------

Result<std::unique_ptr<Tether>> Daemon::make_session(const Config& config, Kubeconfig& used) {
  auto kubeconfig = load_kubeconfig(config.control_plane->kubeconfig);
  if (!kubeconfig) return kubeconfig.error();
  auto made = factories_.tether(config, *kubeconfig);
  if (made) used = std::move(*kubeconfig);
  return made;
}

void Daemon::follow_credentials() {
  if (!files_ || stopping_) return;
  std::vector<std::string> paths;
  if (config_.control_plane) {
    paths.push_back(config_.control_plane->kubeconfig);
    if (!config_.control_plane->bootstrap_kubeconfig.empty())
      paths.push_back(config_.control_plane->bootstrap_kubeconfig);
    if (session_kubeconfig_)
      paths.insert(paths.end(), session_kubeconfig_->files.begin(),
                   session_kubeconfig_->files.end());
  }
  if (config_.cluster || config_.linkerd) {
    paths.push_back(config_.cluster ? config_.cluster->kubeconfig : ClusterConfig().kubeconfig);
    if (local_ && local_->kubeconfig())
      paths.insert(paths.end(), local_->kubeconfig()->files.begin(),
                   local_->kubeconfig()->files.end());
  }
  if (config_.linkerd && !config_.linkerd->trust_anchor_key.empty())
    paths.push_back(config_.linkerd->trust_anchor_key);
  if (config_.tunnel && !config_.tunnel->kubeconfig.empty())
    paths.push_back(config_.tunnel->kubeconfig);
  paths.insert(paths.end(), tunnel_files_.begin(), tunnel_files_.end());
  // The configuration itself: `tetherctl enroll` switches controlPlane on
  // in it, and an admin's edit is taken as a reload is.
  std::error_code ec;
  const std::string config =
      std::filesystem::absolute(config_path_, ec).lexically_normal().string();
  paths.push_back(config);
  if (auto r = files_->follow(std::move(paths), [this] { files_changed(); }, {config}); !r) {
    log_.warning("credentials-unwatched",
                 "cannot follow the credential files: " + r.error().message +
                     "; a changed one is taken at the next reload");
  }
}

std::string Daemon::config_text() const {
  auto text = read_small_file(config_path_, 1 << 20, config_path_);
  return text ? std::move(*text) : std::string();
}

void Daemon::files_changed() {
  if (stopping_) return;
  if (const std::string now = config_text(); now != config_text_) {
    // Emptied (`: > file` before a write, a failed copy): not a
    // configuration anyone means, though a valid one (all defaults).
    if (now.find_first_not_of(" \t\r\n") == std::string::npos) {
      log_.warning("config-ignored",
                   "the configuration file " + config_path_ +
                       " is empty or gone: not reloaded; the running configuration stays",
                   {{"CONFIG", config_path_}});
      config_text_ = now;
      return credentials_changed();
    }
    log_.info("config-changed", "the configuration file " + config_path_ + " changed: reloading",
              {{"CONFIG", config_path_}});
    reload();  // which reads the credentials afresh too
    return;
  }
  credentials_changed();
}

void Daemon::credentials_changed() {
  if (stopping_) return;
  if (renewal_) renewal_->wake();
  bootstrap_credentials();
  session_credentials();
  cluster_credentials();
  anchor_key();
  sync_tunnel();
  sync_tunnelled_ports("");
  // The files a kubeconfig names may have changed with it.
  follow_credentials();
}

void Daemon::session_credentials() {
  if (!config_.control_plane || !factories_.tether) return;
  // An expired certificate is never used: the renewal says when there is
  // a new one (renewal_reported).
  if (credentials_expired()) return;
  const std::string& path = config_.control_plane->kubeconfig;
  auto now = load_kubeconfig(path);
  if (!now) return credential_problem("controlPlane.kubeconfig", now.error().message);
  if (tether_ && session_kubeconfig_ == *now)
    return credential_problem("controlPlane.kubeconfig", "");
  // The same server, new credentials (a renewed certificate): the session
  // takes them for its new connections and holds its watch.
  if (tether_ && session_kubeconfig_ && session_kubeconfig_->server == now->server &&
      session_kubeconfig_->tls_server_name == now->tls_server_name) {
    if (auto taken = tether_->use_credentials(*now); taken) {
      session_kubeconfig_ = std::move(*now);
      log_.notice("controlplane-credentials-changed",
                  "the control plane's credentials changed (" + path +
                      "): new connections use them; the watch and the Lease go on",
                  {{"KUBECONFIG", path}, {"CONTROL_PLANE", tether_->server()}});
      return credential_problem("controlPlane.kubeconfig", "");
    } else {
      return credential_problem("controlPlane.kubeconfig", kube::describe(taken.error()));
    }
  }
  auto made = factories_.tether(config_, *now);
  if (!made) return credential_problem("controlPlane.kubeconfig", made.error().message);
  const bool had = tether_ != nullptr;
  retire_tether();
  attach_tether(std::move(*made));
  session_kubeconfig_ = std::move(*now);
  log_.notice(
      "controlplane-credentials-changed",
      had ? "the control plane's credentials changed (" + path + "): redialled with the new ones"
          : "the control plane's kubeconfig " + path + " is usable now: connecting to " +
                tether_->server(),
      {{"KUBECONFIG", path}, {"CONTROL_PLANE", tether_->server()}});
  credential_problem("controlPlane.kubeconfig", "");
}

void Daemon::cluster_credentials() {
  if (!local_ || !factories_.local) return;
  // Not usable yet (k3s not started): made now rather than at the next tick.
  if (!local_->complete()) {
    const std::string before = local_->k3s_problem();
    if (local_->attach() || local_->k3s_problem() != before) take_local();
    return;
  }
  if (!config_.cluster || !local_->kubeconfig()) return;
  const std::string& path = config_.cluster->kubeconfig;
  auto now = load_kubeconfig(path);
  if (!now) return credential_problem("cluster.kubeconfig", now.error().message);
  if (*now == *local_->kubeconfig()) return credential_problem("cluster.kubeconfig", "");
  if (auto check = kube::HttpsClient::create(io_.get_executor(), *now); !check)
    return credential_problem("cluster.kubeconfig", kube::describe(check.error()));
  retire_local();
  attach_local(factories_.local(config_));
  log_.notice("cluster-credentials-changed",
              "k3s's kubeconfig changed (" + path +
                  "): its client and linkerd's issuer "
                  "rotation use the new one",
              {{"KUBECONFIG", path}});
  credential_problem("cluster.kubeconfig", "");
}

void Daemon::anchor_key() {
  if (!config_.linkerd || config_.linkerd->trust_anchor_key.empty()) return;
  const std::string& path = config_.linkerd->trust_anchor_key;
  // Read at each rotation: what is checked here is whether the next one
  // can sign, and a rotation that waited for a good key runs now.
  auto key = x509::load_private_key_file(path, "the linkerd trust anchor key");
  if (!key) return credential_problem("linkerd.trustAnchorKey", key.error().message);
  const bool was_bad = credential_problems_.count("linkerd.trustAnchorKey") > 0;
  credential_problem("linkerd.trustAnchorKey", "");
  // Another key: the operator replaced the trust anchor (its root in the
  // bundle, its key here), and an issuer under the new root is due now, not
  // at the next hourly check (issue 23's simulation: an anchor replaced after
  // the old one ended left the issuer expired for up to an hour).
  const std::string seen = x509::public_key_sha256(*key);
  const bool another = seen != anchor_key_seen_;
  anchor_key_seen_ = seen;
  // No issuer to judge again (k3s's kubeconfig not usable yet): its start
  // reads the key then.
  if (!issuer_) return;
  if (another && !was_bad)
    log_.info("anchor-key-changed",
              path + " holds another trust anchor key: the issuer is judged again",
              {{"KEY_FILE", path}});
  if (!(was_bad || another)) return;
  if (rotate_token_pending_.empty()) {
    issuer_->request(RotationTrigger::kPeriodic);
  } else {
    issuer_->request(RotationTrigger::kToken, /*force=*/true, rotate_token_pending_);
  }
}

void Daemon::credential_problem(const std::string& source, const std::string& problem) {
  auto it = credential_problems_.find(source);
  if (problem.empty()) {
    if (it == credential_problems_.end()) return;
    credential_problems_.erase(it);
    log_.notice("credentials-usable", source + " is usable again", {{"CREDENTIALS", source}});
  } else {
    if (it != credential_problems_.end() && it->second == problem) return;
    credential_problems_[source] = problem;
    log_.warning("credentials-unusable",
                 source + " changed and cannot be used: " + problem +
                     "; the credentials in use stay in force",
                 {{"CREDENTIALS", source}});
  }
  report_credentials();
}

void Daemon::report_credentials() {
  const CredentialReport* renewal =
      renewal_ && renewal_->report().state != CredentialState::kUnmanaged ? &renewal_->report()
                                                                          : nullptr;
  // Absent until there is something to say.
  if (renewal == nullptr && credential_problems_.empty() &&
      conditions_->find(condition_type::kCredentialsValid) == nullptr)
    return;
  std::string problems;
  for (const auto& [which, why] : credential_problems_)
    problems += (problems.empty() ? "" : "; ") + which + ": " + why;
  if (!problems.empty()) problems += " (the credentials in use stay in force)";
  if (renewal != nullptr && (renewal->state == CredentialState::kExpired ||
                             renewal->state == CredentialState::kNotYetValid)) {
    report(condition_type::kCredentialsValid, ConditionStatus::kFalse, to_string(renewal->state),
           renewal->message + (problems.empty() ? "" : "; " + problems));
  } else if (!problems.empty()) {
    report(condition_type::kCredentialsValid, ConditionStatus::kFalse, "CredentialFileUnusable",
           problems);
  } else if (renewal != nullptr) {
    report(condition_type::kCredentialsValid, ConditionStatus::kTrue, to_string(renewal->state),
           renewal->message);
  } else {
    report(condition_type::kCredentialsValid, ConditionStatus::kTrue, "CredentialFilesUsable",
           "the credential files tetherd follows are usable");
  }
}

void Daemon::sync_renewal(bool report_now) {
  const bool wanted = config_.control_plane && factories_.tether && !stopping_;
  if (renewal_ && wanted && renewal_->paths().kubeconfig == config_.control_plane->kubeconfig &&
      renewal_->bootstrap_kubeconfig() == config_.control_plane->bootstrap_kubeconfig &&
      renewal_->node() == config_.node_name) {
    // A session a reload made is held back as at start.
    if (report_now) renewal_reported(renewal_->report());
    return;
  }
  if (renewal_) {
    renewal_->on_report({});
    renewal_->stop();
    retired_renewals_.push_back(std::move(renewal_));
  }
  if (!wanted) {
    report_credentials();
    push_certificates(false);
    return;
  }
  renewal_ = std::make_unique<CredentialRenewal>(io_.get_executor(), clock_, log_, *conditions_,
                                                 config_, factories_.renewal);
  renewal_->on_report([this](const CredentialReport& r) { renewal_reported(r); });
  renewal_->start();
  bootstrap_credentials();
  // Its first judgement, made before anyone listened: a reload's session
  // (made before it) is held back if the certificate has expired.
  if (report_now) {
    renewal_reported(renewal_->report());
  } else {
    report_credentials();
    push_certificates(false);
  }
}

void Daemon::bootstrap_credentials() {
  // The recovery credential, checked when it changes rather than on the
  // day it is needed.
  const std::string boot =
      config_.control_plane ? config_.control_plane->bootstrap_kubeconfig : std::string();
  if (boot.empty()) return credential_problem("controlPlane.bootstrapKubeconfig", "");
  auto k = load_kubeconfig(boot);
  if (k && k->ca_pem.empty()) {
    return credential_problem("controlPlane.bootstrapKubeconfig",
                              boot +
                                  " names no certificate-authority: its token would go to any "
                                  "server the system's web CAs vouch for; add the cloud's CA");
  }
  credential_problem("controlPlane.bootstrapKubeconfig", k ? "" : k.error().message);
}

void Daemon::renewal_reported(const CredentialReport& r) {
  if (stopping_) return;
  report_credentials();
  push_certificates(false);
  if (!r.usable && tether_) {
    log_.error("controlplane-credentials-expired",
               "disconnected from the control plane: " + r.message,
               {{"KUBECONFIG", renewal_->paths().kubeconfig}});
    retire_tether();
    report(condition_type::kConnected, ConditionStatus::kFalse, to_string(r.state), r.message);
    notifier_.notify("STATUS=" + status());
  } else if (r.usable && config_.control_plane) {
    // A new certificate (or none changed: then nothing is done), taken
    // now rather than after the file events' quiet period; the session
    // starts with it if it was held back.
    session_credentials();
  }
}

void Daemon::push_certificates(bool rotated) {
  std::vector<CertificateExpiry> all = linkerd_certificates_;
  if (renewal_ && renewal_->report().not_after)
    all.push_back({node_user(config_.node_name), "client", renewal_->report().subject,
                   *renewal_->report().not_after});
  if (health_) {
    health_->certificates(std::move(all), rotated);
  } else if (tether_) {
    tether_->set_certificates(std::move(all));
  }
}

// --- reload -----------------------------------------------------------------

namespace {

std::string or_none(const std::string& s) {
  return s.empty() ? "(none)" : s;
}

// The identity of a session: what a new one is needed for.
bool same_session(const Config& a, const Config& b) {
  if (a.node_name != b.node_name || !a.control_plane != !b.control_plane) return false;
  return !a.control_plane || (a.control_plane->kubeconfig == b.control_plane->kubeconfig &&
                              a.control_plane->namespace_ == b.control_plane->namespace_);
}

}  // namespace

void Daemon::reload_session(Config& next, std::vector<std::string>& did) {
  if (!next.control_plane && !config_.control_plane) return;  // standalone, and stays so
  const bool wanted_but_missing = next.control_plane && !tether_;
  if (same_session(next, config_) && !wanted_but_missing) {
    if (next.control_plane &&
        (next.control_plane != config_.control_plane ||
         next.health.interval != config_.health.interval) &&
        tether_) {
      tether_->retime(next);
      did.push_back("controlPlane: the running session takes the new intervals");
    }
    return;
  }
  if (!factories_.tether) {
    did.push_back("controlPlane: cannot be changed here (restart tetherd)");
    next.control_plane = config_.control_plane;
    return;
  }
  if (!next.control_plane) {
    retire_tether();
    // Without a control plane nothing comes from the cloud: the node mints
    // again (with its anchor key, if it has one).
    cloud_linkerd_known({});
    // What the node holds now is the static allowlist: said at once, not
    // at the next health round (and without health, ever).
    conditions_->firewall_standalone(firewall_.summary());
    did.push_back("controlPlane: removed; the session ended, tetherd runs standalone");
    return;
  }
  Kubeconfig used;
  auto made = make_session(next, used);
  if (!made) {
    did.push_back("controlPlane: cannot use " + next.control_plane->kubeconfig + " (" +
                  made.error().message + ")" +
                  (tether_ ? "; the running session stays" : "; still without the control plane"));
    next.control_plane = config_.control_plane;
    next.node_name = config_.node_name;
    return;
  }
  const bool had = tether_ != nullptr;
  retire_tether();
  attach_tether(std::move(*made));
  session_kubeconfig_ = std::move(used);
  did.push_back(std::string("controlPlane: ") + (had ? "a new session" : "a session") + " with " +
                tether_->server() + " as node " + next.node_name);
}

void Daemon::reload_local(Config& next, std::vector<std::string>& did) {
  if (next.cluster == config_.cluster && next.linkerd == config_.linkerd) return;
  if (!factories_.local) {
    did.push_back("cluster, linkerd: cannot be changed here (restart tetherd)");
    next.cluster = config_.cluster;
    next.linkerd = config_.linkerd;
    return;
  }
  retire_local();
  if (!next.cluster) conditions_->forget(condition_type::kK3sReady);
  if (!next.cluster && !next.linkerd) {
    conditions_->forget(condition_type::kCertificatesValid);
    did.push_back("cluster, linkerd: removed; k3s and linkerd's issuer are not watched");
    return;
  }
  if (!next.linkerd) conditions_->forget(condition_type::kCertificatesValid);
  attach_local(factories_.local(next));
  std::string what = "cluster, linkerd: k3s's kubeconfig " +
                     (next.cluster ? next.cluster->kubeconfig : std::string("(none)"));
  if (!local_->k3s_problem().empty()) what += " not usable yet, tried again every 10 s";
  if (next.linkerd) what += "; linkerd's issuer in " + next.linkerd->namespace_ + " checked now";
  did.push_back(what);
}

void Daemon::reload_state(Config& next, std::vector<std::string>& did) {
  // Against the directory in use: one that could not be had at start is
  // tried again.
  if (next.state.dir == (state_ ? state_->path() : config_.state.dir)) return;
  StateDir to(next.state.dir);
  auto refuse = [&](const std::string& why) {
    did.push_back("state.dir: kept " + config_.state.dir + ": " + why);
    next.state = config_.state;
  };
  if (auto ec = to.ensure()) return refuse("cannot use " + to.path() + ": " + ec.message());
  // What is kept there comes along, so a restart finds it in the new place.
  const StateDir from = state_ ? *state_ : StateDir(config_.state.dir);
  for (std::string_view name :
       {firewall::kDesiredStateFile, kRotateTokenFile, kCloudIssuerFile, kBundleSinceFile}) {
    boost::system::error_code ec;
    auto text = from.read(name, ec);
    if (!text) {
      if (ec == boost::system::errc::no_such_file_or_directory) continue;
      return refuse("cannot read " + from.path() + "/" + std::string(name) + ": " + ec.message());
    }
    if (auto werr = to.replace(name, *text))
      return refuse("cannot write " + to.path() + "/" + std::string(name) + ": " + werr.message());
  }
  state_ = to;
  firewall_.set_state_dir(to);
  did.push_back("state.dir: now " + to.path() + ", the saved state carried over");
}

void Daemon::reload_metrics(Config& next, std::vector<std::string>& did) {
  if (!health_ || next.metrics.listen == health_->metrics_listen()) return;
  if (auto r = health_->listen_metrics(next.metrics.listen); !r) {
    did.push_back("metrics.listen: still " + or_none(config_.metrics.listen) +
                  ": cannot listen on " + next.metrics.listen + ": " + r.error().message);
    next.metrics = config_.metrics;
    return;
  }
  did.push_back("metrics.listen: now " + or_none(next.metrics.listen));
}

bool Daemon::reload() {
  // MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) match the reload
  // to this notification; older versions ignore it.
  const auto mono_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.monotonic());
  notifier_.notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(mono_us.count()));
  config_text_ = config_text();  // before loading: a write in between is seen again
  auto loaded = load_config_();
  bool applied = false;
  if (auto* errors = std::get_if<ConfigErrors>(&loaded)) {
    for (const ConfigError& e : *errors) {
      log_.error("config-rejected",
                 "new configuration rejected, keeping the old one: " + e.format(config_path_),
                 {{"CONFIG", config_path_}});
    }
  } else {
    Config next = std::get<Config>(std::move(loaded));
    // The firewall first: the desired state in force must fit its new
    // settings, or the whole file is refused. Against the keeper's own
    // settings: a handover that failed is tried again.
    const FirewallConfig was = firewall_.config();
    const bool firewall_changed = next.firewall != was;
    Result<void> fits;
    if (firewall_changed) {
      fits = firewall_.reconfigure(next.firewall, [this, from = was.backend](Result<void> r) {
        if (stopping_) return;
        if (r && firewall_.config().backend != from) follow_backend();
        notifier_.notify("STATUS=" + status());
      });
    }
    if (!fits) {
      log_.error("config-rejected",
                 "new configuration rejected, keeping the old one: " + fits.error().message,
                 {{"CONFIG", config_path_}});
    } else {
      std::vector<std::string> did;
      const std::string old_name = config_.node_name;
      reload_session(next, did);
      // After the session: a new name it could not take is set back there.
      if (next.node_name != old_name)
        did.insert(did.begin(), "node: " + old_name + " is now " + next.node_name);
      reload_local(next, did);
      if (health_ && next.health != config_.health)
        did.push_back("health: new settings from the next round");
      reload_metrics(next, did);
      reload_state(next, did);
      if (next.firewall.backend != was.backend) {
        did.push_back(std::string("firewall.backend: handing over from ") + to_string(was.backend) +
                      " to " + to_string(next.firewall.backend) +
                      " (the new rules first, then the old ones removed)");
      } else if (firewall_changed) {
        did.push_back("firewall: the new settings are being applied");
      }
      if (next.tunnel != config_.tunnel)
        did.push_back(!next.tunnel     ? std::string("tunnel: off")
                      : config_.tunnel ? "tunnel: new settings, its servers dialled again"
                                       : "tunnel: on, dialling " + next.tunnel->server);
      config_ = std::move(next);
      sync_renewal(/*report_now=*/true);
      conditions_->set_threshold(config_.health.threshold);
      if (health_) health_->reconfigure(config_);
      follow_credentials();
      // A spec the old limits rejected may fit the new ones.
      if (firewall_changed && tether_) tether_->firewall_policy_changed();
      // The credential files as they are now (a reload is also how an
      // admin says "read them"), their problems judged afresh.
      const bool had_problems = !credential_problems_.empty();
      credential_problems_.clear();
      credentials_changed();
      if (had_problems && credential_problems_.empty()) report_credentials();
      std::string changed;
      for (const auto& d : did)
        changed += (changed.empty() ? "" : "; ") + d;
      if (changed.empty()) {
        log_.info("config-unchanged", "configuration reloaded, nothing changed",
                  {{"CONFIG", config_path_}});
      } else {
        log_.notice("config-reloaded", "configuration reloaded: " + changed,
                    {{"CONFIG", config_path_}, {"NODE", config_.node_name}});
      }
    }
    applied = fits.has_value();
  }
  notifier_.notify("READY=1\nSTATUS=" + status());
  return applied;
}

void Daemon::stop(std::string_view reason) {
  if (stopping_) return;
  stopping_ = true;
  notifier_.notify("STOPPING=1\nSTATUS=stopping (" + std::string(reason) + ")");
  log_.info("stopping", "stopping on " + std::string(reason), {{"REASON", std::string(reason)}});
  boost::system::error_code ignored;
  signals_.cancel(ignored);
  tick_.cancel();
  issuer_timer_.cancel();
  reconcile_timer_.cancel();
  if (files_) files_->stop();
  if (resume_) resume_->stop();
  if (health_) {
    health_->stop();
    // The client of k3s it was handed goes back with the LocalCluster's
    // stop (as at retire_local), or finished() would wait on it for ever.
    if (local_ && local_->k3s()) health_->set_k3s(nullptr);
  }
  if (issuer_) {
    issuer_->stop();
    issuer_->use_clock_witness({});  // it may outlive this daemon (a test's)
  }
  if (monitor_) monitor_->stop();
  if (addresses_) addresses_->stop();
  if (tether_) {
    tether_->on_server_date({});
    tether_->stop();
  }
  if (tunnel_) tunnel_->stop();
  tunnel_gate_.stop();
  if (renewal_) renewal_->stop();
  firewall_.stop();
}

}  // namespace tetherd
