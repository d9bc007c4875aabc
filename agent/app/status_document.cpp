#include "agent/app/status_document.h"

#include <algorithm>
#include <limits>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "agent/core/kube_time.h"

namespace tetherd {
namespace json = boost::json;

namespace {

std::string_view kind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::object:
      return "an object";
    case json::kind::array:
      return "an array";
    case json::kind::string:
      return "a string";
    case json::kind::bool_:
      return "true or false";
    case json::kind::null:
      return "null";
    default:
      return "a number";
  }
}

bool digit(char c) {
  return c >= '0' && c <= '9';
}

// A value in an error message, which goes to a terminal: short, cut on a
// character boundary, control characters (C0, DEL, C1) shown as '?'.
std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::size_t end = std::min(text.size(), kMax);
  while (end < text.size() && end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80)
    --end;
  std::string out = "\"";
  for (std::size_t i = 0; i < end; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    const auto next = i + 1 < end ? static_cast<unsigned char>(text[i + 1]) : 0;
    const bool c1 = c == 0xc2 && next >= 0x80 && next < 0xa0;
    if (c < 0x20 || c == 0x7f || c1) {
      out += '?';
      i += c1 ? 1 : 0;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + (end < text.size() ? "...\"" : "\"");
}

// Reads fields and keeps the first problem found: what follows a wrong type
// is a consequence of it, so one precise message beats a list.
class Reader {
 public:
  const std::string& problem() const { return problem_; }

  void fail(const std::string& path, std::string_view what) {
    if (problem_.empty()) problem_ = path + ": " + std::string(what);
  }

  // Null is read as absent: a serialiser may write either for "nothing".
  const json::value* find(const json::object& o, std::string_view key, const std::string& path,
                          bool required) {
    const json::value* v = o.if_contains(key);
    if (v != nullptr && !v->is_null()) return v;
    if (required) fail(path, "missing");
    return nullptr;
  }

  const json::object* object(const json::object& o, std::string_view key, const std::string& path,
                             bool required = false) {
    const json::value* v = find(o, key, path, required);
    if (v != nullptr && !v->is_object()) fail(path, "expected an object, found " + type(*v));
    return v != nullptr ? v->if_object() : nullptr;
  }

  const json::array* array(const json::object& o, std::string_view key, const std::string& path) {
    const json::value* v = find(o, key, path, false);
    if (v != nullptr && !v->is_array()) fail(path, "expected an array, found " + type(*v));
    return v != nullptr ? v->if_array() : nullptr;
  }

  std::optional<std::string> text(const json::object& o, std::string_view key,
                                  const std::string& path, bool required = false) {
    const json::value* v = find(o, key, path, required);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) {
      fail(path, "expected a string, found " + type(*v));
      return std::nullopt;
    }
    return std::string(v->get_string());
  }

  std::optional<std::uint64_t> count(const json::object& o, std::string_view key,
                                     const std::string& path, bool required = false) {
    const json::value* v = find(o, key, path, required);
    if (v == nullptr) return std::nullopt;
    if (v->is_uint64()) return v->get_uint64();
    if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
    if (v->is_int64()) {
      fail(path, "must not be negative, found " + std::to_string(v->get_int64()));
    } else {
      fail(path, "expected a whole number, found " + type(*v));
    }
    return std::nullopt;
  }

  std::optional<WallTime> time(const json::object& o, std::string_view key, const std::string& path,
                               bool required = false) {
    const auto t = text(o, key, path, required);
    if (!t) return std::nullopt;
    // WallTime counts nanoseconds in 64 bits: years 1970 to 2261 keep any
    // difference of two times (an age, a time left) within its range.
    const std::string_view year = std::string_view(*t).substr(0, 4);
    if (year.size() == 4 && std::all_of(year.begin(), year.end(), digit) &&
        (year < "1970" || year > "2261")) {
      fail(path, "out of range (years 1970 to 2261): " + quoted(*t));
      return std::nullopt;
    }
    const auto parsed = parse_kube_time(*t);
    if (!parsed) fail(path, "not an RFC 3339 time: " + quoted(*t));
    return parsed;
  }

 private:
  static std::string type(const json::value& v) {
    if (v.is_double()) return "a fraction";
    return std::string(kind(v));
  }

  std::string problem_;
};

