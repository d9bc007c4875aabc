#pragma once
// kube-apiserver's REST semantics over the Store: routing, verbs, query
// parameters, content types, authorization and the Status answers. No I/O:
// a request in, a response (or a watch to start) out. The connection does
// the wire and the misbehaviours. Besides the objects: discovery
// (discovery.h, open to every authenticated user, 403 for
// system:anonymous as the default system:discovery binding has it), Tables
// (table.h), TokenRequest (POST .../serviceaccounts/NAME/token: a token for
// system:serviceaccount:NS:NAME, for spec.expirationSeconds, an hour by
// default, at least 10 minutes; the ServiceAccount must exist; audiences
// are echoed, not checked), SelfSubjectAccessReview (status.allowed from
// RBAC for spec.resourceAttributes; nonResourceAttributes are allowed for
// authenticated users, as discovery is), evictions (POST
// .../pods/NAME/eviction: eviction.h), and the RBAC objects written
// becoming rules (rbac_objects.h). A patch may be
// application/merge-patch+json or application/strategic-merge-patch+json;
// the latter is applied as a merge patch with its $-directives dropped,
// which is what a strategic merge patch does to these types' maps (lists
// are replaced whole rather than merged by key).

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
  std::string accept;  // the Accept header, as sent
  std::string host;    // the Host header
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
  RestApi(Store& store, Authorizer& authorizer, TokenRegistry& tokens,
          std::chrono::seconds default_watch_timeout, CsrSigner signer = {});
  // `ignore_field_selector`: RBAC judges the request with its fieldSelector,
  // then a collection is listed or watched whole (Misbehaviour).
  Outcome handle(const Identity& who, const Request& request, bool ignore_field_selector = false);

 private:
  Outcome token_request(const Identity& who, const Request& request, const ResourcePath& path);
  Outcome access_review(const Identity& who, const Request& request, const ResourcePath& path);
  std::optional<boost::json::object> crd_of(const ResourceType& type) const;

  Store& store_;
  Authorizer& authorizer_;
  TokenRegistry& tokens_;
  std::chrono::seconds default_watch_timeout_;
  CsrSigner signer_;
};

}  // namespace tetherd::test::apiserver
