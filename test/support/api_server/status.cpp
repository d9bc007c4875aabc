#include "test/support/api_server/status.h"

#include <boost/json/array.hpp>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

json::object details_for(const ResourceType& type, std::string_view name) {
  // Omitted when empty, as Go's omitempty does.
  json::object details;
  if (!name.empty()) details["name"] = name;
  if (!type.group.empty()) details["group"] = type.group;
  details["kind"] = type.resource;
  return details;
}

ApiError make(unsigned code, std::string_view reason, std::string message,
              std::optional<json::object> details = std::nullopt) {
  json::object status;
  status["kind"] = "Status";
  status["apiVersion"] = "v1";
  status["metadata"] = json::object{};
  status["status"] = "Failure";
  status["message"] = message;
  if (!reason.empty()) status["reason"] = reason;
  if (details) status["details"] = std::move(*details);
  status["code"] = code;
  return ApiError{code, std::move(status), std::nullopt};
}

}  // namespace

std::string_view status_message(const ApiError& error) {
  const json::value* message = error.status.if_contains("message");
  return message != nullptr && message->is_string() ? std::string_view(message->get_string())
                                                    : std::string_view{};
}

ApiError not_found_error(const ResourceType& type, std::string_view name) {
  return make(404, "NotFound", type.group_resource() + " \"" + std::string(name) + "\" not found",
              details_for(type, name));
}

ApiError path_not_found_error() {
  return make(404, "NotFound", "the server could not find the requested resource", json::object{});
}

ApiError already_exists_error(const ResourceType& type, std::string_view name) {
  return make(409, "AlreadyExists",
              type.group_resource() + " \"" + std::string(name) + "\" already exists",
              details_for(type, name));
}

ApiError conflict_error(const ResourceType& type, std::string_view name, std::string_view why) {
  return make(409, "Conflict",
              "Operation cannot be fulfilled on " + type.group_resource() + " \"" +
                  std::string(name) + "\": " + std::string(why),
              details_for(type, name));
}

ApiError modified_conflict_error(const ResourceType& type, std::string_view name) {
  return conflict_error(type, name,
                        "the object has been modified; please apply your changes to the latest "
                        "version and try again");
}

ApiError forbidden_error(const ResourceType& type, std::string_view name, std::string_view why) {
  std::string message = type.group_resource();
  if (!name.empty()) message += " \"" + std::string(name) + "\"";
  message += " is forbidden: " + std::string(why);
  return make(403, "Forbidden", std::move(message), details_for(type, name));
}

ApiError bad_request_error(std::string message) {
  return make(400, "BadRequest", std::move(message));
}

ApiError invalid_error(const ResourceType& type, std::string_view name, std::string_view field,
                       std::string_view cause_type, std::string_view detail) {
  json::object details;
  details["name"] = name;
  if (!type.group.empty()) details["group"] = type.group;
  details["kind"] = type.kind;
  details["causes"] =
      json::array{json::object{{"reason", cause_type}, {"message", detail}, {"field", field}}};
  return make(422, "Invalid",
              type.group_kind() + " \"" + std::string(name) +
                  "\" is invalid: " + std::string(field) + ": " + std::string(detail),
              std::move(details));
}

ApiError unsupported_media_type_error(std::string message) {
  return make(415, "UnsupportedMediaType", std::move(message));
}

ApiError method_not_allowed_error(const ResourceType& type, std::string_view action) {
  json::object details;
  if (!type.group.empty()) details["group"] = type.group;
  details["kind"] = type.resource;
  return make(405, "MethodNotAllowed",
              std::string(action) + " is not supported on resources of kind \"" +
                  type.group_resource() + "\"",
              std::move(details));
}

ApiError unauthorized_error() {
  return make(401, "Unauthorized", "Unauthorized");
}

ApiError entity_too_large_error(std::size_t limit) {
  return make(413, "RequestEntityTooLarge",
              "Request entity too large: limit is " + std::to_string(limit));
}

ApiError internal_error(std::string_view cause) {
  return make(500, "InternalError", "Internal error occurred: " + std::string(cause),
              json::object{{"causes", json::array{json::object{{"message", cause}}}}});
}

ApiError service_unavailable_error(int retry_after_seconds) {
  ApiError error =
      make(503, "ServiceUnavailable", "the server is currently unable to handle the request");
  error.retry_after = retry_after_seconds;
  return error;
}

ApiError too_many_requests_error(int retry_after_seconds) {
  ApiError error = make(429, "TooManyRequests", "Too many requests, please try again later.",
                        json::object{{"retryAfterSeconds", retry_after_seconds}});
  error.retry_after = retry_after_seconds;
  return error;
}

ApiError expired_error(std::string message) {
  return make(410, "Expired", std::move(message));
}

ApiError disruption_budget_error(std::string_view cause, int retry_after_seconds) {
  json::object details{
      {"causes", json::array{json::object{{"reason", "DisruptionBudget"}, {"message", cause}}}}};
  if (retry_after_seconds > 0) details["retryAfterSeconds"] = retry_after_seconds;
  ApiError error =
      make(429, "TooManyRequests",
           "Cannot evict pod as it would violate the pod's disruption budget.", std::move(details));
  if (retry_after_seconds > 0) error.retry_after = retry_after_seconds;
  return error;
}

ApiError multiple_budgets_error() {
  return make(500, "",
              "This pod has more than one PodDisruptionBudget, which the eviction subresource "
              "does not support.");
}

}  // namespace tetherd::test::apiserver
