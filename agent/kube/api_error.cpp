#include "agent/kube/api_error.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <stdexcept>

#include <boost/json/parse.hpp>

namespace tetherd::kube {
namespace {

namespace json = boost::json;

// A day. Far beyond what any server means (BackoffPolicy caps it lower
// still), and small enough that no conversion to nanoseconds overflows.
constexpr std::int64_t kMaxRetryAfter = 86400;

std::string_view string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return v->get_string();
}

// A body from the network goes into a log line: printable ASCII only, and
// not much of it.
std::string printable_prefix(std::string_view body, std::size_t max = 200) {
  std::string out;
  for (char c : body.substr(0, max))
    out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  if (body.size() > max) out += "...";
  return out;
}

}  // namespace

bool ApiError::retryable() const {
  switch (kind) {
    case ErrorKind::kTransport:
    case ErrorKind::kTimeout:
    case ErrorKind::kTls:  // a certificate can be renewed, a clock corrected
    case ErrorKind::kDecode:
    case ErrorKind::kTooLarge:
      return true;
    case ErrorKind::kHttp:
      return code == 429 || code >= 500;
    case ErrorKind::kInvalid:
      return false;
  }
  return false;
}

bool ApiError::reached() const {
  return kind == ErrorKind::kHttp || kind == ErrorKind::kDecode || kind == ErrorKind::kTooLarge;
}

bool ApiError::unreachable() const {
  return kind == ErrorKind::kTransport || kind == ErrorKind::kTimeout || kind == ErrorKind::kTls;
}

bool ApiError::unanswered() const {
  if (kind == ErrorKind::kHttp) return code == 429 || code >= 500;
  return kind == ErrorKind::kTransport || kind == ErrorKind::kTimeout;
}

bool ApiError::may_have_taken() const {
  if (kind == ErrorKind::kHttp) return code >= 500;
  return kind == ErrorKind::kTransport || kind == ErrorKind::kTimeout ||
         kind == ErrorKind::kDecode || kind == ErrorKind::kTooLarge;
}

ApiError make_api_error(ErrorKind kind, std::string message) {
  return ApiError{kind, 0, {}, std::move(message), std::nullopt};
}

json::parse_options api_json_options() {
  json::parse_options o;
  o.max_depth = 64;
  return o;
}

std::string resource_version_of(const json::object& object) {
  const auto* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return {};
  const auto* rv = metadata->get_object().if_contains("resourceVersion");
  if (rv == nullptr || !rv->is_string()) return {};
  return std::string(rv->get_string());
}

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTransport:
      return "transport";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kTls:
      return "tls";
    case ErrorKind::kHttp:
      return "http";
    case ErrorKind::kDecode:
      return "decode";
    case ErrorKind::kTooLarge:
      return "too-large";
    case ErrorKind::kInvalid:
      return "invalid";
  }
  return "unknown";
}

std::string describe(const ApiError& e) {
  if (e.kind != ErrorKind::kHttp) return e.message;
  std::string out = "HTTP " + std::to_string(e.code);
  if (!e.reason.empty()) out += " " + e.reason;
  if (!e.message.empty()) out += ": " + e.message;
  return out;
}

void throw_exception_from_error(const ApiError& e, const boost::source_location&) {
  throw std::logic_error("unchecked kube::ApiResult: " + describe(e));
}

std::optional<Duration> parse_retry_after(std::string_view value) {
  while (!value.empty() && value.front() == ' ')
    value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ')
    value.remove_suffix(1);
  std::uint32_t seconds = 0;
  const auto* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, seconds);
  if (value.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return std::chrono::seconds(std::min<std::int64_t>(seconds, kMaxRetryAfter));
}

ApiError error_from_status(const json::object& status) {
  ApiError e;
  e.kind = ErrorKind::kHttp;
  if (const auto* code = status.if_contains("code");
      code && code->is_int64() && code->get_int64() > 0 && code->get_int64() < 1000)
    e.code = static_cast<unsigned>(code->get_int64());
  e.reason = printable_prefix(string_field(status, "reason"), 64);
  e.message = printable_prefix(string_field(status, "message"), 512);
  if (const auto* details = status.if_contains("details"); details && details->is_object()) {
    const auto* after = details->get_object().if_contains("retryAfterSeconds");
    if (after && after->is_int64() && after->get_int64() >= 0)
      e.retry_after =
          std::chrono::seconds(std::min<std::int64_t>(after->get_int64(), kMaxRetryAfter));
  }
  return e;
}

ApiError error_from_response(unsigned http_status, std::string_view body,
                             std::string_view retry_after_header) {
  ApiError e;
  boost::system::error_code ec;
  const auto value = json::parse(body, ec);
  if (!ec && value.is_object() && string_field(value.get_object(), "kind") == "Status") {
    e = error_from_status(value.get_object());
  } else {
    e.kind = ErrorKind::kHttp;
    e.message = body.empty() ? std::string("(no body)")
                             : "not a Kubernetes Status: " + printable_prefix(body);
  }
  // The HTTP status line is the truth; a Status body may omit its code.
  e.code = http_status;
  if (auto after = parse_retry_after(retry_after_header)) e.retry_after = after;
  return e;
}

}  // namespace tetherd::kube
