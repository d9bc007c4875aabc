#include "agent/kube/reflector.h"

#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tetherd::kube {

namespace asio = boost::asio;
using asio::awaitable;

RetryContext default_retry_context(BackoffPolicy policy) {
  RetryContext r;
  r.policy = policy;
  r.sleep = [](Duration delay) -> awaitable<void> {
    asio::steady_timer timer(co_await asio::this_coro::executor, delay);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  };
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  r.random = [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
  return r;
}

Reflector::Reflector(KubeClient& client, std::string collection, std::string field_selector,
                     WatchOptions watch, RetryContext retry, ReflectorHandler& handler)
    : client_(client),
      collection_(std::move(collection)),
      field_selector_(std::move(field_selector)),
      watch_(std::move(watch)),
      retry_(std::move(retry)),
      handler_(handler) {}

awaitable<void> Reflector::back_off(const ApiError& error) {
  ++stats_.failures;
  const auto delay = retry_delay(retry_.policy, attempt_++, error.retry_after, retry_.random());
  handler_.on_error(error, delay);
  co_await retry_.sleep(delay);
}

awaitable<void> Reflector::run() {
  while (!stopped_) {
    if (resource_version_.empty()) {
      ++stats_.lists;
      auto listed = co_await client_.list(collection_, field_selector_);
      if (stopped_) break;
      if (!listed) {
        co_await back_off(listed.error());
        continue;
      }
      resource_version_ = listed->resource_version;
      handler_.on_list(listed->items, resource_version_);
    }

    ++stats_.watches;
    WatchOptions options = watch_;
    options.resource_version = resource_version_;
    options.field_selector = field_selector_;
    auto watched = co_await client_.watch(collection_, options, [&](const WatchEvent& event) {
      resource_version_ = event.resource_version();
      attempt_ = 0;  // the server is answering: the next failure starts small again
      handler_.on_event(event);
    });
    if (stopped_) break;
    if (!watched) {
      co_await back_off(watched.error());
      continue;
    }
    if (watched->expired) {
      // Our resourceVersion is older than the server keeps: whatever
      // happened meanwhile is only in a fresh list.
      ++stats_.relists_after_gone;
      resource_version_.clear();
      continue;
    }
    if (watched->events == 0) {
      // Ended cleanly with nothing in it, e.g. a short timeoutSeconds with
      // bookmarks off. Harmless once; at once, in a loop, it would be a
      // busy loop against the API server.
      const auto delay = retry_delay(retry_.policy, attempt_++, std::nullopt, retry_.random());
      co_await retry_.sleep(delay);
    }
  }
}

}  // namespace tetherd::kube
