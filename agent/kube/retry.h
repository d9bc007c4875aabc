#pragma once
// Retrying a Kubernetes call: the policy (core/backoff.h) decides how long
// to wait; the waiting and the randomness are handed in, so tests see every
// delay the policy chose without waiting for any of them.

#include <functional>

#include <boost/asio/awaitable.hpp>

#include "agent/core/backoff.h"
#include "agent/core/clock.h"
#include "agent/kube/api_error.h"

namespace tetherd::kube {

struct RetryContext {
  BackoffPolicy policy;
  // Waits `delay` on the event loop (an Asio timer in the daemon).
  std::function<boost::asio::awaitable<void>(Duration)> sleep;
  // A number in [0, 1) for the jitter.
  std::function<double()> random;
  // The monotonic clock the waits are on (the session judges a connection
  // stable after a minute of it).
  std::function<MonoTime()> now;
};

// The daemon's: a timer of `clock` (core/timer.h) on the current executor,
// and a seeded PRNG. `clock` must outlive the context.
RetryContext default_retry_context(const Clock& clock, BackoffPolicy policy = {});

// Runs `op` (returning awaitable<ApiResult<T>>) until it succeeds, fails
// with an error that is not retryable (a 403 does not get better by asking
// again), or `max_attempts` have been made. `on_retry` hears each failure
// and the delay chosen.
template <class T, class Op>
boost::asio::awaitable<ApiResult<T>> with_retries(
    Op op, RetryContext retry, unsigned max_attempts,
    std::function<void(const ApiError&, Duration)> on_retry = {}) {
  for (unsigned attempt = 0;; ++attempt) {
    ApiResult<T> result = co_await op();
    if (result || !result.error().retryable() || attempt + 1 >= max_attempts) co_return result;
    const auto delay =
        retry_delay(retry.policy, attempt, result.error().retry_after, retry.random());
    if (on_retry) on_retry(result.error(), delay);
    co_await retry.sleep(delay);
  }
}

}  // namespace tetherd::kube
