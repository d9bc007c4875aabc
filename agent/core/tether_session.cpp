#include "agent/core/tether_session.h"

namespace tetherd {

std::string_view to_string(SessionState state) {
  switch (state) {
    case SessionState::kDisconnected:
      return "Disconnected";
    case SessionState::kConnecting:
      return "Connecting";
    case SessionState::kListing:
      return "Listing";
    case SessionState::kWatching:
      return "Watching";
    case SessionState::kBackoff:
      return "Backoff";
    case SessionState::kSuspended:
      return "Suspended";
  }
  return "?";
}

const SessionStep& TetherSession::go(SessionState state, SessionStep::Kind kind, bool redial) {
  state_ = state;
  step_ = SessionStep{};
  step_.kind = kind;
  step_.id = next_id_++;
  step_.redial = redial;
  if (kind == SessionStep::Kind::kWatch) step_.resource_version = resource_version_;
  return step_;
}

const SessionStep& TetherSession::start(MonoTime) {
  if (state_ != SessionState::kDisconnected) return step_;
  attempt_ = 0;
  up_since_.reset();
  return go(SessionState::kConnecting, SessionStep::Kind::kList);
}

const SessionStep& TetherSession::stop() {
  if (state_ == SessionState::kDisconnected) return step_;
  up_since_.reset();
  return go(SessionState::kDisconnected, SessionStep::Kind::kIdle, /*redial=*/true);
}

const SessionStep& TetherSession::listed(std::uint64_t id, MonoTime now,
                                         std::string resource_version) {
  if (!current(id) || step_.kind != SessionStep::Kind::kList) return step_;
  resource_version_ = std::move(resource_version);
  if (!up_since_) up_since_ = now;
  watch_follows_list_ = true;
  watch_started_ = now;
  return go(SessionState::kWatching, SessionStep::Kind::kWatch);
}

const SessionStep& TetherSession::watch_opened(std::uint64_t id, MonoTime now) {
  if (!current(id) || step_.kind != SessionStep::Kind::kWatch) return step_;
  if (!up_since_) up_since_ = now;
  // The same step goes on: the watch that just opened is the one running.
  state_ = SessionState::kWatching;
  return step_;
}

void TetherSession::event(std::uint64_t id, std::string resource_version) {
  if (!current(id) || step_.kind != SessionStep::Kind::kWatch) return;
  if (!resource_version.empty()) resource_version_ = std::move(resource_version);
}

const SessionStep& TetherSession::watch_ended(std::uint64_t id, MonoTime now, bool expired,
                                              std::size_t events, double unit) {
  if (!current(id) || step_.kind != SessionStep::Kind::kWatch) return step_;
  if (expired) {
    // Our resourceVersion is older than the server keeps: whatever happened
    // meanwhile is only in a fresh list...
    resource_version_.clear();
    // ...made at once, unless the version came from a list just made: a
    // server (or a proxy) that answers every watch with 410 gets a backoff,
    // not a busy loop.
    if (watch_follows_list_)
      return back_off(now, SessionFailure{.retry_after = std::nullopt, .server_answered = true},
                      unit);
    return go(SessionState::kListing, SessionStep::Kind::kList);
  }
  // A clean end (timeoutSeconds). One that came at once and empty is a
  // server that ends every watch: harmless once, a busy loop always.
  if (events == 0 && now - watch_started_ < policy_.backoff.base)
    return back_off(now, SessionFailure{.retry_after = std::nullopt, .server_answered = true},
                    unit);
  if (!up_since_) up_since_ = now;
  watch_follows_list_ = false;
  watch_started_ = now;
  return go(SessionState::kWatching, SessionStep::Kind::kWatch);
}

const SessionStep& TetherSession::failed(std::uint64_t id, MonoTime now,
                                         const SessionFailure& failure, double unit) {
  if (!current(id) || step_.kind == SessionStep::Kind::kWait) return step_;
  return back_off(now, failure, unit);
}

const SessionStep& TetherSession::back_off(MonoTime now, const SessionFailure& failure, double unit,
                                           bool redial) {
  // A connection that worked for a stable minute ended: this failure is
  // news, not the latest of a streak.
  if (up_since_ && now - *up_since_ >= policy_.stable_after) attempt_ = 0;
  up_since_.reset();
  const Duration delay = retry_delay(policy_.backoff, attempt_, failure.retry_after, unit);
  ++attempt_;
  lease_ends_backoff_ = !failure.retry_after && !failure.server_answered;
  go(SessionState::kBackoff, SessionStep::Kind::kWait, redial);
  step_.delay = delay;
  return step_;
}

const SessionStep& TetherSession::connect(MonoTime now, bool redial) {
  watch_started_ = now;
  watch_follows_list_ = false;
  return go(SessionState::kConnecting,
            resource_version_.empty() ? SessionStep::Kind::kList : SessionStep::Kind::kWatch,
            redial);
}

const SessionStep& TetherSession::backoff_elapsed(std::uint64_t id, MonoTime now) {
  if (!current(id) || state_ != SessionState::kBackoff) return step_;
  return connect(now, /*redial=*/false);
}

const SessionStep& TetherSession::resumed(MonoTime) {
  if (state_ == SessionState::kDisconnected) return step_;
  // The sleep was no failure of the server's: start small again. And list:
  // after hours asleep the resourceVersion is surely compacted away, so a
  // watch would only earn a 410 first.
  attempt_ = 0;
  up_since_.reset();
  resource_version_.clear();
  return go(SessionState::kConnecting, SessionStep::Kind::kList, /*redial=*/true);
}

const SessionStep& TetherSession::suspending() {
  if (state_ == SessionState::kDisconnected || state_ == SessionState::kSuspended) return step_;
  up_since_.reset();
  return go(SessionState::kSuspended, SessionStep::Kind::kIdle, /*redial=*/true);
}

const SessionStep& TetherSession::server_back(MonoTime now) {
  // As a Lease that worked: only a backoff after no answer ends (one the
  // server asked for, or after its errors, runs its course: a session that
  // relists after every 410 would otherwise drive the followers in step).
  if (state_ != SessionState::kBackoff || !lease_ends_backoff_) return step_;
  return connect(now, /*redial=*/false);
}

const SessionStep& TetherSession::lease_result(MonoTime now, LeaseOutcome outcome, double unit) {
  if (outcome == LeaseOutcome::kUnreachable) {
    if (state_ == SessionState::kWatching) return back_off(now, {}, unit, /*redial=*/true);
    return step_;
  }
  // The server is there. That ends a backoff only when the failure behind
  // it was no answer at all: a wait the server asked for (Retry-After) is
  // kept, also when the Lease works again; a cheap PUT that gets through
  // says little about an expensive list (the review of the simulation's
  // first fix, which cut such waits short).
  if (state_ == SessionState::kBackoff && lease_ends_backoff_)
    return connect(now, /*redial=*/false);
  return step_;
}

}  // namespace tetherd
