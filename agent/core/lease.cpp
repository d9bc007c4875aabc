#include "agent/core/lease.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include <boost/json/serialize.hpp>

#include "agent/core/backoff.h"
#include "agent/core/kube_time.h"

namespace tetherd {

namespace json = boost::json;

namespace {

constexpr std::string_view kApiVersion = "coordination.k8s.io/v1";
constexpr std::string_view kKind = "Lease";

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

// A field that is absent or null reads as ""; one that is there and not a
// string is not what kube-apiserver sends.
std::optional<std::string> optional_string(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return std::string{};
  if (!v->is_string()) return std::nullopt;
  return std::string(v->get_string());
}

}  // namespace

std::string lease_name(std::string_view node) {
  return "tetherd-" + std::string(node);
}

json::object new_lease(const LeaseSpec& spec, WallTime now) {
  const std::string time = format_kube_micro_time(now);
  return json::object{{"apiVersion", kApiVersion},
                      {"kind", kKind},
                      {"metadata", {{"name", spec.name}, {"namespace", spec.namespace_}}},
                      {"spec",
                       {{"holderIdentity", spec.holder},
                        {"leaseDurationSeconds", spec.duration.count()},
                        {"acquireTime", time},
                        {"renewTime", time}}}};
}

Result<json::object> renewed_lease(json::object current, const LeaseSpec& spec, WallTime now) {
  const std::string what = "Lease " + spec.namespace_ + "/" + spec.name + ": ";
  // A built-in type in a list has no kind or apiVersion; a GET has both.
  auto kind = optional_string(current, "kind");
  if (!kind) return make_error(what + "kind is not a string");
  if (!kind->empty() && *kind != kKind)
    return make_error(what + "the server sent a " + *kind + ", not a Lease");
  auto api_version = optional_string(current, "apiVersion");
  if (!api_version) return make_error(what + "apiVersion is not a string");
  if (!api_version->empty() && *api_version != kApiVersion)
    return make_error(what + "the server sent apiVersion " + quoted(*api_version) + ", not " +
                      std::string(kApiVersion));

  json::value* metadata = current.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object())
    return make_error(what + "the server's object has no metadata");
  auto name = optional_string(metadata->get_object(), "name");
  if (!name || name->empty()) return make_error(what + "metadata.name is missing");
  // The PUT goes to our name; another name would only get a puzzling 400.
  if (*name != spec.name)
    return make_error(what + "the server sent the Lease " + quoted(*name) + " instead");

  json::value& spec_value = current["spec"];
  if (spec_value.is_null()) spec_value = json::object{};
  if (!spec_value.is_object()) return make_error(what + "spec is not an object");
  json::object& s = spec_value.get_object();

  auto holder = optional_string(s, "holderIdentity");
  if (!holder) return make_error(what + "spec.holderIdentity is not a string");
  const std::string time = format_kube_micro_time(now);
  if (*holder != spec.holder) {
    // An int32 in the API; anything else did not come from kube-apiserver.
    std::int64_t transitions = 0;
    if (const json::value* t = s.if_contains("leaseTransitions"); t != nullptr && !t->is_null()) {
      if (!t->is_int64() || t->get_int64() < 0 || t->get_int64() >= INT32_MAX)
        return make_error(what + "spec.leaseTransitions is not a count: " + json::serialize(*t));
      transitions = t->get_int64();
    }
    s["holderIdentity"] = spec.holder;
    s["acquireTime"] = time;
    s["leaseTransitions"] = transitions + 1;
  }
  s["leaseDurationSeconds"] = spec.duration.count();
  s["renewTime"] = time;
  return current;
}

Duration lease_wait(Duration interval, Duration lease_duration, std::optional<Duration> retry_after,
                    double unit) {
  unit = clamp_unit(unit);
  const auto share = [unit](Duration d) {
    return Duration(static_cast<Duration::rep>(static_cast<double>(d.count()) * unit));
  };
  if (!retry_after) return interval + share(interval / 25);
  const Duration longest = std::max(interval, lease_duration);
  const Duration asked = std::clamp(*retry_after, interval, longest);
  return std::min(asked + share(asked / 2), longest);
}

}  // namespace tetherd
