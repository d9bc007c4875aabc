#include "agent/app/mesh_watch.h"

#include <algorithm>
#include <set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/object.hpp>

#include "agent/app/probes.h"
#include "agent/core/duration.h"
#include "agent/kube/kube_client.h"

namespace tetherd {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

const kube::Resource kPods{"", "v1", "pods"};

// Healing's tiers: identity; the rest of linkerd's control plane;
// linkerd-multicluster; workloads.
constexpr int kTiers = 4;
int tier(MeshRole role) {
  switch (role) {
    case MeshRole::kIdentity:
      return 0;
    case MeshRole::kDestination:
    case MeshRole::kProxyInjector:
    case MeshRole::kControlPlane:
      return 1;
    case MeshRole::kGateway:
    case MeshRole::kServiceMirror:
      return 2;
    case MeshRole::kWorkload:
      return 3;
  }
  return 3;
}

// The controllers that make an evicted pod anew, as it was.
bool remade_by_controller(const std::string& controller) {
  for (const char* kind : {"ReplicaSet/", "StatefulSet/", "DaemonSet/", "ReplicationController/"})
    if (controller.rfind(kind, 0) == 0) return true;
  return false;
}

std::string endpoint(const MeshedPod& pod) {
  const bool v6 = pod.ip.find(':') != std::string::npos;
  return (v6 ? "[" + pod.ip + "]" : pod.ip) + ":" + std::to_string(pod.admin_port);
}

// Runs `work(i)` for i in [0, n), at most `width` at once; returns when all
// are done. `width` workers take the next index as each finishes; the
// caller waits on a timer the last one cancels.
template <class Work>
awaitable<void> at_most(asio::any_io_executor executor, std::size_t n, std::size_t width,
                        const bool& stopped, Work work) {
  const std::size_t workers = std::min(n, width);
  if (workers == 0) co_return;
  std::size_t next = 0, running = workers;
  std::exception_ptr failure;
  asio::steady_timer done(executor, asio::steady_timer::time_point::max());
  for (std::size_t w = 0; w < workers; ++w) {
    asio::co_spawn(
        executor,
        [&]() -> awaitable<void> {
          while (next < n && !stopped)
            co_await work(next++);
        },
        [&](std::exception_ptr e) {
          if (e && !failure) failure = e;
          if (--running == 0) done.cancel();
        });
  }
  co_await done.async_wait(asio::as_tuple(asio::use_awaitable));
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

MeshWatch::MeshWatch(asio::any_io_executor executor, const Clock& clock, Log& log,
                     NodeConditions& conditions, std::string node, bool heal,
                     std::function<bool()> issuer_valid, MeshTiming timing)
    : executor_(std::move(executor)),
      clock_(clock),
      log_(log),
      conditions_(conditions),
      node_(std::move(node)),
      heal_(heal),
      issuer_valid_(std::move(issuer_valid)),
      timing_(timing),
      wake_(executor_, clock) {}

MeshWatch::~MeshWatch() = default;

void MeshWatch::start() {
  ++running_;
  asio::co_spawn(executor_, loop(), [this](std::exception_ptr e) {
    --running_;
    if (e) std::rethrow_exception(e);
  });
}

void MeshWatch::poke() {
  poked_ = true;
  wake_.cancel();
}

void MeshWatch::resumed(WallTime at) {
  resumed_at_ = at;
  poke();
}

void MeshWatch::set_trust_bundle(std::string sha256, WallTime since, bool roll) {
  roll_ = roll;
  if (sha256 == bundle_sha256_ && since == bundle_since_) return;
  bundle_sha256_ = std::move(sha256);
  bundle_since_ = since;
  said_stamped_ = false;
  poke();
}

void MeshWatch::stop() {
  stopped_ = true;
  wake_.cancel();
}

awaitable<void> MeshWatch::loop() {
  while (!stopped_) {
    if (!poked_) {
      wake_.expires_never();
      co_await wake_.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    poked_ = false;
    co_await pass();
  }
}

awaitable<void> MeshWatch::pass() {
  const std::shared_ptr<kube::HttpsClient> k3s = k3s_;  // a reload may replace it meanwhile
  if (k3s == nullptr || stopped_) co_return;
  const MonoTime started = clock_.monotonic();
  ++stats_.passes;
  kube::KubeClient kube(*k3s);
  // Named, not a temporary in the co_await: GCC 12 may destroy such a
  // temporary twice.
  kube::ListOptions options;
  options.field_selector = "spec.nodeName=" + node_;
  options.label_selector = std::string(kMeshedPodLabel);
  options.limit = timing_.cap;
  auto listed = co_await kube.list("/api/v1/pods", std::move(options));  // every namespace
  if (stopped_) co_return;
  if (!listed) {
    unlisted("cannot list this node's pods from k3s: " + kube::describe(listed.error()));
    co_return;
  }
  if (!unlisted_.empty()) {
    log_.notice("mesh-pods-readable", "this node's pods can be listed again", {{"NODE", node_}});
    unlisted_.clear();
  }
  MeshedPods pods = meshed_pods(listed->items, node_, timing_.cap);
  pods.left_out += listed->remaining_items;
  // kube-apiserver gives no count with a selector: a continue token says
  // there were more.
  pods.more = listed->more;
  // What is no longer there (or is another pod by the same name) is forgotten.
  std::set<std::string> here;
  for (const MeshedPod& pod : pods.pods) {
    here.insert(pod.key());
    auto it = known_.find(pod.key());
    if (it != known_.end() && it->second.uid != pod.uid) known_.erase(it);
    known_[pod.key()].uid = pod.uid;
  }
  std::erase_if(known_, [&](const auto& k) { return !here.contains(k.first); });
  const WallTime now_wall = clock_.wall();
  std::erase_if(evicted_, [&](const auto& e) {
    return now_wall >= e.second && now_wall - e.second >= timing_.eviction_spacing;
  });

  co_await read_due(pods);
  if (stopped_) co_return;
  const WallTime now = clock_.wall();
  std::map<std::string, ProxyVerdict> verdicts;
  for (const MeshedPod& pod : pods.pods) {
    const Known& k = known_[pod.key()];
    if (k.last) verdicts[pod.key()] = judge_proxy(pod, *k.last, k.before, now);
  }
  MeshReport report = report_mesh(pods, verdicts);
  const StaleBundle stale = stale_bundle(pods, bundle_sha256_, bundle_since_);
  report.bundle_sha256 = bundle_sha256_;
  report.stale_bundle = stale.stale.size();
  publish(report);
  if (!stale.stamped_after.empty() && !std::exchange(said_stamped_, true)) {
    log_.warning("mesh-injector-stale-bundle",
                 std::to_string(stale.stamped_after.size()) +
                     " pods made since the trust bundle changed still carry another "
                     "linkerd.io/trust-root-sha256 (" +
                     stale.stamped_after.front() +
                     "...): linkerd's proxy injector stamps the bundle in linkerd-config's "
                     "identityTrustAnchorsPEM; update it (linkerd upgrade) so new pods say the "
                     "bundle they trust. They are not rolled.",
                 {{"NODE", node_}});
  }
  if (heal_ && report.expired > 0 && !stopped_) {
    co_await heal(*k3s, pods, report, verdicts);
  } else if (roll_ && !stale.to_roll.empty() && !stopped_) {
    co_await roll(*k3s, pods, stale, verdicts);
  }
  stats_.took = clock_.monotonic() - started;
}

awaitable<void> MeshWatch::read_due(const MeshedPods& pods) {
  const WallTime now = clock_.wall();
  std::vector<const MeshedPod*> due;
  for (const MeshedPod& pod : pods.pods) {
    if (pod.running && proxy_due(known_[pod.key()].last, now, resumed_at_, timing_.backstop))
      due.push_back(&pod);
  }
  co_await at_most(
      executor_, due.size(), timing_.concurrency, stopped_, [&](std::size_t i) -> awaitable<void> {
        const MeshedPod& pod = *due[i];
        ProxyReading reading = co_await read(pod);
        // Forgotten meanwhile? (Nothing else runs a pass, but be sure.)
        auto it = known_.find(pod.key());
        if (it == known_.end()) co_return;
        // A read that fails while the last one was good and
        // is not past its expiry (a slow network after a
        // resume) does not unsay it: it stands until then.
        const auto& last = it->second.last;
        const bool failed =
            !reading.identity || !reading.identity->expires || !reading.problem.empty();
        if (failed && last && last->identity && last->identity->expires && last->problem.empty() &&
            *last->identity->expires > clock_.wall()) {
          ++it->second.failed_reads;
          co_return;
        }
        it->second.failed_reads = 0;
        it->second.before = std::move(it->second.last);
        it->second.last = std::move(reading);
      });
}

awaitable<ProxyReading> MeshWatch::read(const MeshedPod& pod) {
  ProxyReading r{clock_.wall(), std::nullopt, {}};
  ProxyMetricsScan scan;
  std::size_t bytes = 0;
  unsigned status = 0;
  bool cut = false;
  auto failure = co_await http_get(executor_, pod.ip, pod.admin_port, "/metrics",
                                   timing_.read_deadline, [&](unsigned s, std::string_view piece) {
                                     status = s;
                                     if (s != 200) return false;
                                     bytes += piece.size();
                                     scan.feed(piece);
                                     if (scan.complete()) return false;
                                     cut = bytes >= timing_.max_page_bytes;
                                     return !cut;
                                   });
  ++stats_.reads;
  const std::string where = "http://" + endpoint(pod) + "/metrics";
  if (status != 0 && status != 200) {
    r.problem =
        "HTTP " + std::to_string(status) + " from " + where +
        (status == 403 ? " (a linkerd policy denies this node the proxy's admin port?)" : "");
    co_return r;
  }
  scan.finish();
  if (!scan.identity().expires) {
    if (failure) {
      r.problem = failure->message;
      co_return r;
    }
    if (cut)
      r.problem = "no identity certificate lines in the first " +
                  std::to_string(timing_.max_page_bytes >> 20) + " MiB of " + where;
  }
  r.identity = scan.identity();
  if (r.problem.empty()) r.problem = scan.problem();
  co_return r;
}

void MeshWatch::publish(MeshReport report) {
  const std::set<std::string> before =
      report_ ? std::set<std::string>(report_->expired_pods.begin(), report_->expired_pods.end())
              : std::set<std::string>{};
  const std::set<std::string> now(report.expired_pods.begin(), report.expired_pods.end());
  if (before != now) {
    if (now.empty()) {
      log_.notice("mesh-proxies-valid", "no meshed proxy on this node holds an expired certificate",
                  {{"NODE", node_}});
    } else {
      log_.warning("mesh-proxies-expired", report.message,
                   {{"NODE", node_}, {"EXPIRED", std::to_string(report.expired)}});
    }
  }
  if (report.stale_bundle != said_stale_) {
    if (report.stale_bundle == 0) {
      log_.notice("mesh-bundle-current",
                  "every meshed proxy on this node started with the trust bundle in force",
                  {{"NODE", node_}, {"BUNDLE_SHA256", report.bundle_sha256}});
    } else {
      log_.notice("mesh-bundle-stale",
                  std::to_string(report.stale_bundle) +
                      " meshed proxies on this node started with another trust bundle than the "
                      "one in force (sha256 " +
                      report.bundle_sha256 + ")" +
                      (roll_ ? ": rolling them in waves" : ": they are counted, not rolled"),
                  {{"NODE", node_},
                   {"BUNDLE_SHA256", report.bundle_sha256},
                   {"STALE", std::to_string(report.stale_bundle)}});
    }
    said_stale_ = report.stale_bundle;
  }
  conditions_.report(condition_type::kMeshHealthy, report.status, report.reason, report.message);
  const bool changed = !report_ || *report_ != report;
  report_ = std::move(report);
  if (changed && listener_) listener_(*report_);
}

void MeshWatch::unlisted(const std::string& why) {
  // K3sReady speaks for k3s itself; the proxies' condition stays as it was
  // last known (or absent), and the reason is said once per change.
  if (why == unlisted_) return;
  unlisted_ = why;
  log_.warning("mesh-pods-unreadable", why + "; the meshed proxies are not checked meanwhile",
               {{"NODE", node_}});
}

awaitable<void> MeshWatch::heal(kube::HttpsClient& k3s, const MeshedPods& pods,
                                const MeshReport& report,
                                const std::map<std::string, ProxyVerdict>& verdicts) {
  if (issuer_valid_ && !issuer_valid_()) {
    if (!std::exchange(said_issuer_, true))
      log_.warning("mesh-heal-waiting",
                   "not evicting the " + std::to_string(report.expired) +
                       " pods with an expired proxy yet: linkerd's issuer is not known to be "
                       "valid now, so their new proxies could get no certificate either",
                   {{"NODE", node_}});
    co_return;
  }
  said_issuer_ = false;
  const std::set<std::string> expired(report.expired_pods.begin(), report.expired_pods.end());
  const WallTime now = clock_.wall();
  std::vector<std::vector<const MeshedPod*>> tiers(kTiers);
  for (const MeshedPod& pod : pods.pods) {
    if (!expired.contains(pod.key())) continue;
    // Only what its controller makes anew: a bare pod, a static pod's
    // mirror (Node) or a Job's (an eviction counts against its backoff)
    // would not come back, or not as it was.
    if (!remade_by_controller(pod.controller)) {
      if (!std::exchange(said_bare_[pod.key()], true))
        log_.warning("mesh-proxy-not-evicted",
                     pod.key() + " holds an expired proxy certificate but " +
                         (pod.controller.empty() ? std::string("has no controller")
                                                 : "is a " + pod.controller + "'s") +
                         ": not evicted (it would not come back as it was); delete and "
                         "recreate it yourself",
                     {{"POD", pod.key()}});
      continue;
    }
    if (evicted_.contains(pod.key())) continue;  // asked within the spacing: let it go
    tiers[static_cast<std::size_t>(tier(pod.role))].push_back(&pod);
  }
  // One tier per pass, and a tier only once every pod of the tiers before
  // it on this node is read valid again (its replacement up, with a
  // certificate) or its eviction is long past: workloads recreated while
  // the proxy injector is being replaced would start without a proxy.
  for (int t = 0; t < kTiers; ++t) {
    const auto& group = tiers[static_cast<std::size_t>(t)];
    if (group.empty()) {
      if (!earlier_tier_settled(pods, verdicts, t + 1, now)) co_return;
      continue;
    }
    co_await at_most(
        executor_, group.size(), timing_.evictions_at_once, stopped_,
        [&](std::size_t i) -> awaitable<void> {
          const MeshedPod& pod = *group[i];
          if (stopped_ || !heal_) co_return;
          const std::string why =
              "its proxy's identity certificate " +
              (known_[pod.key()].last
                   ? judge_proxy(pod, *known_[pod.key()].last, std::nullopt, now).detail
                   : std::string("expired")) +
              " and a proxy cannot renew an expired one (linkerd2 #13136)";
          if (co_await evict(k3s, pod, why)) tier_evicted_[t] = clock_.wall();
        });
    co_return;  // the next tier on a later pass
  }
}

awaitable<void> MeshWatch::roll(kube::HttpsClient& k3s, const MeshedPods& pods,
                                const StaleBundle& stale,
                                const std::map<std::string, ProxyVerdict>& verdicts) {
  // A new pod's proxy needs a certificate from the issuer.
  if (issuer_valid_ && !issuer_valid_()) co_return;
  const WallTime now = clock_.wall();
  std::vector<std::vector<const MeshedPod*>> tiers(kTiers);
  for (const MeshedPod* pod : stale.to_roll) {
    if (!pod->running || !remade_by_controller(pod->controller)) continue;
    if (evicted_.contains(pod->key())) continue;
    tiers[static_cast<std::size_t>(tier(pod->role))].push_back(pod);
  }
  // One wave per pass: the first tier with pods to roll, a few of them, once
  // the tiers before it have settled.
  for (int t = 0; t < kTiers; ++t) {
    auto& group = tiers[static_cast<std::size_t>(t)];
    if (group.empty()) continue;
    if (!earlier_tier_settled(pods, verdicts, t, now)) co_return;
    if (group.size() > timing_.evictions_at_once) group.resize(timing_.evictions_at_once);
    const std::string why =
        "its proxy started with another trust bundle than the one in force "
        "(sha256 " +
        bundle_sha256_ + "), and proxies read the roots only at start";
    co_await at_most(executor_, group.size(), timing_.evictions_at_once, stopped_,
                     [&](std::size_t i) -> awaitable<void> {
                       if (stopped_ || !roll_) co_return;
                       if (co_await evict(k3s, *group[i], why)) tier_evicted_[t] = clock_.wall();
                     });
    co_return;
  }
}

bool MeshWatch::earlier_tier_settled(const MeshedPods& pods,
                                     const std::map<std::string, ProxyVerdict>& verdicts,
                                     int before, WallTime now) const {
  for (int t = 0; t < before; ++t) {
    const auto at = tier_evicted_.find(t);
    if (at == tier_evicted_.end()) continue;  // nothing evicted there lately
    if (now >= at->second && now - at->second >= timing_.tier_patience) continue;  // long past
    // Evicted lately: its pods here must be read valid (the replacements
    // up, with certificates); with none here yet, give them `tier_settle`
    // to appear (they may be scheduled elsewhere).
    bool here = false;
    for (const MeshedPod& pod : pods.pods) {
      if (tier(pod.role) != t) continue;
      here = true;
      const auto v = verdicts.find(pod.key());
      if (v == verdicts.end() || v->second.state != ProxyState::kValid) return false;
    }
    if (!here && now >= at->second && now - at->second < timing_.tier_settle) return false;
  }
  return true;
}

awaitable<bool> MeshWatch::evict(kube::HttpsClient& k3s, const MeshedPod& pod,
                                 const std::string& why) {
  const MonoTime now = clock_.monotonic();
  while (!recent_evictions_.empty() && now - recent_evictions_.front() >= std::chrono::minutes(1))
    recent_evictions_.pop_front();
  if (recent_evictions_.size() >= timing_.evictions_per_minute) {
    ++stats_.evictions_paced;  // a later pass asks
    co_return false;
  }
  recent_evictions_.push_back(now);
  kube::KubeClient kube(k3s);
  boost::json::object eviction{
      {"apiVersion", "policy/v1"},
      {"kind", "Eviction"},
      {"metadata", boost::json::object{{"name", pod.name}, {"namespace", pod.namespace_}}},
      // This pod, not another made under its name since it was listed.
      {"deleteOptions",
       boost::json::object{{"preconditions", boost::json::object{{"uid", pod.uid}}}}}};
  auto answer = co_await kube.create(kube::object_path(kPods, pod.namespace_, pod.name, "eviction"),
                                     eviction);
  const std::string what =
      pod.key() + " (" + std::string(to_string(pod.role)) + ", " + pod.controller + ")";
  if (answer || answer.error().not_found()) {
    said_refused_.erase(pod.key());
    if (answer) {
      ++stats_.evictions;
      evicted_[pod.key()] = clock_.wall();
      log_.notice("mesh-proxy-evicted",
                  "evicted " + what + ": " + why + "; its controller makes a new pod",
                  {{"POD", pod.key()}});
    }
    co_return true;
  }
  const kube::ApiError& e = answer.error();
  if (e.kind == kube::ErrorKind::kHttp && e.code == 429) {
    ++stats_.evictions_refused;
    // Said once per pod until it is evicted: a budget may hold for hours.
    if (!said_refused_.insert(pod.key()).second) co_return false;
    log_.info(
        "mesh-eviction-refused",
        "not evicting " + what + " now: " + kube::describe(e) + "; tried again on the next pass",
        {{"POD", pod.key()}});
    co_return false;
  }
  ++stats_.eviction_failures;
  log_.warning("mesh-eviction-failed", "cannot evict " + what + ": " + kube::describe(e),
               {{"POD", pod.key()}});
  co_return false;
}

}  // namespace tetherd
