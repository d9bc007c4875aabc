#pragma once
// Decodes a Kubernetes watch stream incrementally. The body of a watch is a
// sequence of JSON objects, {"type": ..., "object": {...}}, which the API
// server writes one per chunk and ends with a newline; but nothing promises
// that a read returns whole events: one event can be split across reads and
// several can arrive in one. The decoder takes bytes as they come and hands
// back whole events. Pure: no I/O; bounded: an event larger than the limit
// is an error, not an allocation.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/stream_parser.hpp>

#include "agent/kube/api_error.h"

namespace tetherd::kube {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };

std::string_view to_string(WatchEventType type);

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  boost::json::object object;  // the object; for kError, a Status

  // metadata.resourceVersion of the object (empty for kError).
  std::string resource_version() const;
};

// An EdgeNode with 1 000 sources is 16 KiB; a parsed JSON value takes
// several times its text in memory, so the bound is on the generous side
// of what tetherd watches, not on Kubernetes' own 1.5 MiB object limit.
inline constexpr std::size_t kDefaultMaxWatchEventBytes = 1 << 20;

class WatchDecoder {
 public:
  explicit WatchDecoder(std::size_t max_event_bytes = kDefaultMaxWatchEventBytes);

  // Feeds bytes; appends every event they complete to `out`. After an error
  // the stream is unusable (a watch that lies once cannot be trusted to be in
  // step): the caller drops the connection and resumes from the last
  // resourceVersion it saw.
  ApiResult<void> feed(std::string_view bytes, std::vector<WatchEvent>& out);

  // The stream ended: an error if it ended inside an event.
  ApiResult<void> finish() const;

  std::size_t events_decoded() const { return events_; }

 private:
  ApiResult<void> fail(ErrorKind kind, std::string message);
  ApiResult<void> take_event(std::vector<WatchEvent>& out);

  std::size_t max_event_bytes_;
  boost::json::stream_parser parser_;
  std::size_t event_bytes_ = 0;  // consumed for the event in progress
  bool in_event_ = false;
  std::size_t events_ = 0;
  std::optional<ApiError> failed_;
};

// Checks the shape of one decoded JSON value as a watch event.
ApiResult<WatchEvent> watch_event_from_json(boost::json::value value);

}  // namespace tetherd::kube
