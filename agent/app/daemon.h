#pragma once
// The daemon's life cycle on one Asio event loop: start, serve, reload on
// SIGHUP, stop on SIGTERM/SIGINT, and keep systemd informed throughout.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "agent/adapters/address_monitor.h"
#include "agent/adapters/file_watch.h"
#include "agent/adapters/state_dir.h"
#include "agent/app/credential_renewal.h"
#include "agent/app/firewall_keeper.h"
#include "agent/app/issuer_rotation.h"
#include "agent/app/local_cluster.h"
#include "agent/app/node_health.h"
#include "agent/app/resume_detector.h"
#include "agent/app/tether.h"
#include "agent/app/tunnel_gate.h"
#include "agent/config/config_loader.h"
#include "agent/core/clock.h"
#include "agent/core/clock_jump.h"
#include "agent/core/firewall_monitor.h"
#include "agent/core/log.h"
#include "agent/core/service_notifier.h"
#include "agent/core/timer.h"

namespace tetherd {

namespace tunnel {
class TunnelAgent;
struct TunnelReport;
}  // namespace tunnel

// One line for systemd's STATUS= and `systemctl status`. `tether` is the
// control-plane session's summary ("" when there is none).
std::string status_line(const Config& config, const std::string& firewall_summary,
                        const std::string& tether = {});

// What the daemon runs besides the firewall, each optional.
struct DaemonParts {
  FirewallMonitor* monitor = nullptr;    // someone else's changes to the firewall
  AddressMonitor* addresses = nullptr;   // the node's own addresses coming and going
  Tether* tether = nullptr;              // the control-plane session
  ResumeDetector* resume = nullptr;      // sleep and resume; none: not watched
  IssuerRotation* issuer = nullptr;      // linkerd's issuer, there from the start
  LocalCluster* local = nullptr;         // k3s and linkerd's issuer, made when k3s is there
  const StateDir* state = nullptr;       // where the last spec.linkerd.rotate acted on is kept
  NodeHealth* health = nullptr;          // probes; none: the firewall is checked on a timer alone
  FileWatch* files = nullptr;            // the credential files followed; none: read on reload only
  NodeConditions* conditions = nullptr;  // the node's conditions; none: the daemon keeps its own
};

// How the daemon makes, at start and again after a reload that changes
// their settings, the parts a configuration describes. A part given in
// DaemonParts is used first; an empty factory: never remade.
struct DaemonFactories {
  // The control plane's session (config.control_plane is set), from its
  // kubeconfig as read; an error says why it cannot be used.
  std::function<Result<std::unique_ptr<Tether>>(const Config&, const Kubeconfig&)> tether;
  // k3s and linkerd's issuer (config.cluster or config.linkerd is set).
  std::function<std::unique_ptr<LocalCluster>(const Config&)> local;
  // Someone else's changes to firewall.backend's rules; null when the
  // backend cannot be watched.
  std::function<std::unique_ptr<FirewallMonitor>(const FirewallConfig&)> monitor;
  // How the node's client certificate's renewal draws its times and makes
  // its client (controlPlane's kubeconfig is enroll's): the defaults, but
  // for the simulation's.
  RenewalTiming renewal;
};

class Daemon {
 public:
  using ConfigSource = std::function<std::variant<Config, ConfigErrors>()>;

  Daemon(boost::asio::io_context& io, const Clock& clock, Log& log, ServiceNotifier& notifier,
         FirewallKeeper& firewall, std::string config_path, ConfigSource load_config,
         Config initial, DaemonParts parts = {}, DaemonFactories factories = {});
  ~Daemon();

