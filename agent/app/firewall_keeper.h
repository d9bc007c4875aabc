#pragma once
// Keeps the firewall in force for the daemon: at start, before anything
// else, it applies the last good desired state from the state directory (or
// the static allowlist alone) — fail closed, even offline. It persists every
// accepted update, follows configuration reloads, and on stop keeps or
// removes the rules as firewall.onStop says.

#include <functional>
#include <memory>
#include <string>

#include "agent/adapters/state_dir.h"
#include "agent/config/config.h"
#include "agent/core/log.h"
#include "firewall/firewall.h"

namespace tetherd {

firewall::Policy firewall_policy(const FirewallConfig& config);

// The backend for firewall.backend. `progress` is called between the steps
// of a slow apply (ufw runs a program per rule), for the watchdog.
std::unique_ptr<firewall::Backend> make_firewall_backend(const FirewallConfig& config,
                                                         std::function<void()> progress = {});

// ufw as tetherd runs it: /usr/sbin/ufw with a deadline, output bounded.
Result<std::string> run_ufw(const std::vector<std::string>& args);

// The saved desired state: nullopt when there is none; an error when it
// cannot be read or decoded.
Result<std::optional<firewall::DesiredSources>> read_saved_desired(const StateDir& state);

class FirewallKeeper {
 public:
  using BackendFactory = std::function<std::unique_ptr<firewall::Backend>(const FirewallConfig&)>;

  FirewallKeeper(Log& log, StateDir state, BackendFactory make_backend,
                 std::vector<boost::asio::ip::address> node_addresses);

  // Applies what should be in force at boot. An error here means the
  // firewall could not be applied at all.
  Result<void> start(const FirewallConfig& config);
  // A desired state from the control plane: validated whole, applied,
  // persisted; or rejected with the reason, the last good one kept.
  Result<void> update(const firewall::DesiredSources& desired);
  // Whether `desired` fits the configuration (firewall.maxSources, CIDR
  // syntax, firewall.ports), without applying it.
  Result<void> check(const firewall::DesiredSources& desired) const;
  // The control plane's desired state in force (empty before any).
  const firewall::DesiredSources& in_force() const;
  // Backend name and the number of source networks allowed, for status.
  std::string_view backend_name() const;
  std::size_t source_count() const;
  // The node's own addresses as they are now (after an AddressMonitor
  // notification): always allowed, so new ones join the allowed set and
  // old ones leave it. Returns whether they changed.
  Result<bool> set_node_addresses(std::vector<boost::asio::ip::address> addresses);
  // A reloaded configuration. A backend change takes effect on restart.
  Result<void> reconfigure(const FirewallConfig& config);
  // Reads the kernel back and repairs drift; logs a repair, and a failure
  // once per streak.
  Result<firewall::Firewall::Drift> reconcile();
  void stop();
  // Looks for other firewalls that drop what tetherd allows (coexistence.h)
  // and for the backend's caveats; logs when a finding is new, not on
  // every check.
  void check_surroundings();
  const std::vector<firewall::BlockingChain>& blocking_chains() const { return blocking_; }

  // "nftables, 7 sources" for STATUS=.
  std::string summary() const;

 private:
  Log& log_;
  StateDir state_;
  BackendFactory make_backend_;
  std::vector<boost::asio::ip::address> node_addresses_;
  FirewallConfig config_;
  std::unique_ptr<firewall::Backend> backend_;
  std::unique_ptr<firewall::Firewall> firewall_;
  bool reconcile_failing_ = false;
  std::vector<firewall::BlockingChain> blocking_;
  std::vector<firewall::Caveat> caveats_;
};

}  // namespace tetherd
