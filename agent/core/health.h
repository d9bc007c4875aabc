#pragma once
// The node's conditions as the health side sees them: probe results damped
// against flapping, facts from the other parts taken at once, and the list
// of transitions for the journal. Pure: time is passed in.
//
// Damping: a probe's status must hold for `threshold` rounds in a row
// before the condition flips (kubelet's probes do the same with
// failureThreshold/successThreshold). The first result for a condition is
// taken at once: a node that has just started should not report Unknown
// for `threshold` rounds. A new reason or message with the same status is
// taken at once too (it is not a transition). A pending change that does
// not hold (the old status comes back) starts over.
//
// Facts (Connected from the session, CertificatesValid from the issuer
// rotation, FirewallInSync from an update accepted or refused) are events,
// not samples: they are never damped.

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/node_status.h"
#include "agent/core/probe.h"

namespace tetherd {

struct ConditionTransition {
  std::string type;
  bool first = false;  // the condition did not exist before
  ConditionStatus from = ConditionStatus::kUnknown;
  ConditionStatus to = ConditionStatus::kUnknown;
  std::string reason;
  std::string message;
  friend bool operator==(const ConditionTransition&, const ConditionTransition&) = default;
};

class HealthConditions {
 public:
  // `threshold` below 1 counts as 1 (no damping).
  explicit HealthConditions(int threshold);

  // A probe round's result for `type`. Returns the transitions it caused,
  // Ready's included (empty when damped or unchanged).
  std::vector<ConditionTransition> probed(std::string_view type, const ProbeResult& result,
                                          WallTime now);
  // A fact, taken at once.
  std::vector<ConditionTransition> reported(std::string_view type, ConditionStatus status,
                                            std::string_view reason, std::string_view message,
                                            WallTime now);

  // A condition whose producer is gone (the control plane's session after a
  // reload removed it). Returns Ready's transition, if any.
  std::vector<ConditionTransition> forget(std::string_view type, WallTime now);
  // A reload's health.threshold: pending changes keep the rounds they have.
  void set_threshold(int threshold) { threshold_ = std::max(threshold, 1); }

  const Conditions& conditions() const { return conditions_; }
  // Rounds the pending change of `type` has held so far (0: none pending).
  int pending(std::string_view type) const;

 private:
  std::vector<ConditionTransition> apply(std::string_view type, ConditionStatus status,
                                         std::string_view reason, std::string_view message,
                                         WallTime now);

  struct Pending {
    ConditionStatus status = ConditionStatus::kUnknown;
    int rounds = 0;
  };
  int threshold_;
  Conditions conditions_;
  std::map<std::string, Pending, std::less<>> pending_;
};

}  // namespace tetherd
