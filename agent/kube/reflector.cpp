#include "agent/kube/reflector.h"

#include <memory>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/core/timer.h"

namespace tetherd::kube {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

RetryContext default_retry_context(const Clock& clock, BackoffPolicy policy) {
  RetryContext r;
  r.policy = policy;
  r.sleep = [&clock](Duration delay) -> awaitable<void> {
    Timer timer(co_await asio::this_coro::executor, clock);
    timer.expires_after(delay);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  };
  r.random = seeded_unit_random();
  // The clock the waits run on.
  r.now = [&clock] { return clock.monotonic(); };
  return r;
}

Reflector::Reflector(KubeClient& client, std::string collection, std::string field_selector,
                     WatchOptions watch, RetryContext retry, ReflectorHandler& handler,
                     Duration stable_after)
    : client_(client),
      collection_(std::move(collection)),
      field_selector_(std::move(field_selector)),
      watch_(std::move(watch)),
      retry_(std::move(retry)),
      handler_(handler),
      session_(SessionPolicy{retry_.policy, stable_after}) {}

void Reflector::report_state(SessionState before) {
  if (session_.state() != before) handler_.on_state(session_.state());
}

void Reflector::after_outside_input(SessionState state_before, std::uint64_t step_before) {
  report_state(state_before);
  if (session_.step().id == step_before) return;
  ++stats_.redials;
  // Ends a watch or list in flight (their outcome is stale now), then the
  // backoff if that is where run() waits.
  if (session_.step().redial) client_.http().disconnect_all();
  if (wake_timer_) wake_timer_->cancel();
}

void Reflector::stop(bool close_connections) {
  stopped_ = true;
  const auto state = session_.state();
  const auto step = session_.step().id;
  session_.stop();
  if (close_connections) return after_outside_input(state, step);
  // A list in flight on a client shared with others ends by itself; its
  // outcome is not current, and dropped. A watch is cut alone: it would
  // otherwise stay open until its timeout, or for as long as a proxy that
  // ignores timeoutSeconds keeps it.
  report_state(state);
  if (wake_timer_) wake_timer_->cancel();
  if (auto cut = std::exchange(cut_watch_, nullptr)) cut();
}

void Reflector::resumed() {
  const auto state = session_.state();
  const auto step = session_.step().id;
  session_.resumed(retry_.now());
  after_outside_input(state, step);
}

void Reflector::suspending() {
  const auto state = session_.state();
  const auto step = session_.step().id;
  session_.suspending();
  after_outside_input(state, step);
}

void Reflector::lease_renewed() {
  lease_result(LeaseOutcome::kRenewed);
}

void Reflector::lease_failed(const ApiError& error) {
  // Only a failure to reach the server says anything about the connection:
  // a 409 or a 403 came from a server that is there.
  lease_result(error.unreachable() ? LeaseOutcome::kUnreachable : LeaseOutcome::kAnswered);
}

void Reflector::server_back() {
  const auto state = session_.state();
  const auto step = session_.step().id;
  session_.server_back(retry_.now());
  after_outside_input(state, step);
}

void Reflector::lease_result(LeaseOutcome outcome) {
  const auto state = session_.state();
  const auto step = session_.step().id;
  session_.lease_result(retry_.now(), outcome, retry_.random());
  after_outside_input(state, step);
}

void Reflector::failed(const SessionStep& step, const ApiError& error, bool opened) {
  ++stats_.failures;
  const auto before = session_.state();
  // An error status, or an answer that is not Kubernetes': the server (or
  // whatever answers for it) is reachable. So it is when the watch had
  // opened (its 200 came) and was cut later: a Lease that works says
  // nothing new, and ending the backoff on it (or waking the followers)
  // drove a watch cut after every 200 at the session's pace (the node's
  // year, seed 119: 157 requests in ten minutes). (Not the session's
  // watching state: that begins when the list returns, before the 200.)
  const bool answered = error.reached() || opened;
  session_.failed(step.id, retry_.now(),
                  SessionFailure{.retry_after = error.retry_after, .server_answered = answered},
                  retry_.random());
  handler_.on_error(error, session_.step().delay);
  report_state(before);
}

awaitable<void> Reflector::list(SessionStep step) {
  ++stats_.lists;
  auto listed = co_await client_.list(collection_, field_selector_);
  if (!current(step)) co_return;  // a resume or a stop made it moot
  if (!listed) {
    failed(step, listed.error());
    co_return;
  }
  handler_.on_list(listed->items, listed->resource_version);
  const auto before = session_.state();
  session_.listed(step.id, retry_.now(), listed->resource_version);
  report_state(before);
}

awaitable<void> Reflector::watch(SessionStep step) {
  ++stats_.watches;
  WatchOptions options = watch_;
  // timeoutSeconds drawn between the option's and twice it, as client-go's
  // reflector does: watches begun together (a node's three, or a thousand
  // nodes' after the cloud's outage) do not all end and come back
  // together every five minutes.
  options.timeout = std::chrono::seconds(static_cast<std::chrono::seconds::rep>(
      static_cast<double>(watch_.timeout.count()) * (1.0 + retry_.random())));
  options.resource_version = step.resource_version;
  options.field_selector = field_selector_;
  KubeClient::EventHandler on_event = [this, step](const WatchEvent& event) {
    if (!current(step)) return;
    session_.event(step.id, event.resource_version());
    handler_.on_event(event);
  };
  auto opened = std::make_shared<bool>(false);  // the watch's 200 came
  std::function<void()> on_open = [this, step, opened] {
    *opened = true;
    if (!current(step)) return;
    ++stats_.watches_opened;
    const auto before = session_.state();
    session_.watch_opened(step.id, retry_.now());
    report_state(before);
  };
  // Named, not a temporary in the co_await: GCC 12 destroys such a
  // temporary twice.
  HttpsClient::Cut on_cut = [this, step](std::function<void()> cut) {
    // Stopped while it connected: ended as soon as it has its connection
    // (the cut comes with it).
    if (!current(step)) return cut();
    cut_watch_ = std::move(cut);
  };
  auto watched = co_await client_.watch(collection_, std::move(options), std::move(on_event),
                                        std::move(on_open), std::move(on_cut));
  cut_watch_ = nullptr;
  if (!current(step)) co_return;
  if (!watched) {
    failed(step, watched.error(), *opened);
    co_return;
  }
  if (watched->expired) ++stats_.relists_after_gone;
  const auto before = session_.state();
  session_.watch_ended(step.id, retry_.now(), watched->expired, watched->events, retry_.random());
  report_state(before);
}

awaitable<void> Reflector::wait(SessionStep step) {
  wake_timer_->expires_at(asio::steady_timer::time_point::max());
  auto sleep = retry_.sleep(step.delay);
  auto woken = wake_timer_->async_wait(asio::as_tuple(asio::use_awaitable));
  // Whichever ends first cancels the other: the delay, or an input from
  // outside (resume, stop, a lease that worked) that cancels the timer.
  co_await (std::move(sleep) || std::move(woken));
  if (!current(step)) co_return;
  const auto before = session_.state();
  session_.backoff_elapsed(step.id, retry_.now());
  report_state(before);
}

awaitable<void> Reflector::run() {
  wake_timer_.emplace(co_await asio::this_coro::executor);
  // Stopped before it began (a session retired in the turn that made it:
  // its session is still disconnected, and would start).
  if (stopped_) co_return;
  const auto before = session_.state();
  session_.start(retry_.now());
  report_state(before);
  for (;;) {
    const SessionStep step = session_.step();
    switch (step.kind) {
      case SessionStep::Kind::kIdle:
        if (session_.state() != SessionState::kSuspended) co_return;
        // Asleep (or about to be): nothing until an outside input, the
        // resume or a stop, cancels the timer.
        wake_timer_->expires_at(asio::steady_timer::time_point::max());
        co_await wake_timer_->async_wait(asio::as_tuple(asio::use_awaitable));
        break;
      case SessionStep::Kind::kList:
        co_await list(step);
        break;
      case SessionStep::Kind::kWatch:
        co_await watch(step);
        break;
      case SessionStep::Kind::kWait:
        co_await wait(step);
        break;
    }
  }
}

}  // namespace tetherd::kube
