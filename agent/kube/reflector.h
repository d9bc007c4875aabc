#pragma once
// Keeps a caller in step with a set of objects the way client-go's
// reflector does: list, then watch from the list's resourceVersion; resume
// a watch that ended from the last resourceVersion seen; list again when
// the server says that version is gone (410); after any failure, wait
// (Retry-After, else full jitter) and go on. It never gives up: a node
// whose control plane is away for hours keeps trying.
//
// The decisions are core/tether_session.h's pure state machine; the
// Reflector carries out its steps and reports what happened.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "agent/core/tether_session.h"
#include "agent/kube/kube_client.h"
#include "agent/kube/retry.h"

namespace tetherd::kube {

class ReflectorHandler {
 public:
  virtual ~ReflectorHandler() = default;
  // The whole current state (after a first list or a relist): replace.
  virtual void on_list(const std::vector<boost::json::object>& items,
                       const std::string& resource_version) = 0;
  // A change (ADDED, MODIFIED, DELETED) or a BOOKMARK.
  virtual void on_event(const WatchEvent& event) = 0;
  // A failure; the next attempt comes after `retry_in`.
  virtual void on_error(const ApiError& error, Duration retry_in) = 0;
  // The session moved to another state.
  virtual void on_state(SessionState) {}
};

struct ReflectorStats {
  std::size_t lists = 0;
  std::size_t watches = 0;
  std::size_t watches_opened = 0;  // accepted by the server (200)
  std::size_t relists_after_gone = 0;
  std::size_t failures = 0;
  std::size_t redials = 0;
};

class Reflector {
 public:
  Reflector(KubeClient& client, std::string collection, std::string field_selector,
            WatchOptions watch, RetryContext retry, ReflectorHandler& handler,
            Duration stable_after = SessionPolicy{}.stable_after);

  // Runs until stop(); returns then. The Reflector must outlive it.
  boost::asio::awaitable<void> run();
  // Ends run() at its next step: closes the client's connections (unless
  // told not to: a client shared with other Reflectors), cuts a backoff
  // short. A stop before run() has begun (in the turn that spawned it)
  // ends it at once: it asks nothing.
  void stop(bool close_connections = true);
  // The machine woke from suspend: close every connection (they are
  // probably dead, and TCP would take many minutes to say so) and list
  // again now, whatever the backoff said.
  void resumed();
  // The machine is going to sleep: close every connection and do nothing
  // until resumed().
  void suspending();
  // A Lease renewal's outcome on the same control plane: evidence of a
  // server that is back, or of a dead connection (TetherSession::lease_result).
  void lease_renewed();
  void lease_failed(const ApiError& error);
  // Another Reflector on the same server began watching: a backoff ends
  // now (TetherSession::server_back).
  void server_back();

  const TetherSession& session() const { return session_; }
  const std::string& resource_version() const { return session_.resource_version(); }
  const ReflectorStats& stats() const { return stats_; }

 private:
  boost::asio::awaitable<void> list(SessionStep step);
  boost::asio::awaitable<void> watch(SessionStep step);
  boost::asio::awaitable<void> wait(SessionStep step);
  bool current(const SessionStep& step) const { return step.id == session_.step().id; }
  // `opened`: a watch whose 200 came (then cut): the server answered.
  void failed(const SessionStep& step, const ApiError& error, bool opened = false);
  // After an input from outside run(): tell the handler of a new state, and
  // interrupt whatever run() is doing if the step changed.
  void after_outside_input(SessionState state_before, std::uint64_t step_before);
  void report_state(SessionState before);
  void lease_result(LeaseOutcome outcome);

  KubeClient& client_;
  std::string collection_;
  std::string field_selector_;
  WatchOptions watch_;
  RetryContext retry_;
  ReflectorHandler& handler_;
  TetherSession session_;
  std::optional<boost::asio::steady_timer> wake_timer_;  // made in run(), on its executor
  std::function<void()> cut_watch_;                      // ends the watch under way alone (stop())
  bool stopped_ = false;                                 // for good (stop())
  ReflectorStats stats_;
};

}  // namespace tetherd::kube
