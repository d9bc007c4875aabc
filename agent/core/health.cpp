#include "agent/core/health.h"

#include <algorithm>

namespace tetherd {
namespace {

struct Before {
  bool existed = false;
  ConditionStatus status = ConditionStatus::kUnknown;
};

Before before(const Conditions& conditions, std::string_view type) {
  const Condition* c = conditions.find(type);
  return c == nullptr ? Before{} : Before{true, c->status};
}

}  // namespace

HealthConditions::HealthConditions(int threshold) : threshold_(std::max(threshold, 1)) {}

int HealthConditions::pending(std::string_view type) const {
  auto it = pending_.find(type);
  return it == pending_.end() ? 0 : it->second.rounds;
}

std::vector<ConditionTransition> HealthConditions::probed(std::string_view type,
                                                          const ProbeResult& result, WallTime now) {
  const Condition* current = conditions_.find(type);
  if (current == nullptr || current->status == result.status) {
    pending_.erase(std::string(type));
    return apply(type, result.status, result.reason, result.message, now);
  }
  auto it = pending_.find(type);
  if (it == pending_.end()) it = pending_.emplace(std::string(type), Pending{}).first;
  Pending& p = it->second;
  if (p.status != result.status) p = Pending{result.status, 0};
  if (++p.rounds < threshold_) return {};
  pending_.erase(it);
  return apply(type, result.status, result.reason, result.message, now);
}

std::vector<ConditionTransition> HealthConditions::reported(std::string_view type,
                                                            ConditionStatus status,
                                                            std::string_view reason,
                                                            std::string_view message,
                                                            WallTime now) {
  pending_.erase(std::string(type));
  return apply(type, status, reason, message, now);
}

std::vector<ConditionTransition> HealthConditions::forget(std::string_view type, WallTime now) {
  pending_.erase(std::string(type));
  const Before ready_was = before(conditions_, condition_type::kReady);
  if (!conditions_.erase(type, now)) return {};
  const Condition* ready = conditions_.find(condition_type::kReady);
  if (ready == nullptr || (ready_was.existed && ready_was.status == ready->status)) return {};
  return {{ready->type, !ready_was.existed, ready_was.status, ready->status, ready->reason,
           ready->message}};
}

std::vector<ConditionTransition> HealthConditions::apply(std::string_view type,
                                                         ConditionStatus status,
                                                         std::string_view reason,
                                                         std::string_view message, WallTime now) {
  const Before was = before(conditions_, type);
  const Before ready_was = before(conditions_, condition_type::kReady);
  if (!conditions_.set(type, status, reason, message, now)) return {};
  std::vector<ConditionTransition> out;
  auto note = [&](std::string_view t, const Before& b) {
    const Condition* c = conditions_.find(t);
    if (c == nullptr || (b.existed && b.status == c->status)) return;
    out.push_back({c->type, !b.existed, b.status, c->status, c->reason, c->message});
  };
  note(type, was);
  note(condition_type::kReady, ready_was);
  return out;
}

}  // namespace tetherd
