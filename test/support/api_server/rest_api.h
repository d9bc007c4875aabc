#pragma once
// kube-apiserver's REST semantics over the Store: routing, verbs, query
// parameters, content types, authorization and the Status answers. No I/O:
// a request in, a response (or a watch to start) out. The connection does
// the wire and the misbehaviours.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/object.hpp>

#include "test/support/api_server/authorization.h"
#include "test/support/api_server/csr.h"
#include "test/support/api_server/status.h"
#include "test/support/api_server/store.h"

namespace tetherd::test::apiserver {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and query
  std::string content_type;
  std::string body;
};

struct Response {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::optional<int> retry_after;
};

// An authorized, well-formed watch; the connection starts it on the store.
struct WatchRequest {
  WatchFilter filter;
  std::optional<std::uint64_t> from;  // resourceVersion; none or 0: current state first
  bool bookmarks = false;
  std::chrono::seconds timeout{0};
};

using Outcome = std::variant<Response, WatchRequest>;

Response error_response(const ApiError& error);
Response json_response(unsigned status, const boost::json::object& body);
// GET with watch=true|1: what misbehaviours call a watch request.
bool is_watch_request(const Request& request);
// kube-apiserver's answer when /readyz or /livez fails: 500 with the checks
// as text (not a Status), one of them failed. Nothing for other paths.
std::optional<Response> failed_health_check(std::string_view target);

class RestApi {
 public:
  RestApi(Store& store, const Authorizer& authorizer, std::chrono::seconds default_watch_timeout,
          CsrSigner signer = {});
  // `ignore_field_selector`: RBAC judges the request with its fieldSelector,
  // then a collection is listed or watched whole (Misbehaviour).
  Outcome handle(const Identity& who, const Request& request, bool ignore_field_selector = false);

 private:
  Store& store_;
  const Authorizer& authorizer_;
  std::chrono::seconds default_watch_timeout_;
  CsrSigner signer_;
};

}  // namespace tetherd::test::apiserver
