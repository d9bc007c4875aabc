#include "agent/core/node_status.h"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

namespace json = boost::json;

// The CRD bounds these two (maxLength 64 and 32).
constexpr std::size_t kMaxAgentVersionBytes = 64;
constexpr std::size_t kMaxBackendBytes = 32;

// The CRD's maxLength for certificate names and subjects, and for a path.
constexpr std::size_t kMaxNameBytes = 253;
constexpr std::size_t kMaxPathBytes = 4096;
constexpr std::size_t kMaxDisks = 8;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
constexpr std::string_view kEllipsis = "\xE2\x80\xA6";     // U+2026

// Position in condition_type::kAll, or kAll.size() for a type we do not know.
std::size_t rank(std::string_view type) {
  const auto& all = condition_type::kAll;
  return static_cast<std::size_t>(std::find(all.begin(), all.end(), type) - all.begin());
}

bool continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// The length of the well-formed UTF-8 sequence at the start of `s`, or 0.
// Overlong forms, surrogates and code points above U+10FFFF are not
// well-formed (Unicode's Table 3-7).
std::size_t sequence_length(std::string_view s) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  if (lead < 0x80) return 1;
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (!continuation(b(i))) return 0;
  }
  return n;
}

// Ready's reason when `type` is False: the type said negatively.
std::string_view not_reason(std::string_view type) {
  namespace ct = condition_type;
  if (type == ct::kConnected) return "NotConnected";
  if (type == ct::kFirewallInSync) return "FirewallNotInSync";
  if (type == ct::kCertificatesValid) return "CertificatesNotValid";
  if (type == ct::kCredentialsValid) return "CredentialsNotValid";
  if (type == ct::kK3sReady) return "K3sNotReady";
  if (type == ct::kLinkerdGatewayReady) return "LinkerdGatewayNotReady";
  if (type == ct::kClockSynchronized) return "ClockNotSynchronized";
  if (type == ct::kMeshHealthy) return "MeshNotHealthy";
  if (type == ct::kTunnelConnected) return "TunnelNotConnected";
  return "NotReady";
}

std::string summary(const Condition& c) {
  std::string out = c.type + " is " + std::string(to_string(c.status));
  if (!c.reason.empty()) out += " (" + c.reason + ")";
  if (!c.message.empty()) out += ": " + c.message;
  return bounded_text(out, kMaxConditionMessageBytes);
}

json::object node_object(const NodeVitals& n) {
  json::array disk;
  for (const DiskUsage& d : n.disk) {
    if (disk.size() == kMaxDisks) break;
    disk.push_back(json::object{{"path", bounded_text(d.path, kMaxPathBytes)},
                                {"availableBytes", d.available_bytes},
                                {"totalBytes", d.total_bytes}});
  }
  json::object out{
      {"load1", n.load1},
      {"load5", n.load5},
      {"load15", n.load15},
      {"memoryAvailableBytes", n.memory_available_bytes},
      {"memoryTotalBytes", n.memory_total_bytes},
      {"disk", std::move(disk)},
      {"uptimeSeconds", n.uptime_seconds},
  };
  if (n.last_resume) out["lastResumeTime"] = format_kube_time(*n.last_resume);
  return out;
}

}  // namespace

std::string_view to_string(ConditionStatus status) {
  switch (status) {
    case ConditionStatus::kTrue:
      return "True";
    case ConditionStatus::kFalse:
      return "False";
    case ConditionStatus::kUnknown:
      return "Unknown";
  }
  return "Unknown";
}

std::string condition_reason(std::string_view text) {
  std::string out;
  for (char c : text) {
    const bool letter = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    const bool allowed = letter || (c >= '0' && c <= '9') || c == '_' || c == ',' || c == ':';
    if (out.empty() ? letter : allowed) out += c;
    if (out.size() == kMaxConditionReasonBytes) break;
  }
  while (!out.empty() && (out.back() == ',' || out.back() == ':'))
    out.pop_back();
  return out;
}

std::string bounded_text(std::string_view text, std::size_t max_bytes) {
  std::string out;
  out.reserve(std::min(text.size(), max_bytes + kReplacement.size()));
  while (!text.empty()) {
    const std::size_t n = sequence_length(text);
    out += n == 0 ? kReplacement : text.substr(0, n);
    text.remove_prefix(n == 0 ? 1 : n);
    // Enough to know it must be cut; no need to read the rest.
    if (out.size() > max_bytes) break;
  }
  if (out.size() <= max_bytes) return out;
  // No room for the ellipsis below 3 bytes: cut, still on a boundary.
  const bool room = max_bytes >= kEllipsis.size();
  std::size_t cut = room ? max_bytes - kEllipsis.size() : max_bytes;
  while (cut > 0 && continuation(static_cast<unsigned char>(out[cut])))
    --cut;
  out.resize(cut);
  if (room) out += kEllipsis;
  return out;
}

bool Conditions::set(std::string_view type, ConditionStatus status, std::string_view reason,
                     std::string_view message, WallTime now) {
  if (type == condition_type::kReady || rank(type) == condition_type::kAll.size()) return false;
  Condition next{std::string(type), status, condition_reason(reason),
                 bounded_text(message, kMaxConditionMessageBytes), now};
  const bool changed = put(std::move(next), now);
  if (!changed) return false;
  derive_ready(now);
  return true;
}

const Condition* Conditions::find(std::string_view type) const {
  auto it = std::find_if(conditions_.begin(), conditions_.end(),
                         [&](const Condition& c) { return c.type == type; });
  return it == conditions_.end() ? nullptr : &*it;
}

