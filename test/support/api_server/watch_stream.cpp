// The watch half of a Connection: a store subscription streamed as chunked
// JSON lines, with bookmarks, a timeout that ends it cleanly, and the watch
// misbehaviours.

#include <boost/asio/post.hpp>
#include <boost/json/serialize.hpp>

#include "test/support/api_server/connection.h"
#include "test/support/api_server/wire.h"

namespace tetherd::test::apiserver {
namespace asio = boost::asio;
namespace json = boost::json;
namespace {

std::string bookmark_line(const ResourceType& type, std::uint64_t version) {
  json::object event{
      {"type", "BOOKMARK"},
      {"object",
       json::object{{"kind", type.kind},
                    {"apiVersion", type.api_version()},
                    {"metadata", json::object{{"resourceVersion", std::to_string(version)}}}}}};
  return json::serialize(event) + "\n";
}

}  // namespace

void Connection::start_watch(WatchRequest request, std::optional<MisbehaviourSpec> misbehaviour) {
  std::uint64_t seq = ++watch_seq_;
  EventSink sink = [weak = weak_from_this(), seq,
                    executor = stream_.get_executor()](std::shared_ptr<const StoreEvent> event) {
    asio::post(executor, [weak, seq, event = std::move(event)] {
      if (auto self = weak.lock()) self->on_store_event(seq, *event);
    });
  };
  Expected<WatchStart> started = core_.store.watch(request.filter, request.from, std::move(sink));
  record(200);
  enqueue(format_head(Head{200, "application/json", std::nullopt, std::nullopt, !keep_alive_,
                           core_.options.clock_offset}));
  if (!started.ok()) {
    // As kube-apiserver: 200, one ERROR event carrying the 410 Status, the end.
    json::object event{{"type", "ERROR"}, {"object", started.error().status}};
    enqueue(format_chunk(json::serialize(event) + "\n"));
    return enqueue(std::string(kLastChunk),
                   keep_alive_ ? After::kReadNext : After::kCloseGracefully);
  }
  WatchStart& start = started.value();
  watch_.emplace(Watch{std::move(request.filter), request.bookmarks, start.id,
                       start.resource_version, start.resource_version, 0, std::move(misbehaviour),
                       false, false});
  core_.observations.watch_opened();
  watch_misbehaviour_after_event();
  for (const std::string& line : start.initial)
    send_event(line);
  arm_watch_timeout(request.timeout);
  arm_bookmark_timer();
  start_idle_read();
}

void Connection::on_store_event(std::uint64_t watch_seq, const StoreEvent& event) {
  if (closed_ || !watch_ || watch_seq != watch_seq_) return;
  if (event.resource_version <= watch_->start_version) return;
  watch_->delivered_version = std::max(watch_->delivered_version, event.resource_version);
  if (std::optional<std::string> line = watch_->filter.event_line(event)) send_event(*line);
}

void Connection::send_event(const std::string& line) {
  if (!watch_ || watch_->stalled || watch_->ending) return;
  enqueue(format_chunk(line));
  ++watch_->events_sent;
  watch_misbehaviour_after_event();
}

// Once `after_events` events are out, the armed watch misbehaviour strikes.
void Connection::watch_misbehaviour_after_event() {
  const std::optional<MisbehaviourSpec>& spec = watch_->misbehaviour;
  if (!spec || watch_->events_sent != spec->after_events) return;
  switch (spec->what) {
    case Misbehaviour::kDropMidStream:
      watch_->ending = true;
      return enqueue({}, After::kCloseAbruptly);
    case Misbehaviour::kStallWatch:
      watch_->stalled = true;
      watch_timer_.cancel();
      bookmark_timer_.cancel();
      return;
    case Misbehaviour::kOversizedBody:
      return enqueue(
          format_chunk(oversized_event(watch_->filter.type->kind,
                                       watch_->filter.type->api_version(), spec->oversize_bytes) +
                       "\n"));
    case Misbehaviour::kMalformedJson:
      return enqueue(format_chunk(std::string(kNotJson) + "\n"));
    default:
      return;
  }
}

void Connection::arm_watch_timeout(std::chrono::seconds timeout) {
  if (watch_->stalled) return;
  watch_timer_.expires_after(timeout);
  watch_timer_.async_wait(
      [self = shared_from_this(), seq = watch_seq_](boost::system::error_code ec) {
        if (!ec && seq == self->watch_seq_) self->end_watch();
      });
}

void Connection::arm_bookmark_timer() {
  if (!watch_ || watch_->stalled || !watch_->bookmarks ||
      core_.options.bookmark_interval <= std::chrono::milliseconds{0})
    return;
  bookmark_timer_.expires_after(core_.options.bookmark_interval);
  bookmark_timer_.async_wait(
      [self = shared_from_this(), seq = watch_seq_](boost::system::error_code ec) {
        if (ec || seq != self->watch_seq_) return;
        self->bookmark_now();
        self->arm_bookmark_timer();
      });
}

void Connection::bookmark_now() {
  if (closed_ || !watch_ || !watch_->bookmarks || watch_->stalled || watch_->ending) return;
  enqueue(format_chunk(bookmark_line(*watch_->filter.type, watch_->delivered_version)));
}

void Connection::end_watch() {
  if (closed_ || !watch_ || watch_->stalled || watch_->ending) return;
  finish_watch();
  enqueue(std::string(kLastChunk), keep_alive_ ? After::kReadNext : After::kCloseGracefully);
}

void Connection::finish_watch() {
  if (!watch_) return;
  core_.store.unwatch(watch_->store_id);
  core_.observations.watch_closed();
  watch_.reset();
  ++watch_seq_;  // events and timers of this watch are now stale
  watch_timer_.cancel();
  bookmark_timer_.cancel();
}

}  // namespace tetherd::test::apiserver
