#pragma once
// The tether's connection to the control plane as a pure state machine: it
// decides what to do next (list, watch, wait) from what happened (a list or
// watch outcome, a lease renewal's result, a resume from suspend, a backoff
// timer firing) and `now`. The executor (kube::Reflector) does the I/O and
// reports back; nothing here waits, reads a clock or touches a socket, so
// every path is a table row in test/unit/agent/core/tether_session_test.cpp.
//
//   start, resume ─► Connecting ──list ok, or watch open──► Watching ◄─┐ clean end:
//                        ▲    │                                 │ │ └──┘ watch again
//         backoff timer  │    │ failure            410 Gone ◄───┘ │ failure, or a dead
//                        │    ▼                        ▼          │ peer seen by the lease
//                        Backoff ◄────── failure ── Listing       │
//                           ▲─────────────────────────────────────┘
//
//   any state but Disconnected ──suspending──► Suspended ──resume──► Connecting
//
// After a failure the session resumes the watch from the last
// resourceVersion, as client-go does, rather than listing again: ten
// thousand nodes coming back after a control-plane outage must not all
// list at once. Only 410 Gone (history compacted), start and resume list.
//
// Every step carries an id; an outcome reported with an older id (the watch
// that a resume tore down, say) is stale and changes nothing. That is how an
// input from outside the executor (resume, lease) takes effect at once: the
// owner applies it, then interrupts the executor, whose old operation ends
// with a stale outcome, and the executor picks up the new step.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/backoff.h"
#include "agent/core/clock.h"

namespace tetherd {

enum class SessionState {
  kDisconnected,  // not started, or stopped
  kConnecting,    // a list or watch with no answer yet (start, resume, after a backoff)
  kListing,       // listing again while the server answers (our resourceVersion expired)
  kWatching,      // a watch is open, or about to be reopened after a clean end
  kBackoff,       // waiting after a failure
  kSuspended,     // the machine is going to sleep: nothing until it resumes
};
std::string_view to_string(SessionState state);

struct SessionStep {
  enum class Kind { kIdle, kList, kWatch, kWait };
  Kind kind = Kind::kIdle;
  // Echoed back with the outcome: a report for an older step is ignored.
  std::uint64_t id = 0;
  // kWatch: where the watch starts (the list's, or the last event's).
  std::string resource_version;
  // kWait: how long (on any timer: an interruption comes as an input).
  Duration delay{};
  // The connection may be dead or stale (resume from suspend, a lease that
  // timed out): the owner must close every connection before the step, and
  // interrupt whatever the executor is doing.
  bool redial = false;
  friend bool operator==(const SessionStep&, const SessionStep&) = default;
};

// What a failure means to the session; the executor maps its errors here.
struct SessionFailure {
  // The server asked for this much patience (429/503 Retry-After).
  std::optional<Duration> retry_after;
  // The server answered, with an error (a 5xx, a 403): it is reachable, so
  // a Lease renewal that works says nothing new and must not cut the
  // backoff short (a brownout of the EdgeNode path would otherwise be
  // retried in step with the heartbeat).
  bool server_answered = false;
};

// How a Lease renewal went: renewed; refused by a server that is there
// (a 5xx, 429, 409, 403); or the server not reached (transport, timeout,
// TLS).
enum class LeaseOutcome { kRenewed, kAnswered, kUnreachable };

struct SessionPolicy {
  BackoffPolicy backoff;  // full jitter, base 1 s, cap 60 s
  // A connection that has lasted this long was a working one: the backoff
  // after its failure starts small again.
  Duration stable_after = std::chrono::minutes(1);
};

class TetherSession {
 public:
  explicit TetherSession(SessionPolicy policy = {}) : policy_(policy) {}

  SessionState state() const { return state_; }
  // The step to carry out now.
  const SessionStep& step() const { return step_; }
  // Retries since the connection last counted as stable.
  unsigned attempt() const { return attempt_; }
  // The last resourceVersion seen ("" before the first list).
  const std::string& resource_version() const { return resource_version_; }
  // The server is answering: a list or a watch succeeded and nothing has
  // failed since.
  bool connected() const {
    return state_ == SessionState::kListing || state_ == SessionState::kWatching;
  }

  // Each input returns the step to carry out next (the same as step()).
  const SessionStep& start(MonoTime now);
  const SessionStep& stop();

  // Outcomes of the executor's steps.
  const SessionStep& listed(std::uint64_t id, MonoTime now, std::string resource_version);
  // The server accepted the watch (200 and its headers).
  const SessionStep& watch_opened(std::uint64_t id, MonoTime now);
  // A watch event or bookmark: the watch goes on; only the resourceVersion moves.
  void event(std::uint64_t id, std::string resource_version);
  // The server ended the watch: `expired` for 410 Gone; `events` is how
  // many arrived (bookmarks included).
  const SessionStep& watch_ended(std::uint64_t id, MonoTime now, bool expired, std::size_t events,
                                 double unit);
  // A list or watch failed. `unit` is a random number in [0, 1) for the jitter.
  const SessionStep& failed(std::uint64_t id, MonoTime now, const SessionFailure& failure,
                            double unit);
  // The backoff's timer fired.
  const SessionStep& backoff_elapsed(std::uint64_t id, MonoTime now);

  // Inputs from outside the executor. When one changes the step (a new id),
  // the owner must interrupt the executor; with `redial`, after closing
  // every connection.
  //
  // The machine woke from suspend: every connection is suspect and the
  // backoff's timer stood still while it slept. Redial at once.
  const SessionStep& resumed(MonoTime now);
  // The machine is about to sleep (logind's PrepareForSleep): close every
  // connection and stay quiet; a redial now would only be cut by the sleep.
  // resumed() ends it.
  const SessionStep& suspending();
  // A Lease renewal's result. A renewal that could not reach the server
  // (transport, timeout, TLS) while watching means the watch's connection
  // is most likely dead too: redial now rather than in minutes, when the
  // watch's idle deadline would notice. A renewal that worked during a
  // backoff after the server could not be reached (no answer, no
  // Retry-After) means the server is back: connect now. A backoff after an
  // answer (a 5xx, a Retry-After) runs its course.
  const SessionStep& lease_result(MonoTime now, LeaseOutcome outcome, double unit);
  // Another session with the same server began watching: the server is
  // back. A backoff after no answer at all ends now, as for a Lease that
  // worked (a follower of a few objects backs off long, and waits for this).
  const SessionStep& server_back(MonoTime now);

 private:
  const SessionStep& go(SessionState state, SessionStep::Kind kind, bool redial = false);
  const SessionStep& connect(MonoTime now, bool redial);
  const SessionStep& back_off(MonoTime now, const SessionFailure& failure, double unit,
                              bool redial = false);
  bool current(std::uint64_t id) const {
    return id == step_.id && state_ != SessionState::kDisconnected;
  }

  SessionPolicy policy_;
  SessionState state_ = SessionState::kDisconnected;
  SessionStep step_;
  std::uint64_t next_id_ = 1;
  unsigned attempt_ = 0;
  std::string resource_version_;
  // When the current run of successes began (the first list that worked).
  std::optional<MonoTime> up_since_;
  MonoTime watch_started_{};
  bool watch_follows_list_ = false;
  bool lease_ends_backoff_ = false;  // the backoff began with no answer from the server
};

}  // namespace tetherd
