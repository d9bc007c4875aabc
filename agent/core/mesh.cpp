#include "agent/core/mesh.h"

#include <algorithm>
#include <charconv>

#include "agent/core/duration.h"
#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

namespace json = boost::json;

// How many pod names a condition message gives before "and N more".
constexpr std::size_t kNamesShown = 3;

const json::object* object_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}
const json::array* array_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}
std::string string_at(const json::object* o, std::string_view key) {
  if (o == nullptr) return {};
  const json::value* v = o->if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

MeshRole role_of(const json::object* labels) {
  const std::string component = string_at(labels, "linkerd.io/control-plane-component");
  if (string_at(labels, "linkerd.io/extension") == "multicluster") {
    // The gateway's pods are app=<gateway name> (linkerd-gateway by default).
    const std::string app = string_at(labels, "app");
    return component == "gateway" || app.find("gateway") != std::string::npos
               ? MeshRole::kGateway
               : MeshRole::kServiceMirror;
  }
  if (component == "identity") return MeshRole::kIdentity;
  if (component == "destination") return MeshRole::kDestination;
  if (component == "proxy-injector") return MeshRole::kProxyInjector;
  if (!component.empty()) return MeshRole::kControlPlane;
  return MeshRole::kWorkload;
}

// The linkerd-proxy container's admin port, in containers or (a native
// sidecar) initContainers; nullopt without one.
std::optional<std::uint16_t> proxy_admin_port(const json::object* spec) {
  if (spec == nullptr) return std::nullopt;
  for (const char* list : {"containers", "initContainers"}) {
    const json::array* containers = array_at(*spec, list);
    if (containers == nullptr) continue;
    for (const json::value& c : *containers) {
      if (!c.is_object() || string_at(&c.get_object(), "name") != "linkerd-proxy") continue;
      std::uint16_t port = kProxyAdminPort;
      if (const json::array* ports = array_at(c.get_object(), "ports")) {
        for (const json::value& p : *ports) {
          if (!p.is_object() || string_at(&p.get_object(), "name") != "linkerd-admin") continue;
          const json::value* n = p.get_object().if_contains("containerPort");
          if (n != nullptr && n->is_int64() && n->get_int64() > 0 && n->get_int64() < 65536)
            port = static_cast<std::uint16_t>(n->get_int64());
        }
      }
      return port;
    }
  }
  return std::nullopt;
}

std::string controller_of(const json::object* metadata) {
  const json::array* owners =
      metadata != nullptr ? array_at(*metadata, "ownerReferences") : nullptr;
  if (owners == nullptr) return {};
  for (const json::value& o : *owners) {
    if (!o.is_object()) continue;
    const json::value* controller = o.get_object().if_contains("controller");
    if (controller == nullptr || !controller->is_bool() || !controller->get_bool()) continue;
    return string_at(&o.get_object(), "kind") + "/" + string_at(&o.get_object(), "name");
  }
  return {};
}

// Whole seconds: a proxy's expiry is given in seconds.
std::string span(WallTime from, WallTime to) {
  return format_duration(std::chrono::duration_cast<std::chrono::seconds>(to - from));
}
std::string ago(WallTime then, WallTime now) {
  return span(then, now) + " ago";
}

std::string names(const std::vector<std::string>& keys) {
  std::string out;
  for (std::size_t i = 0; i < keys.size() && i < kNamesShown; ++i)
    out += (i == 0 ? "" : ", ") + keys[i];
  if (keys.size() > kNamesShown)
    out += " and " + std::to_string(keys.size() - kNamesShown) + " more";
  return out;
}

}  // namespace

std::string_view to_string(MeshRole role) {
  switch (role) {
    case MeshRole::kIdentity:
      return "identity";
    case MeshRole::kDestination:
      return "destination";
    case MeshRole::kProxyInjector:
      return "proxy-injector";
    case MeshRole::kControlPlane:
      return "control-plane";
    case MeshRole::kGateway:
      return "multicluster-gateway";
    case MeshRole::kServiceMirror:
      return "service-mirror";
    case MeshRole::kWorkload:
      return "workload";
  }
  return "workload";
}

