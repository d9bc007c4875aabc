#pragma once
// What went wrong talking to a Kubernetes API server, in words an operator
// can act on. Every error body from kube-apiserver is a Status object; its
// reason, code and message are kept, and Retry-After (a header, or
// details.retryAfterSeconds) is honoured for 429 and 5xx.

#include <optional>
#include <string>
#include <string_view>

#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/system/result.hpp>

#include "agent/core/clock.h"

namespace tetherd::kube {

enum class ErrorKind {
  kTransport,  // resolve, connect, reset, closed mid-response
  kTimeout,    // a deadline passed (a stalled or dripping server)
  kTls,        // handshake or certificate verification
  kHttp,       // the server answered with an error status (or a watch ERROR event)
  kDecode,     // the server's body is not what Kubernetes sends
  kTooLarge,   // a header, body or watch event over its bound
  kInvalid,    // the request itself is wrong (a bug or bad input on our side)
};

struct ApiError {
  ErrorKind kind = ErrorKind::kTransport;
  unsigned code = 0;   // HTTP status, for kHttp
  std::string reason;  // Status.reason: NotFound, Conflict, Expired, Forbidden, ...
  std::string message;
  std::optional<Duration> retry_after;

  // Worth trying again later: the network, the server's load (429, 5xx) or
  // a bad answer may pass; a 403 or a 404 will not by itself.
  bool retryable() const;
  // One question each, answered here for every caller (the table in
  // api_error_test.cpp):
  // An answer came back (an error status, a body that is not Kubernetes',
  // one over its bound): the server, or what speaks for it, is there.
  bool reached() const;
  // The server was not reached: no connection, no answer in time, no
  // handshake.
  bool unreachable() const;
  // No answer to act on: not reached in time, or "not now" (429, 5xx).
  // Worth asking again soon. (Not TLS: a certificate is not mended by
  // asking again within minutes.)
  bool unanswered() const;
  // A write's fate is unknown: its answer was lost (a connection dropped,
  // a deadline, an unreadable answer) or the server could not say (a 5xx:
  // kube-apiserver's 504 when etcd is slow).
  bool may_have_taken() const;
  bool conflict() const { return kind == ErrorKind::kHttp && code == 409; }
  bool not_found() const { return kind == ErrorKind::kHttp && code == 404; }
  // 410 Gone / Expired: the resourceVersion is too old; list again. The
  // reason decides when a Status has no code, as client-go does.
  bool gone() const {
    return kind == ErrorKind::kHttp && (code == 410 || reason == "Expired" || reason == "Gone");
  }
};

// An error that is not an HTTP answer: what failed, in words.
ApiError make_api_error(ErrorKind kind, std::string message);

// Boost.JSON options for anything from an API server: Kubernetes objects
// are shallow, so deep nesting is hostile.
boost::json::parse_options api_json_options();

// metadata.resourceVersion of an object, or "" when it has none.
std::string resource_version_of(const boost::json::object& object);

std::string_view to_string(ErrorKind kind);
// One line: "HTTP 409 Conflict: Operation cannot be fulfilled on ...".
std::string describe(const ApiError& error);

// Called by ApiResult<T>::value() on an error; callers check first, so
// reaching this is a programming error.
[[noreturn]] void throw_exception_from_error(const ApiError& e, const boost::source_location&);

template <class T>
using ApiResult = boost::system::result<T, ApiError>;

// Retry-After in delta-seconds, as kube-apiserver sends it. An HTTP-date or
// garbage yields nothing (and the caller's own backoff applies).
std::optional<Duration> parse_retry_after(std::string_view value);

// An error status with its body: a Status object when the server is
// Kubernetes, anything else (an HTML page from a proxy) summarised safely.
ApiError error_from_response(unsigned http_status, std::string_view body,
                             std::string_view retry_after_header);

// A Status object as found in a watch ERROR event.
ApiError error_from_status(const boost::json::object& status);

}  // namespace tetherd::kube
