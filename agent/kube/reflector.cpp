#include "agent/kube/reflector.h"

#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tetherd::kube {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

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

void Reflector::wake() {
  woken_ = true;
  if (wake_timer_) wake_timer_->cancel();
}

awaitable<void> Reflector::pause(Duration delay) {
  if (!woken_ && !stopped_) {
    wake_timer_->expires_at(asio::steady_timer::time_point::max());
    auto sleep = retry_.sleep(delay);
    auto woken = wake_timer_->async_wait(asio::as_tuple(asio::use_awaitable));
    // Whichever ends first cancels the other.
    co_await (std::move(sleep) || std::move(woken));
  }
  woken_ = false;
}

Duration Reflector::next_delay() {
  return retry_delay(retry_.policy, attempt_++, std::nullopt, retry_.random());
}

awaitable<void> Reflector::back_off(const ApiError& error) {
  ++stats_.failures;
  const auto delay = retry_delay(retry_.policy, attempt_++, error.retry_after, retry_.random());
  handler_.on_error(error, delay);
  co_await pause(delay);
}

awaitable<void> Reflector::run() {
  wake_timer_.emplace(co_await asio::this_coro::executor);
  while (!stopped_) {
    const bool listing = resource_version_.empty();
    if (listing) {
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
    KubeClient::EventHandler on_event = [this](const WatchEvent& event) {
      resource_version_ = event.resource_version();
      attempt_ = 0;  // the server is answering: the next failure starts small again
      handler_.on_event(event);
    };
    auto watched = co_await client_.watch(collection_, std::move(options), std::move(on_event));
    if (stopped_) break;
    if (!watched) {
      co_await back_off(watched.error());
      continue;
    }
    if (watched->expired) {
      // Our resourceVersion is older than the server keeps: whatever
      // happened meanwhile is only in a fresh list, made at once...
      ++stats_.relists_after_gone;
      resource_version_.clear();
      // ...unless the version came from a list just made: a server (or a
      // proxy) that answers every watch with 410 must not get a busy loop.
      if (listing) co_await pause(next_delay());
    } else if (watched->events == 0) {
      // Ended with nothing in it (a short timeoutSeconds with bookmarks
      // off): harmless once, a busy loop if it happens at once, always.
      co_await pause(next_delay());
    }
  }
}

}  // namespace tetherd::kube
