#include "agent/core/node_conditions.h"

#include <optional>
#include <utility>

namespace tetherd {

NodeConditions::Subscription& NodeConditions::Subscription::operator=(
    Subscription&& other) noexcept {
  if (this != &other) {
    reset();
    board_ = std::exchange(other.board_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void NodeConditions::Subscription::reset() {
  if (board_) board_->listeners_.erase(id_);
  board_ = nullptr;
}

NodeConditions::Subscription NodeConditions::listen(Listener listener) {
  const std::uint64_t id = next_id_++;
  listeners_.emplace(id, std::move(listener));
  return Subscription(this, id);
}

namespace {

std::optional<Condition> copy_of(const Conditions& all, std::string_view type) {
  const Condition* c = all.find(type);
  return c ? std::optional<Condition>(*c) : std::nullopt;
}

}  // namespace

bool NodeConditions::report(std::string_view type, ConditionStatus status, std::string_view reason,
                            std::string_view message) {
  const auto before = copy_of(all(), type);
  auto transitions = health_.reported(type, status, reason, message, clock_.wall());
  return changed(type, transitions, before ? &*before : nullptr);
}

bool NodeConditions::probed(std::string_view type, const ProbeResult& result) {
  const auto before = copy_of(all(), type);
  auto transitions = health_.probed(type, result, clock_.wall());
  return changed(type, transitions, before ? &*before : nullptr);
}

bool NodeConditions::forget(std::string_view type) {
  const auto before = copy_of(all(), type);
  if (type == condition_type::kFirewallInSync) {
    verdict_ = {};
    live_error_.clear();
  }
  auto transitions = health_.forget(type, clock_.wall());
  return changed(type, transitions, before ? &*before : nullptr);
}

bool NodeConditions::changed(std::string_view type,
                             const std::vector<ConditionTransition>& transitions,
                             const Condition* before) {
  const Condition* after = find(type);
  const bool same = before == nullptr ? after == nullptr : after != nullptr && *after == *before;
  if (same && transitions.empty()) return false;
  const Change change{std::string(type), transitions};
  // A copy: a listener may end its own subscription.
  const auto listeners = listeners_;
  for (const auto& [id, listener] : listeners) {
    if (listeners_.contains(id)) listener(change);
  }
  return true;
}

void NodeConditions::firewall_verdict(ConditionStatus status, std::string_view reason,
                                      std::string_view message) {
  verdict_ = {std::string(condition_type::kFirewallInSync),
              status,
              std::string(reason),
              std::string(message),
              {}};
  show_firewall();
}

void NodeConditions::firewall_standalone(std::string_view summary) {
  firewall_verdict(ConditionStatus::kTrue, "StaticAllowlist",
                   "the static allowlist is in force (" + std::string(summary) + ")");
}

void NodeConditions::firewall_checked(const Result<void>& live) {
  live_error_ = live ? std::string() : live.error().message;
  show_firewall();
}

void NodeConditions::show_firewall() {
  if (!live_error_.empty()) {
    report(condition_type::kFirewallInSync, ConditionStatus::kFalse, "ReconcileFailed",
           "the firewall cannot be checked or repaired: " + live_error_);
  } else if (!verdict_.type.empty()) {
    report(condition_type::kFirewallInSync, verdict_.status, verdict_.reason, verdict_.message);
  }
}

}  // namespace tetherd
