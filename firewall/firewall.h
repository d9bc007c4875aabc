#pragma once
// The firewall as the daemon sees it: a policy from the configuration, the
// control plane's desired sources, and a backend. update() validates a new
// desired set whole and applies it, or rejects it and keeps the last good
// one in force; reconcile() reads the kernel back and repairs drift
// (someone's `nft flush ruleset`, a hand-edited set).

#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "agent/core/result.h"
#include "firewall/allowlist.h"
#include "firewall/backend.h"

namespace tetherd::firewall {

class Firewall {
 public:
  Firewall(Backend& backend, Policy policy, std::vector<boost::asio::ip::address> node_addresses)
      : backend_(backend),
        policy_(std::move(policy)),
        node_addresses_(std::move(node_addresses)),
        desired_(build_allowlist(policy_, control_plane_, node_addresses_)) {}

  // Validates and applies. On a rejected update nothing changes, neither the
  // kernel nor the last good desired state, and the error says why.
  Result<void> update(const DesiredSources& desired);

  // What reconcile() found.
  enum class Drift { kNone, kRepaired, kMissing };
  // Reads the live rules and re-applies when they differ from what they
  // should be. Before any update(), the desired set is the static one.
  Result<Drift> reconcile();

  // Changes of the node's own addresses or the policy (config reload).
  Result<void> set_node_addresses(std::vector<boost::asio::ip::address> addresses);
  Result<void> set_policy(Policy policy);

  const Allowlist& desired() const { return desired_; }
  const DesiredSources& last_good() const { return last_good_; }
  // The cloud's sources as configured: firewall.allow, then the control
  // plane's (not merged, nor cut by the node's own addresses).
  std::vector<Cidr> cloud_sources() const;
  // The kernel's record of who reached the node, as the last reconcile()
  // read it; nullopt when the backend keeps none, or the table was just
  // made anew (the record starts afresh).
  const std::optional<Evidence>& evidence() const { return evidence_; }

 private:
  Result<void> apply_current();

  Backend& backend_;
  Policy policy_;
  std::vector<boost::asio::ip::address> node_addresses_;
  DesiredSources last_good_;
  std::vector<Cidr> control_plane_;
  Allowlist desired_;
  std::optional<Evidence> evidence_;
};

}  // namespace tetherd::firewall
