#pragma once
// Keeps the firewall in force for the daemon: at start, before anything
// else, it applies the last good desired state from the state directory (or
// the static allowlist alone) — fail closed, even offline. It persists every
// accepted update, follows configuration reloads, and on stop keeps or
// removes the rules as firewall.onStop says.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/thread_pool.hpp>

#include "agent/adapters/state_dir.h"
#include "agent/app/address_change.h"
#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/log.h"
#include "agent/core/node_status.h"
#include "firewall/firewall.h"

namespace tetherd {

firewall::Policy firewall_policy(const FirewallConfig& config);

// The backend for firewall.backend. `progress` is called between the steps
// of a slow apply (ufw runs a program per rule), on the thread running it:
// for systemd's start and stop timeouts, which a long apply may outlast.
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
  // Where the backend's work runs once the daemon is up. kThread: a thread
  // of the keeper's own, so a slow backend (ufw runs a program per rule)
  // never holds up the event loop, the Lease or the watchdog. kLoop: on the
  // event loop itself, after the caller returns (tests with fake backends).
  enum class Worker { kLoop, kThread };

  FirewallKeeper(Log& log, StateDir state, BackendFactory make_backend,
                 std::vector<boost::asio::ip::address> node_addresses,
                 boost::asio::any_io_executor loop, Worker worker = Worker::kLoop);
  ~FirewallKeeper();
  FirewallKeeper(const FirewallKeeper&) = delete;
  FirewallKeeper& operator=(const FirewallKeeper&) = delete;

  // Applies what should be in force at boot, on the calling thread, before
  // anything else runs. An error here means the firewall could not be
  // applied at all.
  Result<void> start(const FirewallConfig& config);

  // The rest runs the backend on the worker and calls back on the loop;
  // logging and the state below happen on the loop only.

  // A desired state from the control plane: validated whole, applied,
  // persisted; or rejected with the reason, the last good one kept. An
  // update overtaken by a newer one before it started, or queued when
  // tetherd stops, is dropped, and its `done` never called.
  void update(firewall::DesiredSources desired, std::function<void(Result<void>)> done);
  // Whether `desired` fits the configuration (firewall.maxSources, CIDR
  // syntax, firewall.ports), without applying it.
  Result<void> check(const firewall::DesiredSources& desired) const;
  // The control plane's desired state in force (empty before any).
  const firewall::DesiredSources& in_force() const { return in_force_; }
  // What is being applied, or else what is in force.
  const firewall::DesiredSources& wanted() const { return wanted_ ? *wanted_ : in_force_; }
  // Backend name and the number of source networks allowed, for status.
  std::string_view backend_name() const;
  std::size_t source_count() const { return allowed_sources_; }
  // The node's own addresses as they are now (after an AddressMonitor
  // notification): always allowed, so new ones join the allowed set and
  // old ones leave it. `changed` is called once they are in force.
  void set_node_addresses(std::vector<boost::asio::ip::address> addresses,
                          std::function<void()> changed = {});
  // A reloaded configuration: judged now (the desired state in force must
  // fit it), applied on the worker; `done` hears how the apply went. A new
  // firewall.backend is handed over with no unfiltered moment: the new one
  // applies the rules in force, and only then does the old one remove its
  // own. A new backend that cannot apply is cleaned up and the old one,
  // with its settings, stays in force (and config() says so again).
  Result<void> reconfigure(const FirewallConfig& config,
                           std::function<void(Result<void>)> done = {});
  // The managed ports closed to the cloud (firewall.closeWhenTunnelled
  // while the tunnel holds its servers; empty: none), applied on the
  // worker and logged with `why`; kept across reloads and handovers.
  void set_closed_ports(std::vector<std::uint16_t> ports, std::string why,
                        std::function<void(Result<void>)> done = {});
  const std::vector<std::uint16_t>& closed_ports() const { return closed_ports_; }
  // The settings in force, or being applied.
  const FirewallConfig& config() const { return config_; }
  // A new state.dir (the caller has carried the files over): the next
  // accepted update is saved there.
  void set_state_dir(StateDir state) { state_ = std::move(state); }
  // Reads the kernel back and repairs drift; logs a repair, and a failure
  // once per streak. With watch_evidence(), also reads the kernel's record
  // of who reaches the node and logs the hint that the cloud's address may
  // have changed (app/address_change.h) once per finding, and its end.
  void reconcile(std::function<void(Result<firewall::Firewall::Drift>)> done = {});
  // Judges the record with this clock's monotonic time (how long it has
  // been watched: a record's times stop while the node sleeps, as this
  // clock does).
  void watch_evidence(const Clock& clock) { clock_ = &clock; }
  // The finding of the last reconcile, if any, as first found.
  const std::optional<AddressChangeHint>& address_change() const { return address_change_; }
  // The record in numbers, as of the last reconcile (none: not read).
  const std::optional<EvidenceSummary>& evidence() const { return evidence_; }
  WallTime evidence_read_at() const { return evidence_read_at_; }
  // The same, for status.firewall.refusedRecently.
  std::optional<RefusedRecently> refused_recently() const;
  // Stops the work in flight at its next step, waits for it, then keeps or
  // removes the rules as firewall.onStop says (on the calling thread).
  void stop();
  // Looks for other firewalls that drop what tetherd allows (coexistence.h)
  // and for the backend's caveats; logs when a finding is new, not on
  // every check.
  void check_surroundings();
  const std::vector<firewall::BlockingChain>& blocking_chains() const { return blocking_; }
  // Work queued or running on the worker.
  bool busy() const { return in_flight_ > 0; }

