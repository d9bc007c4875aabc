#include "agent/core/linkerd_objects.h"

#include <optional>

#include "agent/core/base64.h"
#include "agent/core/kube_time.h"

namespace tetherd {
namespace json = boost::json;

namespace {

const json::object* object_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

std::string_view string_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string_view(v->get_string()) : std::string_view{};
}

// data[key] of a Secret, decoded; "" and no error when absent.
Result<std::string> secret_value(const json::object& data, std::string_view key,
                                 std::string_view where) {
  const json::value* v = data.if_contains(key);
  if (v == nullptr || v->is_null()) return Result<std::string>(boost::system::in_place_value, "");
  const std::string field = std::string(where) + " data[\"" + std::string(key) + "\"]";
  if (!v->is_string()) return make_error(field + " is not a string");
  if (v->get_string().size() > kMaxPemValueBytes * 4 / 3 + 4)
    return make_error(field + " is larger than 256 KiB");
  return decode_base64(field, v->get_string());
}

}  // namespace

std::string_view to_string(IssuerLayout layout) {
  return layout == IssuerLayout::kTls ? "tls.crt/tls.key" : "crt.pem/key.pem";
}

Result<IssuerSecret> decode_issuer_secret(const json::object& secret, std::string_view where_) {
  const std::string where(where_);
  const json::object* data = object_at(secret, "data");
  if (data == nullptr) return make_error(where + " has no data");
  IssuerSecret out;
  std::string_view cert_key = "tls.crt", key_key = "tls.key";
  if (!data->contains("tls.crt") && data->contains("crt.pem")) {
    out.layout = IssuerLayout::kLegacy;
    cert_key = "crt.pem";
    key_key = "key.pem";
  }
  if (!data->contains(cert_key) && !data->contains(key_key))
    return make_error(where + " holds neither tls.crt and tls.key nor crt.pem and key.pem");
  for (std::string_view key : {cert_key, key_key})
    if (!data->contains(key)) return make_error(where + " has no " + std::string(key));
  auto cert = secret_value(*data, cert_key, where);
  if (!cert) return cert.error();
  auto key = secret_value(*data, key_key, where);
  if (!key) return key.error();
  out.cert_pem = std::move(*cert);
  out.key_pem = std::move(*key);
  if (out.layout == IssuerLayout::kTls) {
    auto ca = secret_value(*data, "ca.crt", where);
    if (!ca) return ca.error();
    out.ca_pem = std::move(*ca);
  }
  if (const json::object* metadata = object_at(secret, "metadata"))
    out.resource_version = std::string(string_at(*metadata, "resourceVersion"));
  return out;
}

Result<std::string> decode_trust_roots(const json::object& config_map, std::string_view where_,
                                       std::string_view key_) {
  const std::string where(where_), key(key_);
  const json::object* data = object_at(config_map, "data");
  const json::value* bundle = data != nullptr ? data->if_contains(key) : nullptr;
  if (bundle == nullptr) return make_error(where + " has no " + key);
  if (!bundle->is_string()) return make_error(where + " " + key + " is not a string");
  if (bundle->get_string().size() > kMaxPemValueBytes)
    return make_error(where + " " + key + " is larger than 256 KiB");
  return Result<std::string>(boost::system::in_place_value, std::string(bundle->get_string()));
}

json::object issuer_secret_update(json::object secret, IssuerLayout layout,
                                  std::string_view cert_pem, std::string_view key_pem,
                                  std::string_view anchor_pem) {
  json::value& data_value = secret["data"];
  if (!data_value.is_object()) data_value = json::object{};
  json::object& data = data_value.get_object();
  if (layout == IssuerLayout::kTls) {
    data["tls.crt"] = encode_base64(cert_pem);
    data["tls.key"] = encode_base64(key_pem);
    // ca.crt names the anchor that signed tls.crt (cert-manager's layout).
    data["ca.crt"] = encode_base64(anchor_pem);
  } else {
    data["crt.pem"] = encode_base64(cert_pem);
    data["key.pem"] = encode_base64(key_pem);
  }
  return secret;
}

json::object trust_roots_update(json::object config_map, std::string_view bundle_pem) {
  json::value& data = config_map["data"];
  if (!data.is_object()) data = json::object{};
  data.get_object()[kTrustRootsKey] = bundle_pem;
  return config_map;
}

json::object restart_patch(WallTime now) {
  return json::object{
      {"spec",
       {{"template",
         {{"metadata", {{"annotations", {{kRestartedAtAnnotation, format_kube_time(now)}}}}}}}}}};
}

bool issuer_updated_since(const json::object& event, WallTime since) {
  if (string_at(event, "reason") != kIssuerUpdatedReason) return false;
  // An Event says when it happened in several places, by API version and by
  // emitter: take the latest that parses. creationTimestamp only when there
  // is none: it is when the object was made, and a recurring Event keeps
  // its first one.
  std::optional<WallTime> latest;
  auto consider = [&](std::string_view text) {
    if (auto t = parse_kube_time(text); t && (!latest || *t > *latest)) latest = t;
  };
  consider(string_at(event, "lastTimestamp"));
  consider(string_at(event, "eventTime"));
  if (const json::object* series = object_at(event, "series"))
    consider(string_at(*series, "lastObservedTime"));
  if (const json::object* metadata = object_at(event, "metadata"); metadata && !latest)
    consider(string_at(*metadata, "creationTimestamp"));
  return latest && *latest >= std::chrono::floor<std::chrono::seconds>(since);
}

bool restarted_since(const json::object& deployment, WallTime since, WallTime until) {
  const json::object* annotations = nullptr;
  if (const json::object* spec = object_at(deployment, "spec"))
    if (const json::object* tmpl = object_at(*spec, "template"))
      if (const json::object* metadata = object_at(*tmpl, "metadata"))
        annotations = object_at(*metadata, "annotations");
  if (annotations == nullptr) return false;
  const auto at = parse_kube_time(string_at(*annotations, kRestartedAtAnnotation));
  // A later second: one stamped in the write's own second may have come
  // before it.
  return at && *at > std::chrono::floor<std::chrono::seconds>(since) && *at <= until;
}

}  // namespace tetherd
