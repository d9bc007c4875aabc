#include "agent/core/csr_status.h"

#include "agent/core/base64.h"

namespace tetherd {

namespace json = boost::json;

namespace {

std::string bounded(std::string_view text) {
  return std::string(text.substr(0, kMaxCsrText));
}

}  // namespace

Result<CsrStatus> decode_csr_status(const json::object& csr) {
  CsrStatus out;
  const json::value* status_value = csr.if_contains("status");
  if (status_value == nullptr || status_value->is_null()) return out;
  if (!status_value->is_object()) return make_error("status: expected an object");
  const json::object& status = status_value->get_object();

  bool approved = false;
  const json::value* conditions = status.if_contains("conditions");
  if (conditions != nullptr && !conditions->is_null()) {
    if (!conditions->is_array()) return make_error("status.conditions: expected an array");
    if (conditions->get_array().size() > kMaxCsrConditions)
      return make_error("status.conditions: more than " + std::to_string(kMaxCsrConditions));
    std::size_t i = 0;
    for (const json::value& c : conditions->get_array()) {
      const std::string at = "status.conditions[" + std::to_string(i++) + "]";
      if (!c.is_object()) return make_error(at + ": expected an object");
      const json::object& o = c.get_object();
      std::string error;
      auto text = [&](const char* key) -> std::string {
        const json::value* v = o.if_contains(key);
        if (v == nullptr || v->is_null()) return {};
        if (!v->is_string()) {
          if (error.empty()) error = at + "." + key + ": expected a string";
          return {};
        }
        return bounded(v->get_string());
      };
      const std::string type = text("type");
      const std::string state = text("status");
      std::string reason = text("reason");
      std::string message = text("message");
      if (!error.empty()) return make_error(error);
      if (!state.empty() && state != "True") continue;
      if (type == "Approved") approved = true;
      if ((type == "Denied" || type == "Failed") && out.state != CsrStatus::State::kDenied) {
        out.state = type == "Denied" ? CsrStatus::State::kDenied : CsrStatus::State::kFailed;
        out.reason = std::move(reason);
        out.message = std::move(message);
      }
    }
  }
  if (out.state == CsrStatus::State::kDenied || out.state == CsrStatus::State::kFailed) return out;
  if (!approved) return out;
  out.state = CsrStatus::State::kApproved;

  const json::value* certificate = status.if_contains("certificate");
  if (certificate == nullptr || certificate->is_null()) return out;
  if (!certificate->is_string()) return make_error("status.certificate: expected a string");
  const std::string_view encoded = certificate->get_string();
  if (encoded.empty()) return out;
  if (encoded.size() > kMaxCsrCertificateBytes / 3 * 4 + 4)
    return make_error("status.certificate: larger than " + std::to_string(kMaxCsrCertificateBytes) +
                      " bytes");
  auto pem = decode_base64("status.certificate", encoded);
  if (!pem) return pem.error();
  out.certificate_pem = std::move(*pem);
  out.state = CsrStatus::State::kIssued;
  return out;
}

}  // namespace tetherd
