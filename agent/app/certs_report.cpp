#include "agent/app/certs_report.h"

#include "agent/core/kube_time.h"
#include "agent/core/linkerd_objects.h"

namespace tetherd {
namespace json = boost::json;

namespace {

json::object certificate_json(const CertificateInfo& c) {
  json::object o{{"subject", c.subject},
                 {"issuer", c.issuer},
                 {"notBefore", format_kube_time(c.not_before)},
                 {"notAfter", format_kube_time(c.not_after)},
                 {"keyType", c.key_type},
                 {"serial", c.serial_hex},
                 {"sha256", c.sha256_fingerprint}};
  return o;
}

std::string certificate_line(std::string_view label, const CertificateInfo& c) {
  std::string line(label);
  line.resize(8, ' ');
  return line + c.subject + "  " + format_kube_time(c.not_before) + " .. " +
         format_kube_time(c.not_after) + "  " + c.key_type + "\n";
}

}  // namespace

json::object certs_to_json(const IssuerReport& r) {
  const IssuerVerdict& v = r.verdict;
  json::object o{{"valid", v.valid},
                 {"reason", v.reason},
                 {"message", v.message},
                 {"issuerState", to_string(v.issuer)},
                 {"anchorState", to_string(v.anchor)},
                 {"rotate", v.rotate},
                 {"managedElsewhere", r.managed_elsewhere}};
  o["issuer"] = r.issuer ? json::value(certificate_json(*r.issuer)) : json::value(nullptr);
  if (r.layout) o["layout"] = to_string(*r.layout);
  json::array anchors;
  for (const auto& a : r.anchors)
    anchors.push_back(certificate_json(a));
  o["anchors"] = std::move(anchors);
  return o;
}

json::object rotation_to_json(const RotationResult& r) {
  json::object o{{"trigger", to_string(r.trigger)},
                 {"before", certs_to_json(r.before)},
                 {"rotated", r.rotated},
                 {"conflicts", r.conflicts}};
  if (r.issued) o["issued"] = certificate_json(*r.issued);
  if (!r.error.empty()) o["error"] = r.error;
  // A write whose answer was lost (it may have taken), and one such write
  // found in the Secret by this pass.
  if (r.answer_lost) o["answerLost"] = true;
  if (r.found_written) o["foundWritten"] = format_kube_time(*r.found_written);
  return o;
}

std::string render_certs(const IssuerReport& r) {
  std::string out;
  if (r.issuer) out += certificate_line("issuer", *r.issuer);
  for (const auto& a : r.anchors)
    out += certificate_line("anchor", a);
  out += (r.verdict.valid ? "OK      " : "PROBLEM ") + r.verdict.reason + ": " + r.verdict.message +
         "\n";
  if (r.managed_elsewhere)
    out += "        cert-manager manages this issuer; tetherd only reports\n";
  return out;
}

std::string render_rotation(const RotationResult& r) {
  std::string out = render_certs(r.before);
  if (r.rotated) {
    out += "rotated a new issuer, valid until " + format_kube_time(r.issued->not_after) +
           " (serial " + r.issued->serial_hex + ")\n";
  } else if (!r.error.empty()) {
    out += "not rotated: " + r.error + "\n";
  } else {
    out += "not rotated: nothing to do\n";
  }
  return out;
}

std::vector<CertificateExpiry> certificate_statuses(const RotationResult& result) {
  std::vector<CertificateExpiry> out;
  const std::optional<CertificateInfo>& issuer =
      result.issued ? result.issued : result.before.issuer;
  if (issuer) {
    out.push_back({std::string(kIssuerSecretName), "issuer",
                   issuer->subject_cn.empty() ? issuer->subject : issuer->subject_cn,
                   issuer->not_after});
  }
  for (const CertificateInfo& a : result.before.anchors) {
    const std::string name = a.subject_cn.empty() ? a.subject : a.subject_cn;
    out.push_back({name, "trustAnchor", name, a.not_after});
  }
  return out;
}

}  // namespace tetherd
