#pragma once
// What the server has seen, for tests to wait on: requests, connections,
// watches. Thread-safe; waits use a condition variable.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "test/support/api_server/api_server.h"

namespace tetherd::test::apiserver {

class Observations {
 public:
  void request(RequestRecord record) {
    change([&] { requests_.push_back(std::move(record)); });
  }
  void connection_accepted() {
    change([&] { ++connections_; });
  }
  void watch_opened() {
    change([&] {
      ++open_watches_;
      ++watches_started_;
    });
  }
  void watch_closed() {
    change([&] { --open_watches_; });
  }

  std::vector<RequestRecord> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }
  std::size_t connections() const {
    std::lock_guard lock(mutex_);
    return connections_;
  }
  std::size_t open_watches() const {
    std::lock_guard lock(mutex_);
    return open_watches_;
  }
  std::size_t watches_started() const {
    std::lock_guard lock(mutex_);
    return watches_started_;
  }

  // Waits until `done` (called under the lock with *this) holds.
  template <typename Predicate>
  bool wait(std::chrono::milliseconds timeout, Predicate done) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(*this); });
  }
  std::size_t request_count_locked() const { return requests_.size(); }
  std::size_t open_watches_locked() const { return open_watches_; }
  std::size_t watches_started_locked() const { return watches_started_; }

 private:
  template <typename Change>
  void change(Change apply) {
    {
      std::lock_guard lock(mutex_);
      apply();
    }
    changed_.notify_all();
  }

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<RequestRecord> requests_;
  std::size_t connections_ = 0;
  std::size_t open_watches_ = 0;
  std::size_t watches_started_ = 0;
};

}  // namespace tetherd::test::apiserver
