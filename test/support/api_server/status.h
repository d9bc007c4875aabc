#pragma once
// kube-apiserver's error bodies: a Status object per error, with the reasons
// and messages of k8s.io/apimachinery/pkg/api/errors, so a client's error
// handling meets the text it will meet in production.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <boost/json/object.hpp>

#include "test/support/api_server/resources.h"

namespace tetherd::test::apiserver {

struct ApiError {
  unsigned code = 500;
  boost::json::object status;      // the Status body
  std::optional<int> retry_after;  // Retry-After header, seconds
};

// A value or the Status to answer instead.
template <typename T>
class Expected {
 public:
  Expected(T value) : state_(std::move(value)) {}
  Expected(ApiError error) : state_(std::move(error)) {}
  bool ok() const { return state_.index() == 0; }
  T& value() { return std::get<0>(state_); }
  const T& value() const { return std::get<0>(state_); }
  ApiError& error() { return std::get<1>(state_); }
  const ApiError& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, ApiError> state_;
};

std::string_view status_message(const ApiError& error);

ApiError not_found_error(const ResourceType& type, std::string_view name);
ApiError path_not_found_error();  // "the server could not find the requested resource"
ApiError already_exists_error(const ResourceType& type, std::string_view name);
// "Operation cannot be fulfilled on T "n": <why>".
ApiError conflict_error(const ResourceType& type, std::string_view name, std::string_view why);
// The optimistic-concurrency conflict every stale write gets.
ApiError modified_conflict_error(const ResourceType& type, std::string_view name);
ApiError forbidden_error(const ResourceType& type, std::string_view name, std::string_view why);
ApiError bad_request_error(std::string message);
ApiError invalid_error(const ResourceType& type, std::string_view name, std::string_view field,
                       std::string_view cause_type, std::string_view detail);
ApiError unsupported_media_type_error(std::string message);
ApiError method_not_allowed_error(const ResourceType& type, std::string_view action);
ApiError unauthorized_error();
ApiError entity_too_large_error(std::size_t limit);
ApiError internal_error(std::string_view cause);
ApiError service_unavailable_error(int retry_after_seconds);
ApiError too_many_requests_error(int retry_after_seconds);
ApiError expired_error(std::string message);
// The eviction subresource's refusals (eviction.h): a disruption budget's
// 429, "Cannot evict pod as it would violate the pod's disruption budget.",
// with `cause` (reason DisruptionBudget) and a Retry-After when not 0; and,
// for a pod under more than one budget, the Status its handler returns: code
// 500, no reason.
ApiError disruption_budget_error(std::string_view cause, int retry_after_seconds);
ApiError multiple_budgets_error();

}  // namespace tetherd::test::apiserver
