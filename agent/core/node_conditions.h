#pragma once
// The node's conditions, in one place. Every part that knows something
// reports it here, and every part that shows the conditions reads them from
// here:
//
//   producers   the Tether (Connected, and FirewallInSync's verdict on the
//               spec), the health rounds (K3sReady, LinkerdGatewayReady,
//               ClockSynchronized, damped; the live firewall check), the
//               daemon (CertificatesValid from the issuer rotation,
//               CredentialsValid from the files it follows);
//   readers     the EdgeNode's status writer (the Tether listens and writes),
//               journald's condition-changed lines (health listens),
//               systemd's STATUS=, the metrics and the status socket.
//
// Probe results are damped (core/health.h); facts are taken at once.
// FirewallInSync has two producers and is composed here alone: what the
// firewall was asked to hold (the spec's verdict, or the static allowlist
// without a control plane) unless the live rules cannot be checked.
//
// Single-threaded: called on the event loop. A listener may read the board
// but must not report to it from within the call.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/clock.h"
#include "agent/core/health.h"
#include "agent/core/node_status.h"
#include "agent/core/probe.h"
#include "agent/core/result.h"

namespace tetherd {

class NodeConditions {
 public:
  // A change of one condition (its reason or message included), with the
  // status transitions it caused (Ready's too; empty when only the words
  // changed).
  struct Change {
    std::string type;
    std::vector<ConditionTransition> transitions;
  };
  using Listener = std::function<void(const Change&)>;

  // Stops a listener hearing when it goes out of scope.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept { *this = std::move(other); }
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription() { reset(); }
    void reset();

   private:
    friend class NodeConditions;
    Subscription(NodeConditions* board, std::uint64_t id) : board_(board), id_(id) {}
    NodeConditions* board_ = nullptr;
    std::uint64_t id_ = 0;
  };

  NodeConditions(const Clock& clock, int threshold) : clock_(clock), health_(threshold) {}
  NodeConditions(const NodeConditions&) = delete;
  NodeConditions& operator=(const NodeConditions&) = delete;

  // A fact, taken at once. Returns whether anything changed.
  bool report(std::string_view type, ConditionStatus status, std::string_view reason,
              std::string_view message);
  // A probe round's result, damped by the threshold.
  bool probed(std::string_view type, const ProbeResult& result);
  // A condition whose producer is gone (a reload removed its section).
  bool forget(std::string_view type);
  void set_threshold(int threshold) { health_.set_threshold(threshold); }

  // FirewallInSync's two inputs. The verdict: what became of the firewall
  // the node was asked to hold (Applied, Applying, InvalidSpec,
  // ApplyFailed; StaticAllowlist without a control plane).
  void firewall_verdict(ConditionStatus status, std::string_view reason, std::string_view message);
  // The verdict without a control plane: the static allowlist (`summary`:
  // what the firewall holds, FirewallKeeper::summary()) is what the node
  // was asked to hold.
  void firewall_standalone(std::string_view summary);
  // The live check (health rounds, reconciling): a failure is
  // FirewallInSync=False (ReconcileFailed) whatever the verdict; success
  // brings the verdict back.
  void firewall_checked(const Result<void>& live);

  const Conditions& all() const { return health_.conditions(); }
  const Condition* find(std::string_view type) const { return all().find(type); }

  [[nodiscard]] Subscription listen(Listener listener);

 private:
  bool changed(std::string_view type, const std::vector<ConditionTransition>& transitions,
               const Condition* before_copy);
  void show_firewall();

  const Clock& clock_;
  HealthConditions health_;
  Condition verdict_;
  std::string live_error_;  // empty: the live rules can be checked
  std::map<std::uint64_t, Listener> listeners_;
  std::uint64_t next_id_ = 1;
};

}  // namespace tetherd