std::string at(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string at(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

// Each element must be an object; `read` is called with it and its path.
template <class Read>
void each_object(Reader& r, const json::array* list, const std::string& path, Read read) {
  if (list == nullptr) return;
  for (std::size_t i = 0; i < list->size(); ++i) {
    const json::value& v = (*list)[i];
    if (!v.is_object())
      return r.fail(at(path, i), "expected an object, found " + std::string(kind(v)));
    read(v.get_object(), at(path, i));
  }
}

std::optional<ConditionStatus> condition_status(std::string_view s) {
  for (auto c : {ConditionStatus::kTrue, ConditionStatus::kFalse, ConditionStatus::kUnknown}) {
    if (to_string(c) == s) return c;
  }
  return std::nullopt;
}

Condition read_condition(Reader& r, const json::object& o, const std::string& path) {
  Condition c;
  c.type = r.text(o, "type", at(path, "type"), true).value_or("");
  const auto status = r.text(o, "status", at(path, "status"), true);
  if (status) {
    const auto known = condition_status(*status);
    if (!known)
      r.fail(at(path, "status"), "must be True, False or Unknown, not " + quoted(*status));
    c.status = known.value_or(ConditionStatus::kUnknown);
  }
  c.reason = r.text(o, "reason", at(path, "reason")).value_or("");
  c.message = r.text(o, "message", at(path, "message")).value_or("");
  c.last_transition =
      r.time(o, "lastTransitionTime", at(path, "lastTransitionTime"), true).value_or(WallTime{});
  return c;
}

std::optional<std::string> load(Reader& r, const json::object& o, std::string_view key,
                                const std::string& path) {
  auto v = r.text(o, key, at(path, key));
  if (!v || v->empty()) return std::nullopt;  // empty: not measured
  const bool decimal =
      v->size() <= 32 && std::count(v->begin(), v->end(), '.') <= 1 &&
      std::any_of(v->begin(), v->end(), digit) &&
      std::all_of(v->begin(), v->end(), [](char c) { return digit(c) || c == '.'; });
  if (!decimal) r.fail(at(path, key), "not a decimal number: " + quoted(*v));
  return v;
}

NodeFacts read_node(Reader& r, const json::object& o, const std::string& path) {
  NodeFacts n;
  n.load1 = load(r, o, "load1", path);
  n.load5 = load(r, o, "load5", path);
  n.load15 = load(r, o, "load15", path);
  n.memory_available_bytes = r.count(o, "memoryAvailableBytes", at(path, "memoryAvailableBytes"));
  n.memory_total_bytes = r.count(o, "memoryTotalBytes", at(path, "memoryTotalBytes"));
  each_object(r, r.array(o, "disk", at(path, "disk")), at(path, "disk"),
              [&](const json::object& d, const std::string& p) {
                DiskStatus disk;
                disk.path = r.text(d, "path", at(p, "path"), true).value_or("");
                disk.available_bytes =
                    r.count(d, "availableBytes", at(p, "availableBytes"), true).value_or(0);
                disk.total_bytes = r.count(d, "totalBytes", at(p, "totalBytes"), true).value_or(0);
                n.disks.push_back(std::move(disk));
              });
  n.uptime_seconds = r.count(o, "uptimeSeconds", at(path, "uptimeSeconds"));
  n.last_resume = r.time(o, "lastResumeTime", at(path, "lastResumeTime"));
  return n;
}

void read_status(Reader& r, const json::object& o, StatusDocument& doc) {
  const std::string path = "status";
  const auto generation = r.count(o, "observedGeneration", at(path, "observedGeneration"));
  if (generation && *generation > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
    r.fail(at(path, "observedGeneration"), "too large");
  if (generation) doc.observed_generation = static_cast<std::int64_t>(*generation);
  doc.agent_version = r.text(o, "agentVersion", at(path, "agentVersion")).value_or("");
  if (const auto* fw = r.object(o, "firewall", at(path, "firewall"))) {
    doc.firewall =
        FirewallStatus{r.text(*fw, "backend", at(path, "firewall.backend")).value_or(""),
                       r.count(*fw, "sources", at(path, "firewall.sources")), std::nullopt};
    const std::string refused = at(path, "firewall.refusedRecently");
    if (const auto* rr = r.object(*fw, "refusedRecently", refused)) {
      FirewallStatus::Refused f;
      f.source = r.text(*rr, "source", at(refused, "source"), true).value_or("");
      f.since = r.time(*rr, "since", at(refused, "since"));
      const std::string ports = at(refused, "ports");
      if (const json::array* list = r.array(*rr, "ports", ports)) {
        for (std::size_t i = 0; i < list->size(); ++i) {
          const json::value& p = (*list)[i];
          if (!p.is_int64() || p.get_int64() < 1 || p.get_int64() > 65535) {
            r.fail(at(ports, i), "not a port: " + json::serialize(p));
            break;
          }
          f.ports.push_back(static_cast<std::uint64_t>(p.get_int64()));
        }
      }
      doc.firewall->refused_recently = std::move(f);
    }
  }
  const std::string conditions = at(path, "conditions");
  each_object(r, r.array(o, "conditions", conditions), conditions,
              [&](const json::object& c, const std::string& p) {
                doc.conditions.push_back(read_condition(r, c, p));
              });
  const std::string certificates = at(path, "certificates");
  each_object(r, r.array(o, "certificates", certificates), certificates,
              [&](const json::object& c, const std::string& p) {
                CertificateStatus cert;
                cert.name = r.text(c, "name", at(p, "name"), true).value_or("");
                cert.role = r.text(c, "role", at(p, "role")).value_or("");
                cert.subject = r.text(c, "subject", at(p, "subject")).value_or("");
                cert.not_after = r.time(c, "notAfter", at(p, "notAfter"));
                doc.certificates.push_back(std::move(cert));
              });
  if (const auto* node = r.object(o, "node", at(path, "node")))
    doc.node = read_node(r, *node, at(path, "node"));
  if (const auto* mesh = r.object(o, "linkerd", at(path, "linkerd"))) {
    doc.linkerd =
        MeshStatus{r.count(*mesh, "meshedProxies", at(path, "linkerd.meshedProxies")),
                   r.count(*mesh, "expiredProxies", at(path, "linkerd.expiredProxies")),
                   r.count(*mesh, "unreadableProxies", at(path, "linkerd.unreadableProxies")),
                   r.count(*mesh, "staleBundleProxies", at(path, "linkerd.staleBundleProxies"))};
  }
}

}  // namespace

Result<StatusDocument> parse_status_document(std::string_view text) {
  if (text.size() > kMaxStatusDocumentBytes) {
    return make_error("the status document is " + std::to_string(text.size()) +
                      " bytes, more than the limit of " + std::to_string(kMaxStatusDocumentBytes));
  }
  boost::system::error_code ec;
  const json::value value = json::parse(text, ec);
  if (ec) return make_error("the status document is not JSON: " + ec.message());
  if (!value.is_object())
    return make_error("the status document is " + std::string(kind(value)) + ", not an object");
  const json::object& o = value.get_object();

  Reader r;
  StatusDocument doc;
  doc.node_name = r.text(o, "nodeName", "nodeName", true).value_or("");
  doc.time = r.time(o, "time", "time");
  if (const auto* cp = r.object(o, "controlPlane", "controlPlane")) {
    doc.control_plane =
        ControlPlaneStatus{r.text(*cp, "server", "controlPlane.server").value_or(""),
                           r.text(*cp, "summary", "controlPlane.summary", true).value_or("")};
  }
  if (const auto* t = r.object(o, "tunnel", "tunnel")) {
    TunnelStatus& tunnel = doc.tunnel.emplace();
    tunnel.server = r.text(*t, "server", "tunnel.server").value_or("");
    tunnel.problem = r.text(*t, "problem", "tunnel.problem").value_or("");
    const std::pair<const char*, std::optional<std::uint64_t>*> counts[] = {
        {"serversWanted", &tunnel.servers_wanted},
        {"serversHeld", &tunnel.servers_held},
        {"connections", &tunnel.connections},
        {"dialsServed", &tunnel.dials_served},
        {"dialsRefused", &tunnel.dials_refused},
        {"dialsFailed", &tunnel.dials_failed},
        {"bytesToDestinations", &tunnel.bytes_to_destinations},
        {"bytesToServers", &tunnel.bytes_to_servers}};
    for (const auto& [key, to] : counts)
      *to = r.count(*t, key, "tunnel." + std::string(key));
  }
  if (const auto* status = r.object(o, "status", "status", true)) read_status(r, *status, doc);
  if (!r.problem().empty()) return make_error(r.problem());
  return doc;
}

}  // namespace tetherd
