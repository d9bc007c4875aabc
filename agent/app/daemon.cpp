#include "agent/app/daemon.h"

#include <csignal>

#include <boost/asio/post.hpp>

#include "agent/adapters/node_addresses.h"
#include "agent/app/certs_report.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"

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
               Config initial, DaemonParts parts)
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
      state_(parts.state),
      health_(parts.health),
      tick_(io),
      issuer_timer_(io),
      reconcile_timer_(io) {}

Result<void> Daemon::start() {
  if (auto r = firewall_.start(config_.firewall); !r) {
    log_.error("firewall-failed", "cannot apply the firewall: " + r.error().message);
    return r;
  }
  if (monitor_) {
    if (auto r = monitor_->start([this] { firewall_changed(); }); !r) {
      log_.warning("firewall-monitor-failed",
                   "cannot watch for changes to the firewall: " + r.error().message +
                       "; drift is repaired by the periodic check only");
    }
  }
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
  if (tether_) {
    tether_->on_change([this] {
      if (stopping_) return;
      notifier_.notify("STATUS=" + status());
      rotate_token_seen();
    });
    tether_->start();
  }
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
  if (local_) {
    local_->attach();
    take_local();
  }
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

void Daemon::start_issuer() {
  issuer_->on_result([this](const RotationResult& r) { issuer_checked(r); });
  issuer_->request(RotationTrigger::kStart);
  arm_issuer_check();
}

void Daemon::take_local() {
  if (health_) {
    if (local_->k3s()) {
      health_->set_k3s(local_->k3s());
    } else if (!local_->k3s_problem().empty()) {
      health_->report(condition_type::kK3sReady, ConditionStatus::kFalse, "KubeconfigUnusable",
                      local_->k3s_problem());
    }
  }
  if (!issuer_ && local_->issuer()) {
    issuer_ = local_->issuer();
    start_issuer();
  }
}

bool Daemon::check_resume() {
  if (!resume_ || stopping_) return false;
  const auto before = resume_->stats().resumes;
  resume_->check_clock();
  return resume_->stats().resumes > before;
}

void Daemon::resumed() {
  if (stopping_) return;
  // Every connection is suspect, every certificate older than it thinks,
  // and the firewall may have been changed by whoever ran while we slept.
  if (tether_) tether_->resumed();
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
  if (!issuer_ || tether_->rotate_token() == rotate_token_) return;
  rotate_token_ = tether_->rotate_token();
  if (rotate_token_.empty()) return;
  // A token already acted on (before a restart, say) asks for nothing new.
  if (state_) {
    boost::system::error_code ec;
    if (state_->read(kRotateTokenFile, ec, 4096) == rotate_token_) return;
  }
  rotate_token_pending_ = rotate_token_;
  log_.notice("issuer-rotation-requested",
              "EdgeNode spec.linkerd.rotate changed: rotating linkerd's issuer now",
              {{"TOKEN", rotate_token_}});
  issuer_->request(RotationTrigger::kToken, /*force=*/true, rotate_token_);
}

void Daemon::issuer_checked(const RotationResult& result) {
  if (stopping_) return;
  // The token a pass answered, not the latest one seen: another may have
  // come meanwhile, and has a pass of its own queued.
  if (!result.token.empty() && result.rotated) {
    if (state_) {
      if (auto ec = state_->replace(kRotateTokenFile, result.token)) {
        log_.warning("state-write-failed",
                     "cannot save spec.linkerd.rotate in " + state_->path() + ": " + ec.message());
      }
    }
    if (rotate_token_pending_ == result.token) rotate_token_pending_.clear();
  }
  const IssuerVerdict& v = result.before.verdict;
  if (health_) health_->certificates(certificate_statuses(result), result.rotated);
  if (result.rotated && v.anchor == AnchorState::kValid) {
    report(condition_type::kCertificatesValid, ConditionStatus::kTrue, "IssuerRotated",
           "rotated linkerd's issuer (" + std::string(to_string(result.trigger)) +
               "); the new one is valid until " + format_kube_time(result.issued->not_after));
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
  if (health_) {
    health_->report(type, status, reason, message);  // and on to the Tether
  } else if (tether_) {
    tether_->report(type, status, reason, message);
  }
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

bool Daemon::reload() {
  // MONOTONIC_USEC lets systemd (Type=notify-reload, v253+) match the reload
  // to this notification; older versions ignore it.
  const auto mono_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.monotonic());
  notifier_.notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(mono_us.count()));
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
    Result<void> fits =
        next.firewall == config_.firewall ? Result<void>() : firewall_.reconfigure(next.firewall);
    if (!fits) {
      log_.error("config-rejected",
                 "new configuration rejected, keeping the old one: " + fits.error().message,
                 {{"CONFIG", config_path_}});
    } else if (next == config_) {
      log_.info("config-unchanged", "configuration reloaded, nothing changed",
                {{"CONFIG", config_path_}});
    } else {
      const bool firewall_settings_changed = next.firewall != config_.firewall;
      config_ = std::move(next);
      log_.notice("config-reloaded", "configuration reloaded: " + status(),
                  {{"CONFIG", config_path_}, {"NODE", config_.node_name}});
      // A spec the old limits rejected may fit the new ones.
      if (firewall_settings_changed && tether_) tether_->firewall_policy_changed();
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
  if (resume_) resume_->stop();
  if (health_) health_->stop();
  if (issuer_) issuer_->stop();
  if (monitor_) monitor_->stop();
  if (addresses_) addresses_->stop();
  if (tether_) tether_->stop();
  firewall_.stop();
}

}  // namespace tetherd
