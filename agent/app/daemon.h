#pragma once
// The daemon's life cycle on one Asio event loop: start, serve, reload on
// SIGHUP, stop on SIGTERM/SIGINT, and keep systemd informed throughout.

#include <functional>
#include <string>
#include <variant>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/app/firewall_keeper.h"
#include "agent/app/firewall_monitor.h"
#include "agent/app/tether.h"
#include "agent/config/config_loader.h"
#include "agent/core/clock.h"
#include "agent/core/clock_jump.h"
#include "agent/core/log.h"
#include "agent/core/service_notifier.h"

namespace tetherd {

// One line for systemd's STATUS= and `systemctl status`. `tether` is the
// control-plane session's summary ("" when there is none).
std::string status_line(const Config& config, const std::string& firewall_summary,
                        const std::string& tether = {});

class Daemon {
 public:
  using ConfigSource = std::function<std::variant<Config, ConfigErrors>()>;

  Daemon(boost::asio::io_context& io, const Clock& clock, Log& log, ServiceNotifier& notifier,
         FirewallKeeper& firewall, std::string config_path, ConfigSource load_config,
         Config initial, FirewallMonitor* monitor = nullptr, Tether* tether = nullptr);

  // Applies the firewall (fail closed: before anything else), arms signals
  // and the watchdog, then tells systemd READY=1. An error means tetherd
  // cannot do its job and should exit non-zero.
  Result<void> start();
  // Re-reads the configuration; a bad one, or one the firewall cannot take,
  // is logged and the old one kept. Returns whether the new one took effect.
  bool reload();
  // Graceful stop: STOPPING=1, cancel everything so that io.run() returns.
  void stop(std::string_view reason);
  // Someone else changed the firewall: reconcile now (coalesced: a burst of
  // calls runs one reconcile).
  void firewall_changed();
  // The clock-jump check, run on every tick: after a suspend, tell the
  // tether (redial now) and check the firewall. Returns whether it slept.
  bool check_resume();

  const Config& config() const { return config_; }

 private:
  void wait_for_signal();
  void arm_tick();
  void arm_reconcile();
  std::string status() const;

  const Clock& clock_;
  Log& log_;
  ServiceNotifier& notifier_;
  FirewallKeeper& firewall_;
  std::string config_path_;
  ConfigSource load_config_;
  Config config_;
  boost::asio::signal_set signals_;
  boost::asio::io_context& io_;
  FirewallMonitor* monitor_;
  Tether* tether_;
  // Pings the watchdog (when systemd asks for it) and runs the clock-jump
  // check: one wake-up for both.
  boost::asio::steady_timer tick_;
  ClockJumpCheck clock_jump_;
  // The backstop for drift the monitor cannot see (or when it cannot run).
  boost::asio::steady_timer reconcile_timer_;
  bool reconcile_pending_ = false;
  Duration watchdog_period_{};  // zero: no watchdog
  bool stopping_ = false;
};

}  // namespace tetherd
