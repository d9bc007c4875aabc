#include "test/support/api_server/csr.h"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include <boost/json/serialize.hpp>

#include "agent/core/base64.h"
#include "test/support/api_server/store.h"

namespace tetherd::test::apiserver {
namespace {

namespace json = boost::json;

const json::object* object_at(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_object() ? &v->get_object() : nullptr;
}

std::string string_at(const json::object* o, const char* key) {
  const json::value* v = o ? o->if_contains(key) : nullptr;
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string name_of(const json::object& o) {
  return string_at(object_at(o, "metadata"), "name");
}

// The types of status.conditions whose status is True (absent: True).
std::set<std::string> conditions_of(const json::object& csr) {
  std::set<std::string> out;
  const json::object* status = object_at(csr, "status");
  const json::value* list = status ? status->if_contains("conditions") : nullptr;
  if (!list || !list->is_array()) return out;
  for (const json::value& c : list->get_array()) {
    if (!c.is_object()) continue;
    const std::string state = string_at(&c.get_object(), "status");
    if (state.empty() || state == "True") out.insert(string_at(&c.get_object(), "type"));
  }
  return out;
}

}  // namespace

Expected<json::object> admit_csr(const ResourceType& type, const Identity& who,
                                 json::object object) {
  const std::string name = name_of(object);
  json::object* spec = object.contains("spec") && object["spec"].is_object()
                           ? &object["spec"].get_object()
                           : nullptr;
  if (spec == nullptr)
    return invalid_error(type, name, "spec.request", "FieldValueRequired", "Required value");
  const std::string encoded = string_at(spec, "request");
  if (encoded.empty())
    return invalid_error(type, name, "spec.request", "FieldValueRequired", "Required value");
  const auto request = decode_base64("spec.request", encoded);
  if (!request)
    return invalid_error(type, name, "spec.request", "FieldValueInvalid",
                         "Invalid value: illegal base64 data");
  if (request->find("-----BEGIN CERTIFICATE REQUEST-----") == std::string::npos)
    return invalid_error(type, name, "spec.request", "FieldValueInvalid",
                         "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST");
  if (string_at(spec, "signerName").empty())
    return invalid_error(type, name, "spec.signerName", "FieldValueRequired", "Required value");
  const json::value* usages = spec->if_contains("usages");
  if (!usages || !usages->is_array() || usages->get_array().empty())
    return invalid_error(type, name, "spec.usages", "FieldValueRequired", "Required value");
  if (const json::value* seconds = spec->if_contains("expirationSeconds")) {
    if (!seconds->is_int64() || seconds->get_int64() < 600)
      return invalid_error(type, name, "spec.expirationSeconds", "FieldValueInvalid",
                           "Invalid value: " + json::serialize(*seconds) +
                               ": may not specify a duration less than 600 seconds (10 minutes)");
  }
  (*spec)["username"] = who.user;
  json::array groups;
  for (const std::string& g : who.groups)
    groups.emplace_back(g);
  (*spec)["groups"] = std::move(groups);
  spec->erase("uid");
  spec->erase("extra");
  return object;
}

Expected<json::object> approve_csr(const ResourceType& type, const json::object& current,
                                   const json::object& body) {
  const std::string name = name_of(current);
  json::array conditions;
  if (const json::object* status = object_at(body, "status")) {
    if (const json::value* list = status->if_contains("conditions"); list && list->is_array())
      conditions = list->get_array();
  }
  json::object next = current;
  json::object status =
      object_at(current, "status") ? *object_at(current, "status") : json::object();
  status["conditions"] = conditions;
  next["status"] = status;
  // The write's precondition is the body's resourceVersion, as for any PUT.
  const std::string version = string_at(object_at(body, "metadata"), "resourceVersion");
  if (!version.empty()) next["metadata"].get_object()["resourceVersion"] = version;
  const std::set<std::string> before = conditions_of(current);
  const std::set<std::string> after = conditions_of(next);
  if (after.contains("Approved") && after.contains("Denied"))
    return invalid_error(type, name, "status.conditions", "FieldValueInvalid",
                         "Invalid value: Approved and Denied conditions are mutually exclusive");
  for (const char* kept : {"Approved", "Denied"}) {
    if (before.contains(kept) && !after.contains(kept))
      return invalid_error(
          type, name, "status.conditions", "FieldValueForbidden",
          std::string("Forbidden: updates may not remove a condition of type \"") + kept + "\"");
  }
  return next;
}

std::optional<json::object> sign_csr(const json::object& csr, const CsrSigner& signer) {
  if (signer.ca == nullptr) return std::nullopt;
  const json::object* spec = object_at(csr, "spec");
  if (string_at(spec, "signerName") != kKubeApiserverClientSigner) return std::nullopt;
  const std::set<std::string> conditions = conditions_of(csr);
  if (!conditions.contains("Approved") || conditions.contains("Denied") ||
      conditions.contains("Failed"))
    return std::nullopt;
  json::object status = object_at(csr, "status") ? *object_at(csr, "status") : json::object();
  if (!string_at(&status, "certificate").empty()) return std::nullopt;

  auto failed = [&](const std::string& message) {
    json::array list =
        status.contains("conditions") ? status["conditions"].get_array() : json::array();
    list.push_back(json::object{{"type", "Failed"},
                                {"status", "True"},
                                {"reason", "SignerValidationFailure"},
                                {"message", message},
                                {"lastUpdateTime", rfc3339_now()},
                                {"lastTransitionTime", rfc3339_now()}});
    status["conditions"] = std::move(list);
    return status;
  };
  static const std::set<std::string> kAllowed{"digital signature", "key encipherment",
                                              "client auth"};
  bool client_auth = false;
  const json::value* usages = spec->if_contains("usages");
  for (const json::value& u : usages && usages->is_array() ? usages->get_array() : json::array()) {
    const std::string usage = u.is_string() ? std::string(u.get_string()) : std::string("?");
    if (!kAllowed.contains(usage)) return failed("invalid usage for client certificate: " + usage);
    client_auth = client_auth || usage == "client auth";
  }
  if (!client_auth) return failed("missing required usages: client auth");

  std::chrono::seconds duration = signer.max_duration;
  if (const json::value* s = spec->if_contains("expirationSeconds"); s && s->is_int64())
    duration = std::min(duration, std::chrono::seconds(s->get_int64()));
  const auto request = decode_base64("spec.request", string_at(spec, "request"));
  if (!request) return failed("invalid certificate request: " + request.error().message);
  try {
    status["certificate"] = encode_base64(signer.ca->sign_client_request(
        *request, duration, signer.now ? std::optional(signer.now()) : std::nullopt));
  } catch (const std::exception& e) {
    return failed(std::string("invalid certificate request: ") + e.what());
  }
  return status;
}

}  // namespace tetherd::test::apiserver
