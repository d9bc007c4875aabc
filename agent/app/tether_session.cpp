// The tether's session events: the Reflector's errors and state, as the
// Connected condition and one journal line per outage.
#include "agent/app/tether.h"

namespace tetherd {

namespace {

// The Connected condition's reason for a failure: what an operator reading
// `kubectl get edgenode -o yaml` or `tetherctl status` should look into.
std::string_view unreachable_reason(const kube::ApiError& e) {
  switch (e.kind) {
    case kube::ErrorKind::kTls:
      return "TLSHandshakeFailed";
    case kube::ErrorKind::kTimeout:
      return "Timeout";
    case kube::ErrorKind::kTransport:
      return "Unreachable";
    case kube::ErrorKind::kDecode:
    case kube::ErrorKind::kTooLarge:
    case kube::ErrorKind::kInvalid:
      return "BadResponse";
    case kube::ErrorKind::kHttp:
      break;
  }
  if (e.code == 401) return "Unauthorized";
  if (e.code == 403) return "Forbidden";
  if (e.code == 404) return "NotFound";
  if (e.code == 429) return "Throttled";
  if (e.code >= 500) return "ServerError";
  return "RequestFailed";
}

}  // namespace

void Tether::on_error(const kube::ApiError& error, Duration retry_in) {
  // One line per outage, and one more only when the kind of trouble
  // changes (unreachable, then a TLS failure): not one per retry.
  const std::string_view reason = unreachable_reason(error);
  const bool news = !last_error_ || unreachable_reason(*last_error_) != reason;
  last_error_ = error;
  if (news) {
    log_.warning("controlplane-unreachable",
                 kube::describe(error) + "; retrying in " +
                     std::to_string(
                         std::chrono::duration_cast<std::chrono::milliseconds>(retry_in).count()) +
                     " ms, the rules in force are kept",
                 {{"CONTROL_PLANE", server_}});
  }
  set_condition(condition_type::kConnected, ConditionStatus::kFalse, reason, kube::describe(error));
  changed();
}

void Tether::on_state(SessionState state) {
  if (reflector_.session().connected()) {
    const Condition* connected = conditions_.find(condition_type::kConnected);
    if (last_error_ || !connected || connected->status != ConditionStatus::kTrue) {
      ++stats_.connects;
      log_.notice("controlplane-connected",
                  "watching EdgeNode " + namespace_ + "/" + node_ + " at " + server_,
                  {{"CONTROL_PLANE", server_}, {"NODE", node_}});
    }
    last_error_.reset();
    // The server answers watches: the followers stop backing off.
    for (auto* follower : {issuer_follower_.get(), bundle_follower_.get()})
      if (follower) follower->server_back();
    set_condition(condition_type::kConnected, ConditionStatus::kTrue, "Watching",
                  "watching EdgeNode " + namespace_ + "/" + node_ + " at " + server_);
  } else if (state == SessionState::kConnecting && !last_error_) {
    set_condition(condition_type::kConnected, ConditionStatus::kUnknown, "Connecting",
                  "connecting to " + server_);
  }
  changed();
}

}  // namespace tetherd
