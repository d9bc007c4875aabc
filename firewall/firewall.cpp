#include "firewall/firewall.h"

#include <algorithm>

namespace tetherd::firewall {

Result<void> Firewall::update(const DesiredSources& desired) {
  auto sources = validate(desired, policy_);
  if (!sources) return make_error("desired firewall state rejected: " + sources.error().message);
  const std::vector<Cidr> previous = std::exchange(control_plane_, std::move(*sources));
  if (auto r = apply_current(); !r) {
    control_plane_ = previous;
    desired_ = build_allowlist(policy_, control_plane_, node_addresses_);
    return r;
  }
  last_good_ = desired;
  return {};
}

Result<void> Firewall::apply_current() {
  desired_ = build_allowlist(policy_, control_plane_, node_addresses_);
  return backend_.apply(desired_);
}

Result<Firewall::Drift> Firewall::reconcile() {
  auto live = backend_.read();
  if (!live) return live.error();
  const Drift drift =
      !live->has_value() ? Drift::kMissing
      : (!(*live)->rules_intact || (*live)->allowlist != backend_.enforceable(desired_))
          ? Drift::kRepaired
          : Drift::kNone;
  evidence_.reset();
  if (drift == Drift::kNone && backend_.records_evidence())
    evidence_ = std::move((*live)->evidence);
  if (drift == Drift::kNone) return drift;
  if (auto r = backend_.apply(desired_); !r) return r.error();
  return drift;
}

std::vector<Cidr> Firewall::cloud_sources() const {
  std::vector<Cidr> out = policy_.allow;
  for (const Cidr& c : control_plane_)
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  return out;
}

Result<void> Firewall::set_node_addresses(std::vector<boost::asio::ip::address> addresses) {
  node_addresses_ = std::move(addresses);
  return apply_current();
}

Result<void> Firewall::set_policy(Policy policy) {
  // The last good desired set must still fit the new policy (ports, size).
  auto sources = validate(last_good_, policy);
  if (!sources)
    return make_error("new firewall settings reject the current desired state: " +
                      sources.error().message);
  policy_ = std::move(policy);
  control_plane_ = std::move(*sources);
  return apply_current();
}

}  // namespace tetherd::firewall