  // "nftables, 3 ports, 7 source networks" for STATUS=.
  std::string summary() const;

 private:
  // The configuration's policy with the ports closed now.
  firewall::Policy policy_for(const FirewallConfig& config) const;
  // What the loop may read of the firewall, copied after each job.
  struct Snapshot {
    firewall::DesiredSources in_force;
    std::size_t ports = 0;
    std::size_t sources = 0;
    std::string backend;
  };
  Snapshot snapshot() const;
  void take(Snapshot s);
  // Runs `job` on the worker (skipped once stopped), then `done` with its
  // result on the loop (also after stop, for work that was done).
  template <class Job, class Done>
  void run(Job job, Done done);
  Result<void> hand_over(const FirewallConfig& config, std::function<void(Result<void>)> done);
  void take_hint(std::optional<AddressChangeHint> hint);
  void interrupt(bool on);

  Log& log_;
  StateDir state_;
  BackendFactory make_backend_;
  std::vector<boost::asio::ip::address> node_addresses_;
  std::vector<std::uint16_t> closed_ports_;
  FirewallConfig config_;
  boost::asio::any_io_executor loop_;
  std::optional<boost::asio::thread_pool> thread_;
  boost::asio::any_io_executor work_;
  // On the worker once started. The mutex guards the two pointers against
  // stop()'s interrupt from the loop while a handover swaps them.
  std::mutex backend_mutex_;
  std::unique_ptr<firewall::Backend> backend_;
  firewall::Backend* incoming_ = nullptr;  // a handover's new backend, while it applies
  std::unique_ptr<firewall::Firewall> firewall_;
  std::atomic<bool> stopped_ = false;
  std::atomic<std::uint64_t> latest_update_ = 0;
  int in_flight_ = 0;

  // The loop's side.
  std::string backend_name_;  // empty until applied
  std::uint64_t reconfigures_ = 0;
  firewall::DesiredSources in_force_;
  std::optional<firewall::DesiredSources> wanted_;
  std::size_t allowed_ports_ = 0;
  std::size_t allowed_sources_ = 0;
  bool reconcile_failing_ = false;
  const Clock* clock_ = nullptr;
  std::optional<MonoTime> evidence_since_;  // the record watched since (and whole since)
  std::uint64_t table_seen_ = 0;            // the kernel's handle of the table then
  std::optional<AddressChangeHint> address_change_;
  MonoTime held_seen_at_{};  // its stranger's last refused record
  WallTime address_change_since_{};
  std::optional<EvidenceSummary> evidence_;
  WallTime evidence_read_at_{};
  std::vector<firewall::BlockingChain> blocking_;
  std::vector<firewall::Caveat> caveats_;
};

}  // namespace tetherd
