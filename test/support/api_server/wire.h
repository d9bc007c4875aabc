#pragma once
// HTTP/1.1 responses as bytes, written by hand rather than by Beast's
// serializer so a misbehaviour can cut, drip or leave out any byte of them.
// The headers are kube-apiserver's (Go's net/http): Audit-Id, Cache-Control,
// Content-Type, Date, and Content-Length or chunked framing.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "test/support/api_server/rest_api.h"

namespace tetherd::test::apiserver {

struct Head {
  unsigned status = 200;
  std::string_view content_type = "application/json";
  std::optional<std::size_t> content_length;  // none: Transfer-Encoding: chunked
  std::optional<int> retry_after;
  bool close = false;                    // Connection: close
  std::chrono::seconds clock_offset{0};  // the Date's, from the true time
};

std::string format_head(const Head& head);
std::string format_chunk(std::string_view data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// The head of `response`; its body follows as is.
std::string format_response_head(const Response& response, bool close,
                                 std::chrono::seconds clock_offset);
// What Go's server answers to a request it cannot parse, closing after it.
std::string format_plain_error(unsigned status);

// A JSON object of exactly `size` bytes (when size allows), one huge string in it.
std::string oversized_object(std::size_t size);
// A watch event line of exactly `size` bytes before its newline.
std::string oversized_event(std::string_view kind, std::string_view api_version, std::size_t size);
// Starts like a JSON event and is not JSON.
inline constexpr std::string_view kNotJson = "not JSON: {\"type\":\"MODIFIED\",\"object\":";

}  // namespace tetherd::test::apiserver