  // Applies the firewall (fail closed: before anything else), arms signals
  // and the watchdog, then tells systemd READY=1. An error means tetherd
  // cannot do its job and should exit non-zero.
  Result<void> start();
  // Re-reads the configuration; a bad one, or one the firewall cannot take,
  // is logged and the old one kept. Every section takes effect (see the
  // README's "Reloading the configuration"), and one line says what
  // changed and what was done. Returns whether the new one took effect.
  bool reload();
  // Graceful stop: STOPPING=1, cancel everything so that io.run() returns.
  void stop(std::string_view reason);
  // Someone else changed the firewall: reconcile now (coalesced: a burst of
  // calls runs one reconcile).
  void firewall_changed();
  // The clocks' witness of a resume, run on every tick (logind, when there,
  // usually speaks first). Returns whether it reported a resume.
  bool check_resume();
  // Linkerd's issuer is checked hourly on a monotonic timer, which stands
  // still while the machine sleeps: the resume triggers its own check.
  static constexpr Duration kIssuerCheckPeriod = std::chrono::hours(1);
  // How long a mint at the issuer's start waits for the control plane's
  // first Date (IssuerRotation::use_clock_witness).
  static constexpr Duration kClockWitnessWait = std::chrono::seconds(30);
  // The wall clock's steps, also checked on every tick: certificates are
  // judged on it, so a step (NTP's first answer after a boot with the time
  // saved at shutdown) judges the issuer and the node's credential again.
  // Returns the step when there was one.
  std::optional<Duration> check_wall_step();
  // The control plane's Date, heard by the session (see ClockWitness): a
  // change in whether this node's clock agrees with it (within
  // kClockTolerance) is logged and judges the issuer again, as does the
  // word back after a day without it.
  void heard_control_plane_date(std::string_view date);
  // Logs a change in that agreement; with `pass`, judges the issuer again
  // (and, `back`: the witness was stale before, also without a change).
  void judge_clock(bool pass, bool back = false);

  const Config& config() const { return config_; }
  // The control plane's session in use, or none (not configured, its
  // kubeconfig not usable, or held back while the certificate is expired).
  Tether* tether() const { return tether_; }
  // linkerd's issuer rotation in use: given, or LocalCluster's once made.
  IssuerRotation* issuer() const { return issuer_; }
  // After stop(): whether the work of the parts the daemon made itself
  // (sessions, renewals, k3s's clients, tunnels; in use and replaced) has
  // ended, so that it can be freed. Parts given in DaemonParts are the
  // caller's to wait for.
  bool finished() const;

 private:
  void wait_for_signal();
  void arm_tick();
  void arm_issuer_check();
  void start_issuer();
  // Hands what the LocalCluster has made to the parts that use it.
  void take_local();
  void resumed();
  void rotate_token_seen();
  // Records the session's spec.linkerd.rotate token; whether it asks for a
  // rotation (new, and not acted on before), now pending.
  bool take_rotate_token();
  // What the cloud supplies for linkerd, once known: handed to the issuer
  // rotation, and the issuer Secret's name saved in the state dir.
  void cloud_linkerd_known(CloudLinkerd cloud);
  // When the trust bundle `sha256` was first seen in force (saved in the
  // state dir; now, the first time).
  WallTime bundle_since(const std::string& sha256);
  void issuer_checked(const RotationResult& result);
  void report(std::string_view type, ConditionStatus status, std::string_view reason,
              std::string_view message);
  void arm_reconcile();
  void addresses_changed();
  std::string status() const;
  // The parts a reload remakes: each new one in, the old one stopped and
  // kept until its work has ended (reap()).
  void attach_tether(std::unique_ptr<Tether> tether);
  void retire_tether();
  void attach_local(std::unique_ptr<LocalCluster> local);
  void retire_local();
  void follow_backend();
  void reap();
  // The sections of a reload, each applied; `next` is set back to what
  // stays in force when one cannot be taken. Each adds to `did`.
  void reload_session(Config& next, std::vector<std::string>& did);
  void reload_local(Config& next, std::vector<std::string>& did);
  void reload_state(Config& next, std::vector<std::string>& did);
  void reload_metrics(Config& next, std::vector<std::string>& did);
  // The control plane's session from `config`'s kubeconfig as it is now.
  Result<std::unique_ptr<Tether>> make_session(const Config& config, Kubeconfig& used);
  // The credential files: followed (again after each change of the set),
  // and when one changes, each user re-reads its own and takes it if whole.
  void follow_credentials();
  // A followed file changed: the configuration (a reload) or a credential.
  void files_changed();
  void credentials_changed();
  std::string config_text() const;  // "" when unreadable
  void session_credentials();
  void cluster_credentials();
  void anchor_key();
  // A credential file that cannot be used (`source`: which), or no longer
  // so: CredentialsValid and one log line per change.
  void credential_problem(const std::string& source, const std::string& problem);
  // The node's own certificate: renewed while the control plane is
  // configured (a new renewal when its files or bootstrap credential
  // change), its report shown and the session held back while it expired.
  // `report_now`: hand its first report on (a reload; at start the session
  // is made after it and asks itself).
  void sync_renewal(bool report_now);
  void renewal_reported(const CredentialReport& report);
  void bootstrap_credentials();
  // CredentialsValid from the files' problems and the renewal's report.
  void report_credentials();
  // status.certificates: linkerd's and the node's client certificate.
  void push_certificates(bool rotated);
  // The tunnel (daemon_tunnel.cpp): made, remade or given new credentials
  // as the configuration and its kubeconfig are now; TunnelConnected.
  void sync_tunnel();
  void tunnel_reported(const tunnel::TunnelReport& report);
  // firewall.closeWhenTunnelled: the tunnelled ports closed to the cloud
  // while the tunnel holds its servers, open otherwise; `why` for the log.
  void sync_tunnelled_ports(const std::string& why);
  bool credentials_expired() const { return renewal_ && !renewal_->report().usable; }

