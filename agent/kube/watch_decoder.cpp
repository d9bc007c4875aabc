#include "agent/kube/watch_decoder.h"

#include <algorithm>

namespace tetherd::kube {
namespace {

namespace json = boost::json;

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

ApiError decode_error(std::string message) {
  return make_api_error(ErrorKind::kDecode, std::move(message));
}

}  // namespace

std::string_view to_string(WatchEventType type) {
  switch (type) {
    case WatchEventType::kAdded:
      return "ADDED";
    case WatchEventType::kModified:
      return "MODIFIED";
    case WatchEventType::kDeleted:
      return "DELETED";
    case WatchEventType::kBookmark:
      return "BOOKMARK";
    case WatchEventType::kError:
      return "ERROR";
  }
  return "UNKNOWN";
}

std::string WatchEvent::resource_version() const {
  return resource_version_of(object);
}

ApiResult<WatchEvent> watch_event_from_json(json::value value) {
  if (!value.is_object()) return decode_error("watch event is not a JSON object");
  auto& o = value.get_object();
  const auto* type = o.if_contains("type");
  if (type == nullptr || !type->is_string()) return decode_error("watch event has no \"type\"");
  auto* object = o.if_contains("object");
  if (object == nullptr || !object->is_object())
    return decode_error("watch event has no \"object\"");
  WatchEvent event;
  const std::string_view t = type->get_string();
  if (t == "ADDED") {
    event.type = WatchEventType::kAdded;
  } else if (t == "MODIFIED") {
    event.type = WatchEventType::kModified;
  } else if (t == "DELETED") {
    event.type = WatchEventType::kDeleted;
  } else if (t == "BOOKMARK") {
    event.type = WatchEventType::kBookmark;
  } else if (t == "ERROR") {
    event.type = WatchEventType::kError;
  } else {
    return decode_error("watch event of unknown type \"" + std::string(t.substr(0, 32)) + "\"");
  }
  event.object = std::move(object->get_object());
  if (event.type != WatchEventType::kError && event.resource_version().empty())
    return decode_error(std::string("watch ") + std::string(t) +
                        " event without metadata.resourceVersion");
  return event;
}

WatchDecoder::WatchDecoder(std::size_t max_event_bytes)
    : max_event_bytes_(max_event_bytes), parser_(json::storage_ptr(), api_json_options()) {}

ApiResult<void> WatchDecoder::fail(ErrorKind kind, std::string message) {
  failed_ = make_api_error(kind, std::move(message));
  return *failed_;
}

ApiResult<void> WatchDecoder::take_event(std::vector<WatchEvent>& out) {
  auto event = watch_event_from_json(parser_.release());
  parser_.reset();
  in_event_ = false;
  event_bytes_ = 0;
  if (!event) {
    failed_ = event.error();
    return *failed_;
  }
  ++events_;
  out.push_back(std::move(*event));
  return {};
}

ApiResult<void> WatchDecoder::feed(std::string_view bytes, std::vector<WatchEvent>& out) {
  if (failed_) return *failed_;
  while (!bytes.empty()) {
    if (!in_event_) {
      // Whitespace between events (the API server's newline) belongs to none.
      while (!bytes.empty() && is_space(bytes.front()))
        bytes.remove_prefix(1);
      if (bytes.empty()) break;
      in_event_ = true;
    }
    // Never hand the parser more than the bound allows: it is the parser's
    // buffers that would grow.
    const std::size_t room = max_event_bytes_ - event_bytes_;
    const auto slice = bytes.substr(0, std::min(bytes.size(), room));
    boost::system::error_code ec;
    const std::size_t used = parser_.write_some(slice.data(), slice.size(), ec);
    if (ec)
      return fail(ErrorKind::kDecode, "watch stream is not JSON after " + std::to_string(events_) +
                                          " events: " + ec.message());
    event_bytes_ += used;
    bytes.remove_prefix(used);
    if (parser_.done()) {
      if (auto r = take_event(out); !r) return r;
    } else if (event_bytes_ >= max_event_bytes_) {
      return fail(ErrorKind::kTooLarge,
                  "watch event larger than " + std::to_string(max_event_bytes_) + " bytes");
    }
  }
  return {};
}

ApiResult<void> WatchDecoder::finish() const {
  if (failed_) return *failed_;
  if (in_event_)
    return ApiError{ErrorKind::kTransport,
                    0,
                    {},
                    "watch stream ended inside an event (" + std::to_string(event_bytes_) +
                        " bytes of it received)",
                    std::nullopt};
  return {};
}

}  // namespace tetherd::kube
