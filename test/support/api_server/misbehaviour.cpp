#include "test/support/api_server/misbehaviour.h"

namespace tetherd::test::apiserver {

bool is_tls_misbehaviour(Misbehaviour what) {
  return what == Misbehaviour::kWrongHostCert || what == Misbehaviour::kExpiredCert;
}

void MisbehaviourArm::arm(MisbehaviourSpec spec) {
  std::lock_guard lock(mutex_);
  spec_ = std::move(spec);
}

std::optional<MisbehaviourSpec> MisbehaviourArm::take_locked() {
  if (spec_.what == Misbehaviour::kNone || spec_.times <= 0) return std::nullopt;
  MisbehaviourSpec taken = spec_;
  if (--spec_.times <= 0) spec_ = MisbehaviourSpec{};
  return taken;
}

std::optional<MisbehaviourSpec> MisbehaviourArm::take_for_request(std::string_view method,
                                                                  std::string_view target,
                                                                  bool watch) {
  std::lock_guard lock(mutex_);
  if (is_tls_misbehaviour(spec_.what)) return std::nullopt;
  bool watch_kind =
      spec_.what == Misbehaviour::kGoneHttp || spec_.what == Misbehaviour::kStallWatch;
  if ((spec_.watch_only || watch_kind) && !watch) return std::nullopt;
  if (!spec_.path_contains.empty() && target.find(spec_.path_contains) == std::string_view::npos)
    return std::nullopt;
  if (!spec_.method.empty() && method != spec_.method) return std::nullopt;
  return take_locked();
}

std::optional<MisbehaviourSpec> MisbehaviourArm::take_for_connection() {
  std::lock_guard lock(mutex_);
  if (!is_tls_misbehaviour(spec_.what)) return std::nullopt;
  return take_locked();
}

}  // namespace tetherd::test::apiserver