  const Clock& clock_;
  Log& log_;
  ServiceNotifier& notifier_;
  FirewallKeeper& firewall_;
  std::string config_path_;
  std::string config_text_;  // as last loaded, to tell an edit from a touch
  ConfigSource load_config_;
  Config config_;
  boost::asio::signal_set signals_;
  boost::asio::io_context& io_;
  FirewallMonitor* monitor_;
  AddressMonitor* addresses_;
  Tether* tether_;
  ResumeDetector* resume_;
  IssuerRotation* issuer_;
  LocalCluster* local_;
  std::optional<StateDir> state_;
  NodeHealth* health_;
  std::unique_ptr<NodeConditions> own_conditions_;
  NodeConditions* conditions_;
  DaemonFactories factories_;
  // What the daemon made itself (the factories'), and what it replaced and
  // waits for to end.
  std::unique_ptr<Tether> own_tether_;
  std::unique_ptr<LocalCluster> own_local_;
  std::unique_ptr<FirewallMonitor> own_monitor_;
  std::vector<std::unique_ptr<Tether>> retired_tethers_;
  std::vector<std::unique_ptr<LocalCluster>> retired_locals_;
  bool issuer_from_local_ = false;
  FileWatch* files_;
  std::optional<Kubeconfig> session_kubeconfig_;  // what the session was made from
  std::map<std::string, std::string> credential_problems_;
  std::unique_ptr<CredentialRenewal> renewal_;
  std::vector<std::unique_ptr<CredentialRenewal>> retired_renewals_;
  std::vector<CertificateExpiry> linkerd_certificates_;
  std::unique_ptr<tunnel::TunnelAgent> tunnel_;
  std::vector<std::unique_ptr<tunnel::TunnelAgent>> retired_tunnels_;
  std::optional<TunnelConfig> tunnel_settings_;  // what tunnel_ was made from
  std::string tunnel_identity_;                  // its agent ID
  TunnelGate tunnel_gate_;                       // tunnel_ holds all its servers, damped
  std::vector<std::string> tunnel_files_;        // its kubeconfig's files, followed
  // One connectID counter for every agent a reload makes (see TunnelSettings).
  std::shared_ptr<std::int64_t> tunnel_connect_ids_ = std::make_shared<std::int64_t>(0);
  // Pings the watchdog (when systemd asks for it) and runs the clock-jump
  // check: one wake-up for both.
  Timer tick_;
  Timer issuer_timer_;
  WallStepCheck wall_step_;
  ClockWitness clock_witness_;
  std::optional<bool> clock_agrees_;  // with the witness, when it has spoken
  std::string anchor_key_seen_;       // the trust anchor key's public_key_sha256
  CloudLinkerd cloud_linkerd_;        // as the last session read it
  std::string saved_cloud_issuer_;    // what the state dir holds of it
  std::string rotate_token_;          // spec.linkerd.rotate as last seen
  std::string rotate_token_pending_;  // asked for, not yet rotated
  // The backstop for drift the monitor cannot see (or when it cannot run).
  Timer reconcile_timer_;
  bool reconcile_pending_ = false;
  Duration watchdog_period_{};  // zero: no watchdog
  bool stopping_ = false;
};

}  // namespace tetherd
