#include "test/support/api_server/rest_api.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

// As Go's strconv.ParseBool, which kube-apiserver's query decoding uses.
bool parse_bool(std::string_view text) {
  return text == "1" || text == "t" || text == "T" || text == "true" || text == "TRUE" ||
         text == "True";
}

std::string param(const QueryParams& params, std::string_view key) {
  auto found = params.find(key);
  return found == params.end() ? std::string{} : found->second;
}

std::optional<std::uint64_t> parse_number(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The media type without parameters, lower case.
std::string media_type(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  type.erase(
      std::remove_if(type.begin(), type.end(), [](unsigned char c) { return std::isspace(c); }),
      type.end());
  std::transform(type.begin(), type.end(), type.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return type;
}

std::string metadata_string(const json::object& object, std::string_view key) {
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return {};
  const json::value* value = metadata->get_object().if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string{};
}

Response text_response(std::string text) {
  return Response{200, "text/plain; charset=utf-8", std::move(text), {}};
}

Response version_response() {
  return json_response(200, json::object{{"major", "1"},
                                         {"minor", "31"},
                                         {"gitVersion", "v1.31.0-tetherd-test"},
                                         {"gitCommit", "0000000000000000000000000000000000000000"},
                                         {"gitTreeState", "clean"},
                                         {"buildDate", "2024-08-13T07:28:49Z"},
                                         {"goVersion", "go1.22.5"},
                                         {"compiler", "gc"},
                                         {"platform", "linux/amd64"}});
}

// A create or update body: a JSON object of this type, in the URL's namespace.
Expected<json::object> decode_object(const ResourceType& type, const Request& request,
                                     const std::string& namespace_) {
  std::string media = media_type(request.content_type);
  if (!media.empty() && media != "application/json")
    return unsupported_media_type_error(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json");
  boost::system::error_code ec;
  json::value body = json::parse(request.body, ec);
  std::string unrecognized =
      "the object provided is unrecognized (must be of type " + std::string(type.kind) + "): ";
  if (ec)
    return bad_request_error(unrecognized +
                             "couldn't get version/kind; json parse error: " + ec.message());
  if (!body.is_object()) return bad_request_error(unrecognized + "not a JSON object");
  json::object& object = body.get_object();
  if (const json::value* metadata = object.if_contains("metadata");
      metadata && !metadata->is_object())
    return bad_request_error(unrecognized + "metadata must be an object");
  if (const json::value* version = object.if_contains("apiVersion")) {
    std::string expected = type.api_version();
    if (!version->is_string() || version->get_string() != expected)
      return bad_request_error(
          "the API version in the data (" +
          (version->is_string() ? std::string(version->get_string()) : std::string{}) +
          ") does not match the expected API version (" + expected + ")");
  }
  if (const json::value* kind = object.if_contains("kind");
      kind && (!kind->is_string() || kind->get_string() != type.kind))
    return bad_request_error(unrecognized + "kind " + json::serialize(*kind));
  std::string object_namespace = metadata_string(object, "namespace");
  if (!type.namespaced) {
    // As kube-apiserver: a cluster-scoped object's namespace is cleared, not refused.
    if (json::value* metadata = object.if_contains("metadata"))
      metadata->get_object().erase("namespace");
    return std::move(object);
  }
  if (!object_namespace.empty() && object_namespace != namespace_)
    return bad_request_error(
        "the namespace of the provided object does not match the namespace sent on the request");
  if (object_namespace.empty()) {
    json::value& metadata = object["metadata"];
    if (!metadata.is_object()) metadata = json::object{};
    metadata.get_object()["namespace"] = namespace_;
  }
  return std::move(object);
}

json::object list_body(const ResourceType& type, ListResult result) {
  json::array items;
  for (json::object& item : result.items) {
    if (type.builtin) {
      item.erase("kind");
      item.erase("apiVersion");
    }
    items.push_back(std::move(item));
  }
  return json::object{
      {"kind", std::string(type.kind) + "List"},
      {"apiVersion", type.api_version()},
      {"metadata", json::object{{"resourceVersion", std::to_string(result.resource_version)}}},
      {"items", std::move(items)}};
}

}  // namespace

Response error_response(const ApiError& error) {
  Response response = json_response(error.code, error.status);
  response.retry_after = error.retry_after;
  return response;
}

Response json_response(unsigned status, const json::object& body) {
  return Response{status, "application/json", json::serialize(body), {}};
}

bool is_watch_request(const Request& request) {
  if (request.method != "GET") return false;
  QueryParams params = parse_query(split_target(request.target).second);
  return parse_bool(param(params, "watch"));
}

std::optional<Response> failed_health_check(std::string_view target) {
  const PathKind kind = parse_path(split_target(target).first).kind;
  if (kind != PathKind::kReadyz && kind != PathKind::kLivez) return std::nullopt;
  const std::string check = kind == PathKind::kReadyz ? "readyz" : "livez";
  return Response{500,
                  "text/plain; charset=utf-8",
                  "[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n"
                  "[+]poststarthook/start-apiserver-admission-initializer ok\n" +
                      check + " check failed\n",
                  {}};
}

RestApi::RestApi(Store& store, const Authorizer& authorizer,
                 std::chrono::seconds default_watch_timeout, CsrSigner signer)
    : store_(store),
      authorizer_(authorizer),
      default_watch_timeout_(default_watch_timeout),
      signer_(signer) {}

Outcome RestApi::handle(const Identity& who, const Request& request, bool ignore_field_selector) {
  auto [path_text, query_text] = split_target(request.target);
  ResourcePath path = parse_path(path_text);
  switch (path.kind) {
    case PathKind::kReadyz:
    case PathKind::kLivez:
      return text_response("ok");
    case PathKind::kVersion:
      return version_response();
    case PathKind::kUnknown:
      return error_response(path_not_found_error());
    default:
      break;
  }
  const ResourceType& type = *path.type;
  QueryParams params = parse_query(query_text);
  const std::string& method = request.method;
  bool watch = parse_bool(param(params, "watch"));

  const bool approval = path.kind == PathKind::kApproval;
  Attributes attributes{{},
                        &type,
                        path.kind == PathKind::kStatus ? "status"
                        : approval                     ? "approval"
                                                       : "",
                        path.namespace_,
                        path.name};
  if (path.kind == PathKind::kCollection) {
    attributes.verb = method == "GET"    ? (watch ? "watch" : "list")
                      : method == "POST" ? "create"
                                         : "";
  } else if (method == "GET") {
    attributes.verb = watch && path.kind == PathKind::kObject ? "watch" : "get";
  } else if (method == "PUT") {
    attributes.verb = "update";
  } else if (method == "PATCH") {
    attributes.verb = "patch";
  } else if (method == "DELETE" && path.kind == PathKind::kObject) {
    attributes.verb = "delete";
  }
  // /approval takes a GET and a PUT only.
  if (approval && attributes.verb != "get" && attributes.verb != "update") attributes.verb.clear();
  if (attributes.verb.empty()) {
    std::string action = method;
    std::transform(action.begin(), action.end(), action.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return error_response(method_not_allowed_error(type, action));
  }

  FieldSelector selector;
  if (attributes.verb == "list" || attributes.verb == "watch") {
    Expected<FieldSelector> parsed = parse_field_selector(param(params, "fieldSelector"));
    if (!parsed.ok()) return error_response(parsed.error());
    selector = std::move(parsed.value());
    if (path.kind == PathKind::kObject)
      selector.terms.push_back({"metadata.name", false, path.name});
    // RBAC sees a list or watch pinned to one name as a request for that name.
    if (path.kind == PathKind::kCollection) attributes.name = selector.exact_name().value_or("");
  }
  if (std::optional<ApiError> denied = authorizer_.check(who, attributes))
    return error_response(*denied);
  if (ignore_field_selector && path.kind == PathKind::kCollection) selector = FieldSelector{};

  WriteScope scope = path.kind == PathKind::kStatus ? WriteScope::kStatus : WriteScope::kObject;
  const std::string& verb = attributes.verb;
  if (verb == "get") {
    Expected<json::object> object = store_.get(type, path.namespace_, path.name);
    return object.ok() ? json_response(200, object.value()) : error_response(object.error());
  }
  if (verb == "list" || verb == "watch") {
    std::string version_text = param(params, "resourceVersion");
    std::optional<std::uint64_t> version;
    if (!version_text.empty() && !(version = parse_number(version_text)))
      return error_response(bad_request_error("invalid resource version \"" + version_text + "\""));
    WatchFilter filter{&type, path.namespace_, std::move(selector)};
    if (verb == "watch") {
      WatchRequest watch_request{std::move(filter), version,
                                 parse_bool(param(params, "allowWatchBookmarks")),
                                 default_watch_timeout_};
      std::string timeout_text = param(params, "timeoutSeconds");
      if (!timeout_text.empty()) {
        std::optional<std::uint64_t> seconds = parse_number(timeout_text);
        if (!seconds)
          return error_response(
              bad_request_error("invalid timeoutSeconds \"" + timeout_text + "\""));
        // Capped at a day: a timer far in the future would overflow.
        if (*seconds > 0)
          watch_request.timeout = std::chrono::seconds(std::min<std::uint64_t>(*seconds, 86400));
      }
      return watch_request;
    }
    std::string match = param(params, "resourceVersionMatch");
    if (!match.empty() && match != "Exact" && match != "NotOlderThan")
      return error_response(bad_request_error("resourceVersionMatch: Unsupported value: \"" +
                                              match +
                                              "\": supported values: \"Exact\", \"NotOlderThan\""));
    if (!match.empty() && !version)
      return error_response(
          bad_request_error("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
                            "unless resourceVersion is provided"));
    if (match == "Exact" && version == 0u)
      return error_response(bad_request_error(
          "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for "
          "resourceVersion \"0\""));
    Expected<ListResult> list =
        store_.list(filter, match == "Exact" ? version : std::optional<std::uint64_t>{});
    return list.ok() ? json_response(200, list_body(type, std::move(list.value())))
                     : error_response(list.error());
  }
  if (verb == "create" || verb == "update") {
    Expected<json::object> object = decode_object(type, request, path.namespace_);
    if (!object.ok()) return error_response(object.error());
    if (verb == "create") {
      if (type.approval_subresource) {
        object = admit_csr(type, who, std::move(object.value()));
        if (!object.ok()) return error_response(object.error());
      }
      Expected<json::object> created =
          store_.create(type, path.namespace_, std::move(object.value()));
      return created.ok() ? json_response(201, created.value()) : error_response(created.error());
    }
    std::string name = metadata_string(object.value(), "name");
    if (name != path.name)
      return error_response(bad_request_error("the name of the object (" + name +
                                              ") does not match the name on the URL (" + path.name +
                                              ")"));
    if (approval) {
      Expected<json::object> current = store_.get(type, path.namespace_, path.name);
      if (!current.ok()) return error_response(current.error());
      object = approve_csr(type, current.value(), object.value());
      if (!object.ok()) return error_response(object.error());
      scope = WriteScope::kStatus;
    }
    Expected<json::object> updated =
        store_.update(type, path.namespace_, path.name, std::move(object.value()), scope);
    if (!updated.ok()) return error_response(updated.error());
    // The signer answers an approval at once (kube-controller-manager's
    // does within a moment): a second write the watchers see.
    if (std::optional<json::object> status =
            approval ? sign_csr(updated.value(), signer_) : std::nullopt) {
      json::object signed_csr = updated.value();
      signed_csr["status"] = std::move(*status);
      store_.update(type, path.namespace_, path.name, std::move(signed_csr), WriteScope::kStatus);
    }
    return json_response(200, updated.value());
  }
  if (verb == "patch") {
    if (media_type(request.content_type) != "application/merge-patch+json")
      return error_response(unsupported_media_type_error(
          "the body of the request was in an unknown format - accepted media types include: "
          "application/merge-patch+json"));
    boost::system::error_code ec;
    json::value patch = json::parse(request.body, ec);
    if (ec) return error_response(bad_request_error("error decoding patch: " + ec.message()));
    Expected<json::object> patched = store_.patch(type, path.namespace_, path.name, patch, scope);
    return patched.ok() ? json_response(200, patched.value()) : error_response(patched.error());
  }
  // delete, with DeleteOptions' preconditions when there is a body.
  std::optional<std::string> precondition;
  if (!request.body.empty()) {
    boost::system::error_code ec;
    json::value options = json::parse(request.body, ec);
    if (ec || !options.is_object())
      return error_response(bad_request_error("error decoding DeleteOptions: not a JSON object"));
    const json::value* preconditions = options.get_object().if_contains("preconditions");
    const json::value* version = preconditions != nullptr && preconditions->is_object()
                                     ? preconditions->get_object().if_contains("resourceVersion")
                                     : nullptr;
    if (version != nullptr && version->is_string())
      precondition = std::string(version->get_string());
  }
  Expected<json::object> removed = store_.remove(type, path.namespace_, path.name, precondition);
  return removed.ok() ? json_response(200, removed.value()) : error_response(removed.error());
}

}  // namespace tetherd::test::apiserver