MeshedPods meshed_pods(const std::vector<json::object>& items, std::string_view node,
                       std::size_t cap) {
  MeshedPods out;
  for (const json::object& item : items) {
    const json::object* metadata = object_at(item, "metadata");
    const json::object* spec = object_at(item, "spec");
    const json::object* status = object_at(item, "status");
    const json::object* labels = metadata != nullptr ? object_at(*metadata, "labels") : nullptr;
    if (labels == nullptr || !labels->contains(kMeshedPodLabel)) continue;
    if (string_at(spec, "nodeName") != node) continue;
    const json::value* host_network = spec != nullptr ? spec->if_contains("hostNetwork") : nullptr;
    if (host_network != nullptr && host_network->is_bool() && host_network->get_bool()) continue;
    const auto port = proxy_admin_port(spec);
    if (!port) continue;
    MeshedPod pod;
    pod.namespace_ = string_at(metadata, "namespace");
    pod.name = string_at(metadata, "name");
    pod.uid = string_at(metadata, "uid");
    pod.ip = string_at(status, "podIP");
    if (pod.name.empty() || pod.ip.empty()) continue;
    pod.admin_port = *port;
    pod.role = role_of(labels);
    pod.controller = controller_of(metadata);
    const json::object* annotations = object_at(*metadata, "annotations");
    pod.trust_root_sha256 = string_at(annotations, "linkerd.io/trust-root-sha256");
    pod.created = parse_kube_time(string_at(metadata, "creationTimestamp"));
    pod.running =
        string_at(status, "phase") == "Running" && !metadata->contains("deletionTimestamp");
    out.pods.push_back(std::move(pod));
  }
  std::sort(out.pods.begin(), out.pods.end(), [](const MeshedPod& a, const MeshedPod& b) {
    if (a.role != b.role) return a.role < b.role;
    if (a.namespace_ != b.namespace_) return a.namespace_ < b.namespace_;
    return a.name < b.name;
  });
  if (out.pods.size() > cap) {
    out.more = true;
    out.left_out = out.pods.size() - cap;
    out.pods.resize(cap);
  }
  return out;
}

bool proxy_due(const std::optional<ProxyReading>& last, WallTime now,
               std::optional<WallTime> resumed_at, Duration backstop) {
  if (!last || !last->identity || !last->identity->expires || !last->problem.empty()) return true;
  if (resumed_at && *resumed_at >= last->at) return true;
  if (now < last->at || now - last->at >= backstop) return true;  // the clock stepped back, or old
  const WallTime expires = *last->identity->expires;
  if (now >= expires) return true;
  // Refreshed by now, if it refreshes at all: 70% of the life left when
  // read, with room for the refresh to land (in seconds: nanoseconds times
  // eight would overflow for a far expiry).
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(expires - last->at);
  return now >= last->at + left * 8 / 10;
}

ProxyVerdict judge_proxy(const MeshedPod& pod, const ProxyReading& reading,
                         const std::optional<ProxyReading>& previous, WallTime now) {
  if (!pod.running) return {ProxyState::kNotRunning, "not running"};
  if (!reading.identity) return {ProxyState::kUnreadable, "cannot be read: " + reading.problem};
  // A page that says something that is not a time is not believed at all.
  if (!reading.problem.empty()) return {ProxyState::kUnreadable, reading.problem};
  if (!reading.identity->expires)
    return {ProxyState::kUnreadable,
            "no identity certificate yet (a proxy starting, waiting for linkerd's identity)"};
  const WallTime expires = *reading.identity->expires;
  if (expires <= now) return {ProxyState::kExpired, "expired " + ago(expires, now)};
  const auto& id = *reading.identity;
  if (previous && previous->identity && id.refresh_errors &&
      previous->identity->refresh_errors.value_or(0) < *id.refresh_errors &&
      previous->identity->refreshes_ok.value_or(0) >= id.refreshes_ok.value_or(0))
    return {ProxyState::kRefreshFailing, "its certificate refreshes fail (" +
                                             std::to_string(*id.refresh_errors) +
                                             " errors); it expires in " + span(now, expires)};
  return {ProxyState::kValid, "valid for " + span(now, expires)};
}