bool Conditions::erase(std::string_view type, WallTime now) {
  if (type == condition_type::kReady) return false;
  const auto gone = std::erase_if(conditions_, [&](const Condition& c) { return c.type == type; });
  if (gone == 0) return false;
  if (conditions_.size() == 1) {
    conditions_.clear();  // Ready alone: derived from nothing
  } else {
    derive_ready(now);
  }
  return true;
}

// Inserts in rank order, or updates in place keeping lastTransitionTime
// unless the status changed.
bool Conditions::put(Condition next, WallTime now) {
  const std::size_t r = rank(next.type);
  auto it = std::find_if(conditions_.begin(), conditions_.end(),
                         [&](const Condition& c) { return rank(c.type) >= r; });
  if (it == conditions_.end() || it->type != next.type) {
    next.last_transition = now;
    conditions_.insert(it, std::move(next));
    return true;
  }
  next.last_transition = it->status == next.status ? it->last_transition : now;
  if (*it == next) return false;
  *it = std::move(next);
  return true;
}

void Conditions::derive_ready(WallTime now) {
  const Condition* first_false = nullptr;
  const Condition* first_unknown = nullptr;
  for (const Condition& c : conditions_) {
    if (c.type == condition_type::kReady) continue;
    if (c.status == ConditionStatus::kFalse && first_false == nullptr) first_false = &c;
    if (c.status == ConditionStatus::kUnknown && first_unknown == nullptr) first_unknown = &c;
  }
  Condition ready{std::string(condition_type::kReady), ConditionStatus::kTrue, "AllConditionsTrue",
                  "every condition is True", now};
  if (first_false != nullptr) {
    ready.status = ConditionStatus::kFalse;
    ready.reason = not_reason(first_false->type);
    ready.message = summary(*first_false);
  } else if (first_unknown != nullptr) {
    ready.status = ConditionStatus::kUnknown;
    ready.reason = first_unknown->type + "Unknown";
    ready.message = summary(*first_unknown);
  }
  put(std::move(ready), now);
}

json::object status_object(const NodeStatus& status) {
  json::array conditions;
  for (const Condition& c : status.conditions.all()) {
    conditions.push_back(json::object{
        {"type", c.type},
        {"status", to_string(c.status)},
        {"reason", c.reason},
        {"message", c.message},
        {"lastTransitionTime", format_kube_time(c.last_transition)},
    });
  }
  json::object firewall{
      {"sources", static_cast<std::uint64_t>(status.firewall_sources)},
      {"backend", bounded_text(status.firewall_backend, kMaxBackendBytes)},
  };
  if (const auto& r = status.refused_recently) {
    json::array ports;
    for (std::size_t i = 0; i < r->ports.size() && i < 16; ++i)  // the CRD's maxItems
      ports.push_back(r->ports[i]);
    firewall["refusedRecently"] = json::object{{"source", bounded_text(r->source, 45)},
                                               {"ports", std::move(ports)},
                                               {"since", format_kube_time(r->since)}};
  }
  json::array certificates;
  for (const CertificateExpiry& c : status.certificates) {
    if (certificates.size() == kMaxCertificates) break;
    certificates.push_back(json::object{
        {"name", bounded_text(c.name, kMaxNameBytes)},
        {"role", c.role},
        {"subject", bounded_text(c.subject, kMaxNameBytes)},
        {"notAfter", format_kube_time(c.not_after)},
    });
  }
  json::object body{
      {"observedGeneration", status.observed_generation},
      {"agentVersion", bounded_text(status.agent_version, kMaxAgentVersionBytes)},
      {"firewall", std::move(firewall)},
      {"conditions", std::move(conditions)},
      {"certificates", std::move(certificates)},
  };
  if (status.node) body["node"] = node_object(*status.node);
  if (status.linkerd) {
    json::object linkerd{{"meshedProxies", status.linkerd->meshed},
                         {"expiredProxies", status.linkerd->expired},
                         {"unreadableProxies", status.linkerd->unreadable},
                         {"staleBundleProxies", status.linkerd->stale_bundle}};
    if (!status.linkerd->bundle_sha256.empty())
      linkerd["trustBundleSha256"] = status.linkerd->bundle_sha256;
    body["linkerd"] = std::move(linkerd);
  }
  return body;
}

json::object status_patch(const NodeStatus& status) {
  json::object body = status_object(status);
  // A merge patch leaves what it does not name: without linkerd (taken out
  // of the configuration), its counts are removed, not left to go stale.
  if (!status.linkerd) body["linkerd"] = nullptr;
  if (!status.refused_recently) body["firewall"].as_object()["refusedRecently"] = nullptr;
  return json::object{{"status", std::move(body)}};
}

namespace {

// `patch` without what changes every round: status.node's load, free
// memory and disk, and uptime (its lastResumeTime and totals stay: a
// resume is news).
json::object without_vitals(json::object patch) {
  auto* status = patch.if_contains("status");
  auto* node = status && status->is_object() ? status->as_object().if_contains("node") : nullptr;
  if (!node || !node->is_object()) return patch;
  json::object& n = node->as_object();
  for (const char* key : {"load1", "load5", "load15", "memoryAvailableBytes", "uptimeSeconds"})
    n.erase(key);
  if (auto* disk = n.if_contains("disk"); disk && disk->is_array()) {
    for (json::value& d : disk->as_array())
      if (d.is_object()) d.as_object().erase("availableBytes");
  }
  return patch;
}

}  // namespace

bool StatusPublisher::due(const json::object& patch, WallTime now) const {
  if (!last_patch_ || without_vitals(patch) != *last_patch_) return true;
  if (now < last_write_) return true;
  return now - last_write_ >= interval_;
}

void StatusPublisher::written(const json::object& patch, WallTime now) {
  last_patch_ = without_vitals(patch);
  last_write_ = now;
}

}  // namespace tetherd
