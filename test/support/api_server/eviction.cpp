#include "test/support/api_server/eviction.h"

#include <cstdint>
#include <optional>
#include <vector>

#include "test/support/api_server/label_selector.h"

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

constexpr int kConflictRetries = 20;  // EvictionsRetry's steps
constexpr std::size_t kMaxDisruptedPods = 2000;

const json::object* object_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_object() ? &value->get_object() : nullptr;
}

std::string string_at(const json::object* object, std::string_view key) {
  const json::value* value = object != nullptr ? object->if_contains(key) : nullptr;
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string{};
}

std::int64_t number_at(const json::object* object, std::string_view key) {
  const json::value* value = object != nullptr ? object->if_contains(key) : nullptr;
  boost::system::error_code ec;
  const std::int64_t number = value != nullptr ? value->to_number<std::int64_t>(ec) : 0;
  return ec ? 0 : number;
}

// podutil.IsPodReady: a Ready condition that is True.
bool ready(const json::object& pod) {
  const json::object* status = object_at(pod, "status");
  const json::value* conditions = status != nullptr ? status->if_contains("conditions") : nullptr;
  if (conditions == nullptr || !conditions->is_array()) return false;
  for (const json::value& condition : conditions->get_array())
    if (condition.is_object() && string_at(&condition.get_object(), "type") == "Ready")
      return string_at(&condition.get_object(), "status") == "True";
  return false;
}

// checkAndDecrement: nothing when the budget allows one more disruption,
// now counted; its refusal otherwise. A write that meets a concurrent one
// reads the budget again and retries, as kube-apiserver does.
std::optional<ApiError> take_disruption(Store& store, const ResourceType& budgets,
                                        json::object budget, const std::string& pod) {
  const std::string namespace_ = string_at(object_at(budget, "metadata"), "namespace");
  const std::string name = string_at(object_at(budget, "metadata"), "name");
  // Its Forbidden names the singular, policy.Resource("poddisruptionbudget").
  ResourceType singular = budgets;
  singular.resource = budgets.singular;
  for (int attempt = 1;; ++attempt) {
    json::value& status_value = budget["status"];
    if (!status_value.is_object()) status_value = json::object{};
    json::object& status = status_value.get_object();
    const std::int64_t allowed = number_at(&status, "disruptionsAllowed");
    const json::object* disrupted = object_at(status, "disruptedPods");
    if (number_at(&status, "observedGeneration") <
        number_at(object_at(budget, "metadata"), "generation"))
      return disruption_budget_error(
          "The disruption budget " + name + " is still being processed by the server.", 10);
    if (allowed < 0) return forbidden_error(singular, name, "pdb disruptions allowed is negative");
    if (disrupted != nullptr && disrupted->size() > kMaxDisruptedPods)
      return forbidden_error(
          singular, name,
          "DisruptedPods map too big - too many evictions not confirmed by PDB controller");
    if (allowed == 0)
      return disruption_budget_error(
          "The disruption budget " + name + " needs " +
              std::to_string(number_at(&status, "desiredHealthy")) + " healthy pods and has " +
              std::to_string(number_at(&status, "currentHealthy")) + " currently",
          0);

    status["disruptionsAllowed"] = allowed - 1;
    json::value& pods = status["disruptedPods"];
    if (!pods.is_object()) pods = json::object{};
    pods.get_object()[pod] = rfc3339_now();
    Expected<json::object> written =
        store.update(budgets, namespace_, name, budget, WriteScope::kStatus);
    if (written.ok()) return std::nullopt;
    if (written.error().code != 409 || attempt == kConflictRetries) return written.error();
    Expected<json::object> fresh = store.get(budgets, namespace_, name);
    if (!fresh.ok()) return fresh.error();
    budget = std::move(fresh.value());
  }
}

}  // namespace

Response evict(Store& store, const ResourceType& pods, const std::string& namespace_,
               const std::string& name, const json::object& eviction) {
  if (string_at(object_at(eviction, "metadata"), "name") != name)
    return error_response(bad_request_error("name in URL does not match name in Eviction object"));
  Expected<json::object> found = store.get(pods, namespace_, name);
  if (!found.ok()) return error_response(found.error());
  const json::object& pod = found.value();

  // A pod done, not started yet or already going disrupts nothing more (canIgnorePDB).
  const std::string phase = string_at(object_at(pod, "status"), "phase");
  if (phase != "Succeeded" && phase != "Failed" && phase != "Pending" &&
      string_at(object_at(pod, "metadata"), "deletionTimestamp").empty()) {
    const ResourceType& budgets = *find_type("policy", "v1", "poddisruptionbudgets");
    Expected<ListResult> listed = store.list(WatchFilter{&budgets, namespace_, {}}, std::nullopt);
    if (!listed.ok()) return error_response(listed.error());
    std::vector<json::object> covering;
    for (json::object& budget : listed.value().items) {
      const json::object* spec = object_at(budget, "spec");
      const json::value* selector = spec != nullptr ? spec->if_contains("selector") : nullptr;
      std::optional<LabelSelector> parsed =
          selector != nullptr ? label_selector_from(*selector) : std::nullopt;
      // An empty selector would take in every pod: it takes in none.
      if (parsed && !parsed->requirements.empty() && parsed->matches(pod))
        covering.push_back(std::move(budget));
    }
    if (covering.size() > 1) return error_response(multiple_budgets_error());
    if (covering.size() == 1) {
      const json::object& budget = covering.front();
      const json::object* status = object_at(budget, "status");
      const std::int64_t desired = number_at(status, "desiredHealthy");
      // An unready pod is no disruption to a budget that has its healthy pods
      // (or lets unhealthy pods go).
      const bool unready_spare =
          !ready(pod) &&
          (string_at(object_at(budget, "spec"), "unhealthyPodEvictionPolicy") == "AlwaysAllow" ||
           (desired > 0 && number_at(status, "currentHealthy") >= desired));
      if (!unready_spare)
        if (std::optional<ApiError> refused = take_disruption(store, budgets, budget, name))
          return error_response(*refused);
    }
  }
  Expected<json::object> removed = store.remove(pods, namespace_, name, std::nullopt);
  if (!removed.ok()) return error_response(removed.error());
  return json_response(201, json::object{{"kind", "Status"},
                                         {"apiVersion", "v1"},
                                         {"metadata", json::object{}},
                                         {"status", "Success"},
                                         {"code", 201}});
}

}  // namespace tetherd::test::apiserver