MeshReport report_mesh(const MeshedPods& pods,
                       const std::map<std::string, ProxyVerdict>& verdicts) {
  MeshReport r;
  r.meshed = pods.pods.size() + pods.left_out;
  std::vector<std::string> failing, unreadable;
  std::size_t not_running = 0;
  for (const MeshedPod& pod : pods.pods) {
    const auto it = verdicts.find(pod.key());
    if (it == verdicts.end()) continue;
    switch (it->second.state) {
      case ProxyState::kValid:
        ++r.valid;
        break;
      case ProxyState::kExpired:
        ++r.expired;
        r.expired_pods.push_back(pod.key());
        if (pod.controller.empty()) r.bare_expired.push_back(pod.key());
        break;
      case ProxyState::kRefreshFailing:
        ++r.failing;
        failing.push_back(pod.key());
        break;
      case ProxyState::kUnreadable:
        ++r.unreadable;
        unreadable.push_back(pod.key());
        break;
      case ProxyState::kNotRunning:
        ++not_running;
        break;
    }
  }
  std::string also;
  if (!failing.empty()) also += "; refreshes failing: " + names(failing);
  if (!unreadable.empty())
    also +=
        "; " + std::to_string(unreadable.size()) + " could not be read (" + names(unreadable) + ")";
  if (not_running > 0) also += "; " + std::to_string(not_running) + " not running";
  if (pods.left_out > 0) {
    also += "; " + std::to_string(pods.left_out) + " over the cap of " +
            std::to_string(pods.pods.size()) + " not checked";
  } else if (pods.more) {
    also += "; more than " + std::to_string(pods.pods.size()) + ", the rest not checked";
  }
  const std::string of = " of " + std::to_string(r.meshed) + " meshed proxies on this node";
  if (r.expired > 0) {
    r.status = ConditionStatus::kFalse;
    r.reason = "ProxiesExpired";
    r.message = std::to_string(r.expired) + of + " hold an expired certificate and cannot renew " +
                "it: " + names(r.expired_pods) + also;
  } else if (r.meshed == 0) {
    r.status = ConditionStatus::kTrue;
    r.reason = "NoMeshedPods";
    r.message = "no meshed pods on this node";
  } else if (r.valid == 0 && r.failing == 0 && r.unreadable > 0) {
    r.status = ConditionStatus::kUnknown;
    r.reason = "ProxiesUnreadable";
    r.message = "none" + of + " could be read" + also;
  } else {
    r.status = ConditionStatus::kTrue;
    r.reason = "ProxiesValid";
    r.message = std::to_string(r.valid + r.failing) + of + " hold a valid certificate" + also;
  }
  return r;
}

StaleBundle stale_bundle(const MeshedPods& pods, std::string_view bundle_sha256, WallTime since) {
  StaleBundle out;
  if (bundle_sha256.empty()) return out;
  for (const MeshedPod& pod : pods.pods) {
    if (pod.trust_root_sha256.empty() || pod.trust_root_sha256 == bundle_sha256) continue;
    out.stale.push_back(pod.key());
    // No creation time: treated as old (the API server always sets one).
    // Creation times are whole seconds: a pod made in the second of the
    // change counts as made after it (not rolled, which is the safe side).
    if (pod.created && *pod.created >= std::chrono::floor<std::chrono::seconds>(since))
      out.stamped_after.push_back(pod.key());
    else
      out.to_roll.push_back(&pod);
  }
  return out;
}

std::optional<WallTime> saved_bundle_since(std::optional<std::string_view> saved,
                                           std::string_view sha256, WallTime now) {
  if (!saved) return std::nullopt;
  const auto space = saved->find(' ');
  if (space == std::string_view::npos || saved->substr(0, space) != sha256) return std::nullopt;
  long long seconds = 0;
  const char* begin = saved->data() + space + 1;
  const char* end = saved->data() + saved->size();
  const auto parsed = std::from_chars(begin, end, seconds);
  if (parsed.ec != std::errc{} || parsed.ptr != end || seconds < 0) return std::nullopt;
  const WallTime since{std::chrono::seconds(seconds)};
  if (since > now) return std::nullopt;
  return since;
}

std::string bundle_since_text(std::string_view sha256, WallTime since) {
  return std::string(sha256) + " " +
         std::to_string(
             std::chrono::duration_cast<std::chrono::seconds>(since.time_since_epoch()).count());
}

}  // namespace tetherd
