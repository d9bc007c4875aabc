#include "agent/kube/lease_heartbeat.h"

#include <algorithm>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "agent/core/timer.h"

namespace tetherd::kube {

namespace asio = boost::asio;
namespace json = boost::json;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

std::string holder_of(const json::object& lease) {
  const json::value* spec = lease.if_contains("spec");
  if (spec == nullptr || !spec->is_object()) return {};
  const json::value* holder = spec->get_object().if_contains("holderIdentity");
  return holder != nullptr && holder->is_string() ? std::string(holder->get_string()) : "";
}

std::string failures_text(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " failure" : " failures");
}

}  // namespace

// What one renewal ended with: the Lease as the server returned it.
struct LeaseHeartbeat::Attempt {
  json::object lease;
  WallTime renew_time;
  bool created = false;
};

LeaseHeartbeat::LeaseHeartbeat(KubeClient& client, const Clock& clock, Log& log, LeaseSpec spec,
                               Duration interval, Wait wait)
    : client_(client),
      clock_(clock),
      log_(log),
      spec_(std::move(spec)),
      interval_(interval),
      wait_(std::move(wait)),
      collection_(collection_path(kLeases, spec_.namespace_)),
      path_(object_path(kLeases, spec_.namespace_, spec_.name)),
      lease_field_(spec_.namespace_ + "/" + spec_.name) {
  if (!wait_) {
    wait_ = [&clock](Duration delay) -> awaitable<void> {
      Timer timer(co_await asio::this_coro::executor, clock);
      timer.expires_after(delay);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    };
  }
}

// A Lease just read: another holder's is taken over (kubelet does the same
// with its node lease), but that is worth one line: two machines running as
// the same node would take it from each other on every tick.
void LeaseHeartbeat::note_holder(const json::object& current) {
  const std::string holder = holder_of(current);
  if (holder == spec_.holder) taken_over_ = false;
  if (holder.empty() || holder == spec_.holder || taken_over_) return;
  taken_over_ = true;
  log_.warning("lease-taken-over",
               "Lease " + lease_field_ + " was held by \"" + holder + "\"; tetherd takes it as \"" +
                   spec_.holder + "\" (is another machine running as this node?)",
               {{"CONTROL_PLANE", client_.http().server()},
                {"LEASE", lease_field_},
                {"PREVIOUS_HOLDER", holder}});
}

awaitable<ApiResult<LeaseHeartbeat::Attempt>> LeaseHeartbeat::put(json::object current) {
  const WallTime now = clock_.wall();
  auto renewed = renewed_lease(std::move(current), spec_, now);
  if (!renewed) {
    cached_.reset();
    co_return make_api_error(ErrorKind::kDecode,
                             client_.http().server() + ": " + renewed.error().message);
  }
  ++stats_.updates;
  auto answer = co_await client_.update(path_, std::move(*renewed));
  if (!answer) {
    // The server's copy is not ours any more (409), is gone (404), or ours
    // cannot be sent (no resourceVersion): the next attempt reads first.
    const ApiError& e = answer.error();
    if (e.conflict() || e.not_found() || e.kind == ErrorKind::kInvalid) cached_.reset();
    co_return e;
  }
  cached_ = *answer;
  Attempt attempt{std::move(*answer), now, false};
  co_return attempt;
}

awaitable<ApiResult<LeaseHeartbeat::Attempt>> LeaseHeartbeat::read_or_create() {
  ++stats_.gets;
  auto read = co_await client_.get(path_);
  if (read) {
    note_holder(*read);
    co_return co_await put(std::move(*read));
  }
  if (!read.error().not_found()) co_return read.error();

  const WallTime now = clock_.wall();
  json::object lease = new_lease(spec_, now);
  ++stats_.creates;
  auto created = co_await client_.create(collection_, std::move(lease));
  if (created) {
    cached_ = *created;
    Attempt attempt{std::move(*created), now, true};
    co_return attempt;
  }
  // AlreadyExists (also a 409): made by someone else between our GET and
  // POST. Renew theirs, once; a Lease that keeps vanishing and reappearing
  // is an error for this tick.
  if (!created.error().conflict()) co_return created.error();
  ++stats_.gets;
  auto again = co_await client_.get(path_);
  if (!again) co_return again.error();
  note_holder(*again);
  co_return co_await put(std::move(*again));
}

