#include "test/support/api_server/rest_api.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "test/support/api_server/discovery.h"
#include "test/support/api_server/eviction.h"
#include "test/support/api_server/rbac_objects.h"
#include "test/support/api_server/table.h"

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

// What an eviction's body is decoded as; not a resource of its own.
constexpr ResourceType kEviction{
    .group = "policy", .version = "v1", .kind = "Eviction", .namespaced = true};

// A strategic merge patch's directives ($patch, $retainKeys,
// $setElementOrder/..., $deleteFromPrimitiveList/...) are dropped: what is
// left is a merge patch.
void drop_directives(json::value& patch) {
  if (!patch.is_object()) return;
  json::object& object = patch.get_object();
  for (auto it = object.begin(); it != object.end();) {
    if (it->key().starts_with("$")) {
      it = object.erase(it);
    } else {
      drop_directives(it->value());
      ++it;
    }
  }
}

// kube-apiserver's 403 for a path no rule grants.
ApiError forbidden_path_error(const std::string& user, const std::string& method,
                              std::string_view path) {
  std::string verb = method;
  std::transform(verb.begin(), verb.end(), verb.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (verb == "post") verb = "create";
  if (verb == "put") verb = "update";
  std::string message =
      "forbidden: User \"" + user + "\" cannot " + verb + " path \"" + std::string(path) + "\"";
  return ApiError{403,
                  json::object{{"kind", "Status"},
                               {"apiVersion", "v1"},
                               {"metadata", json::object{}},
                               {"status", "Failure"},
                               {"message", message},
                               {"reason", "Forbidden"},
                               {"details", json::object{}},
                               {"code", 403}},
                  std::nullopt};
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

RestApi::RestApi(Store& store, Authorizer& authorizer, TokenRegistry& tokens,
                 std::chrono::seconds default_watch_timeout, CsrSigner signer)
    : store_(store),
      authorizer_(authorizer),
      tokens_(tokens),
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
    case PathKind::kApiVersions:
    case PathKind::kApiGroups:
    case PathKind::kGroupVersion:
    case PathKind::kOpenApi:
      if (std::find(who.groups.begin(), who.groups.end(), "system:unauthenticated") !=
          who.groups.end())
        return error_response(forbidden_path_error(who.user, request.method, path_text));
      if (request.method != "GET") return error_response(path_not_found_error());
      return discovery_response(path, request);
    default:
      break;
  }
  const ResourceType& type = *path.type;
  QueryParams params = parse_query(query_text);
  const std::string& method = request.method;
  bool watch = parse_bool(param(params, "watch"));
  if (type.create_only) {
    if (method != "POST") {
      std::string action = method;
      std::transform(action.begin(), action.end(), action.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      return error_response(method_not_allowed_error(type, action));
    }
    return access_review(who, request, path);
  }
  if (path.kind == PathKind::kToken) {
    if (method != "POST") return error_response(method_not_allowed_error(type, "get"));
    return token_request(who, request, path);
  }
  if (path.kind == PathKind::kEviction) {
    if (method != "POST") return error_response(method_not_allowed_error(type, "get"));
    if (std::optional<ApiError> denied = authorizer_.check(
            who, Attributes{"create", &type, "eviction", path.namespace_, path.name}))
      return error_response(*denied);
    Expected<json::object> eviction = decode_object(kEviction, request, path.namespace_);
    if (!eviction.ok()) return error_response(eviction.error());
    return evict(store_, type, path.namespace_, path.name, eviction.value());
  }

  const bool approval = path.kind == PathKind::kApproval;
  Attributes attributes{{},
                        &type,
                        path.kind == PathKind::kStatus ? "status"
                        : approval                     ? "approval"
                                                       : "",
                        path.namespace_,
                        path.name};
  if (path.kind == PathKind::kCollection) {
    // Across namespaces, list and watch alone.
    attributes.verb = method == "GET"                            ? (watch ? "watch" : "list")
                      : method == "POST" && !path.all_namespaces ? "create"
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
    Expected<FieldSelector> parsed = parse_field_selector(param(params, "fieldSelector"), type);
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
  const bool table = wants_table(request.accept);
  if (verb == "get") {
    Expected<json::object> object = store_.get(type, path.namespace_, path.name);
    if (!object.ok()) return error_response(object.error());
    if (table && path.kind == PathKind::kObject)
      return json_response(
          200, table_of(type, {object.value()}, metadata_string(object.value(), "resourceVersion"),
                        crd_of(type), param(params, "includeObject")));
    return json_response(200, object.value());
  }
  if (verb == "list" || verb == "watch") {
    std::string version_text = param(params, "resourceVersion");
    std::optional<std::uint64_t> version;
    if (!version_text.empty() && !(version = parse_number(version_text)))
      return error_response(bad_request_error("invalid resource version \"" + version_text + "\""));
    Expected<LabelSelector> labels = parse_label_selector(param(params, "labelSelector"));
    if (!labels.ok()) return error_response(labels.error());
    WatchFilter filter{&type, path.namespace_, std::move(selector), path.all_namespaces,
                       std::move(labels.value())};
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
    if (!list.ok()) return error_response(list.error());
    if (table)
      return json_response(
          200, table_of(type, list.value().items, std::to_string(list.value().resource_version),
                        crd_of(type), param(params, "includeObject")));
    return json_response(200, list_body(type, std::move(list.value())));
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
      if (created.ok() && is_rbac_type(type)) sync_rbac(store_, authorizer_);
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
    if (is_rbac_type(type)) sync_rbac(store_, authorizer_);
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
    const std::string media = media_type(request.content_type);
    // Custom resources take no strategic merge patch, as kube-apiserver's.
    const bool strategic = media == "application/strategic-merge-patch+json" && type.builtin;
    if (media != "application/merge-patch+json" && !strategic)
      return error_response(unsupported_media_type_error(
          "the body of the request was in an unknown format - accepted media types include: "
          "application/merge-patch+json" +
          std::string(type.builtin ? ", application/strategic-merge-patch+json" : "")));
    boost::system::error_code ec;
    json::value patch = json::parse(request.body, ec);
    if (ec) return error_response(bad_request_error("error decoding patch: " + ec.message()));
    if (strategic) drop_directives(patch);
    Expected<json::object> patched = store_.patch(type, path.namespace_, path.name, patch, scope);
    if (patched.ok() && is_rbac_type(type)) sync_rbac(store_, authorizer_);
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
  if (removed.ok() && is_rbac_type(type)) sync_rbac(store_, authorizer_);
  return removed.ok() ? json_response(200, removed.value()) : error_response(removed.error());
}

std::optional<json::object> RestApi::crd_of(const ResourceType& type) const {
  if (type.builtin) return std::nullopt;
  const ResourceType* crds = find_type("apiextensions.k8s.io", "v1", "customresourcedefinitions");
  Expected<json::object> crd = store_.get(*crds, "", type.group_resource());
  if (!crd.ok()) return std::nullopt;
  return std::move(crd.value());
}

Outcome RestApi::token_request(const Identity& who, const Request& request,
                               const ResourcePath& path) {
  const ResourceType& type = *path.type;
  Attributes attributes{"create", &type, "token", path.namespace_, path.name};
  if (std::optional<ApiError> denied = authorizer_.check(who, attributes))
    return error_response(*denied);
  boost::system::error_code ec;
  json::value body = json::parse(request.body.empty() ? "{}" : request.body, ec);
  if (ec || !body.is_object())
    return error_response(bad_request_error(
        "the object provided is unrecognized (must be of type TokenRequest): not a JSON object"));
  if (!store_.get(type, path.namespace_, path.name).ok())
    return error_response(not_found_error(type, path.name));
  json::object spec;
  if (const json::value* given = body.get_object().if_contains("spec");
      given != nullptr && given->is_object())
    spec = given->get_object();
  std::int64_t seconds = 3600;
  if (const json::value* asked = spec.if_contains("expirationSeconds"); asked && asked->is_int64())
    seconds = asked->get_int64();
  if (seconds < 600)
    return error_response(invalid_error(type, path.name, "spec.expirationSeconds",
                                        "FieldValueInvalid",
                                        "Invalid value: " + std::to_string(seconds) +
                                            ": may not specify a duration less than 10 minutes"));
  if (!spec.contains("audiences"))
    spec["audiences"] = json::array{"https://kubernetes.default.svc"};
  spec["expirationSeconds"] = seconds;
  const auto expires = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
  const std::string token =
      tokens_.issue("system:serviceaccount:" + path.namespace_ + ":" + path.name, expires);
  const std::time_t at = std::chrono::system_clock::to_time_t(expires);
  std::tm parts{};
  gmtime_r(&at, &parts);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return json_response(
      201,
      json::object{{"kind", "TokenRequest"},
                   {"apiVersion", "authentication.k8s.io/v1"},
                   {"metadata", json::object{{"name", path.name},
                                             {"namespace", path.namespace_},
                                             {"creationTimestamp", nullptr}}},
                   {"spec", std::move(spec)},
                   {"status", json::object{{"token", token}, {"expirationTimestamp", stamp}}}});
}

Outcome RestApi::access_review(const Identity& who, const Request& request,
                               const ResourcePath& path) {
  const ResourceType& type = *path.type;
  // system:basic-user, bound to every authenticated user, grants this create.
  if (std::find(who.groups.begin(), who.groups.end(), "system:unauthenticated") != who.groups.end())
    return error_response(forbidden_error(type, "",
                                          "User \"" + who.user + "\" cannot create resource \"" +
                                              std::string(type.resource) + "\" in API group \"" +
                                              std::string(type.group) + "\" at the cluster scope"));
  Expected<json::object> body = decode_object(type, request, "");
  if (!body.ok()) return error_response(body.error());
  json::object review = std::move(body.value());
  const json::value* spec = review.if_contains("spec");
  const json::object* resource = nullptr;
  const json::object* non_resource = nullptr;
  if (spec != nullptr && spec->is_object()) {
    if (const json::value* r = spec->get_object().if_contains("resourceAttributes");
        r && r->is_object())
      resource = &r->get_object();
    if (const json::value* n = spec->get_object().if_contains("nonResourceAttributes");
        n && n->is_object())
      non_resource = &n->get_object();
  }
  if ((resource == nullptr) == (non_resource == nullptr))
    return error_response(invalid_error(type, "", "spec.resourceAttributes", "FieldValueRequired",
                                        "Required value: exactly one of nonResourceAttributes or "
                                        "resourceAttributes must be specified"));
  bool allowed = false;
  if (resource != nullptr) {
    auto text = [&](std::string_view key) {
      const json::value* value = resource->if_contains(key);
      return value && value->is_string() ? std::string(value->get_string()) : std::string{};
    };
    std::string resource_name = text("resource");
    if (!text("subresource").empty()) resource_name += "/" + text("subresource");
    allowed = authorizer_.allowed(who, text("verb"), text("group"), resource_name,
                                  text("namespace"), text("name"));
  } else {
    allowed = std::find(who.groups.begin(), who.groups.end(), "system:unauthenticated") ==
              who.groups.end();
  }
  json::object status{{"allowed", allowed}};
  if (allowed &&
      std::find(who.groups.begin(), who.groups.end(), "system:masters") == who.groups.end())
    status["reason"] = "RBAC: allowed by the test API server's rules";
  review["status"] = std::move(status);
  review["kind"] = type.kind;
  review["apiVersion"] = type.api_version();
  json::value& metadata = review["metadata"];
  if (!metadata.is_object()) metadata = json::object{};
  metadata.get_object()["creationTimestamp"] = nullptr;
  return json_response(201, review);
}

}  // namespace tetherd::test::apiserver
