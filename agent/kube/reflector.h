#pragma once
// Keeps a caller in step with a set of objects the way client-go's
// reflector does: list, then watch from the list's resourceVersion; resume
// a watch that ended from the last resourceVersion seen; list again when
// the server says that version is gone (410); after any failure, wait
// (Retry-After, else full jitter) and go on. It never gives up: a node
// whose control plane is away for hours keeps trying.

#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

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
};

struct ReflectorStats {
  std::size_t lists = 0;
  std::size_t watches = 0;
  std::size_t relists_after_gone = 0;
  std::size_t failures = 0;
};

class Reflector {
 public:
  Reflector(KubeClient& client, std::string collection, std::string field_selector,
            WatchOptions watch, RetryContext retry, ReflectorHandler& handler);

  // Runs until stop(); returns then. The Reflector must outlive it.
  boost::asio::awaitable<void> run();
  // Ends run() at its next step, cutting a backoff short; call
  // disconnect_all() on the client as well to end a watch in progress.
  void stop() {
    stopped_ = true;
    wake();
  }
  // Ends a backoff now (a resume from suspend: the control plane may well
  // be back, and a monotonic timer armed before the sleep is no guide).
  void wake();

  const std::string& resource_version() const { return resource_version_; }
  const ReflectorStats& stats() const { return stats_; }

 private:
  boost::asio::awaitable<void> back_off(const ApiError& error);
  boost::asio::awaitable<void> pause(Duration delay);
  Duration next_delay();

  KubeClient& client_;
  std::string collection_;
  std::string field_selector_;
  WatchOptions watch_;
  RetryContext retry_;
  ReflectorHandler& handler_;
  std::string resource_version_;
  unsigned attempt_ = 0;
  bool stopped_ = false;
  bool woken_ = false;
  std::optional<boost::asio::steady_timer> wake_timer_;  // made in run(), on its executor
  ReflectorStats stats_;
};

}  // namespace tetherd::kube