awaitable<ApiResult<LeaseHeartbeat::Attempt>> LeaseHeartbeat::attempt() {
  if (!cached_) co_return co_await read_or_create();
  json::object current = *cached_;
  auto put_result = co_await put(std::move(current));
  if (put_result) co_return put_result;
  // Someone wrote the Lease since (or removed it): read, decide again, put
  // once more, all in this renewal, so a conflict costs no missed tick.
  if (put_result.error().conflict() || put_result.error().not_found())
    co_return co_await read_or_create();
  co_return put_result;
}

awaitable<ApiResult<LeaseRenewal>> LeaseHeartbeat::renew() {
  auto attempted = co_await attempt();
  if (!attempted) {
    ApiResult<LeaseRenewal> failed = attempted.error();
    record(failed);
    co_return failed;
  }
  ApiResult<LeaseRenewal> renewed = LeaseRenewal{
      attempted->renew_time, resource_version_of(attempted->lease), attempted->created};
  record(renewed);
  co_return renewed;
}

void LeaseHeartbeat::record(const ApiResult<LeaseRenewal>& result) {
  const std::string server = client_.http().server();
  if (!result) {
    ++stats_.failures;
    if (streak_++ > 0) return;
    std::string message = "Lease " + lease_field_ + " not renewed: " + describe(result.error());
    if (last_renewed_) {
      message += " (it expires at " + format_kube_time(*last_renewed_ + spec_.duration) +
                 " unless renewed)";
    }
    log_.warning("lease-renewal-failed", message,
                 {{"CONTROL_PLANE", server},
                  {"LEASE", lease_field_},
                  {"ERROR_KIND", std::string(to_string(result.error().kind))}});
    return;
  }
  ++stats_.renewals;
  last_renewed_ = result->renew_time;
  const std::size_t failures = std::exchange(streak_, 0);
  const std::string after = failures == 0 ? "" : " after " + failures_text(failures);
  if (!acquired_) {
    acquired_ = true;
    log_.write(failures == 0 ? Priority::kInfo : Priority::kNotice, "lease-acquired",
               "Lease " + lease_field_ + (result->created ? " created" : " renewed") + " as \"" +
                   spec_.holder + "\"" + after + "; renewed every " + format_duration(interval_) +
                   ", valid for " + format_duration(spec_.duration),
               {{"CONTROL_PLANE", server}, {"LEASE", lease_field_}});
  } else if (failures > 0) {
    log_.notice("lease-renewed", "Lease " + lease_field_ + " renewed again" + after,
                {{"CONTROL_PLANE", server},
                 {"LEASE", lease_field_},
                 {"FAILURES", std::to_string(failures)}});
  }
}

Duration LeaseHeartbeat::next_wait(const ApiResult<LeaseRenewal>& result) const {
  std::optional<Duration> asked;
  if (!result) asked = result.error().retry_after;
  return lease_wait(interval_, spec_.duration, asked, random_ ? random_() : 0.0);
}

void LeaseHeartbeat::stop() {
  stopped_ = true;
  renew_now();
}

void LeaseHeartbeat::renew_now() {
  woken_ = true;
  if (wake_timer_) wake_timer_->cancel();
}

awaitable<void> LeaseHeartbeat::pause(Duration delay) {
  if (!woken_ && !stopped_) {
    wake_timer_->expires_at(asio::steady_timer::time_point::max());
    auto waited = wait_(delay);
    auto woken = wake_timer_->async_wait(asio::as_tuple(asio::use_awaitable));
    // Whichever ends first cancels the other.
    co_await (std::move(waited) || std::move(woken));
  }
  woken_ = false;
}

awaitable<void> LeaseHeartbeat::run() {
  wake_timer_.emplace(co_await asio::this_coro::executor);
  // The first renewal is at once anyway.
  woken_ = false;
  while (!stopped_) {
    auto result = co_await renew();
    if (stopped_) break;
    if (listener_) listener_(result);
    co_await pause(next_wait(result));
  }
}

}  // namespace tetherd::kube
