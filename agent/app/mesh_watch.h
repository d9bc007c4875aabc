#pragma once
// The meshed proxies on this node, watched and (when asked) healed (issue
// 22; core/mesh.h says why). One pass, after every health round and every
// resume (poke()):
//
//   1. the meshed pods on this node, from the local k3s: one list with a
//      field selector (spec.nodeName) and a label selector (linkerd's
//      injector's label), at most `cap` pods;
//   2. each proxy that is due (core/mesh.h's proxy_due: in steady state
//      none) read on its admin port, directly at the pod IP: GET /metrics,
//      a few at a time, each within its deadline, the page scanned as it
//      arrives and left as soon as the identity lines are seen. Directly,
//      rather than through the API server's pod proxy: no load on k3s, no
//      RBAC on pods/proxy (which reaches every port of every pod), and the
//      host reaches its pods' 4191 already (the kubelet probes it);
//   3. the verdict: MeshHealthy, status.linkerd, the metrics, a journal
//      line when the set of expired proxies changes;
//   4. with linkerd.healExpiredProxies, the expired ones evicted through the
//      Eviction API (PodDisruptionBudgets honoured: a 429 is tried again on
//      a later pass), by tiers: linkerd's control plane (identity first),
//      then linkerd-multicluster's, then workloads; a tier starts only when
//      the one before it was evicted whole. Not while linkerd's issuer is
//      expired (a new proxy could get no certificate either); never a bare
//      pod (it would not come back); never the same pod twice in 10
//      minutes; a few at a time.
//   5. with a trust bundle from the cloud (set_trust_bundle(.., roll)), the
//      pods whose proxies started with another bundle (their
//      linkerd.io/trust-root-sha256) rolled in waves through the same
//      evictions, tiers and spacing: a few per pass, a tier once the one
//      before it is settled. A pod made after the bundle came into force
//      with another hash is reported, not rolled (see core/mesh.h).
//
// One coroutine on the daemon's loop; passes never overlap (a poke during
// one runs another after it).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/core/clock.h"
#include "agent/core/log.h"
#include "agent/core/mesh.h"
#include "agent/core/node_conditions.h"
#include "agent/core/timer.h"
#include "agent/kube/https_client.h"

namespace tetherd {

struct MeshTiming {
  // Pods per pass: k3s allows 110 per node by default, and a meshed pod's
  // JSON is 15-25 KiB, so 120 stays inside the client's 4 MiB answer.
  std::size_t cap = 120;
  std::size_t concurrency = 8;
  Duration read_deadline = std::chrono::seconds(2);  // per proxy
  std::size_t max_page_bytes = 8 << 20;              // per proxy
  Duration backstop = std::chrono::hours(1);  // a valid proxy is read again at least so often
  Duration eviction_spacing = std::chrono::minutes(10);
  // After a tier's evictions, the next tier waits until the tier's pods
  // here are read valid (or, with none here, `tier_settle`), at most
  // `tier_patience`.
  Duration tier_settle = std::chrono::seconds(30);
  Duration tier_patience = std::chrono::minutes(10);
  std::size_t evictions_at_once = 4;
  // And at most this many in any minute awake (the monotonic clock), however
  // often passes come (a resume, a poke per health round).
  std::size_t evictions_per_minute = 30;
};

struct MeshStats {
  std::uint64_t passes = 0;
  std::uint64_t reads = 0;
  std::uint64_t evictions = 0;          // accepted (201)
  std::uint64_t evictions_refused = 0;  // 429: a budget allows none now
  std::uint64_t eviction_failures = 0;  // anything else
  std::uint64_t evictions_paced = 0;    // left for a later pass by the per-minute bound
  Duration took{};                      // the last pass
};

class MeshWatch {
 public:
  // `issuer_valid`: whether linkerd's issuer can sign now (healing waits
  // for it otherwise).
  MeshWatch(boost::asio::any_io_executor executor, const Clock& clock, Log& log,
            NodeConditions& conditions, std::string node, bool heal,
            std::function<bool()> issuer_valid, MeshTiming timing = {});
  ~MeshWatch();
  MeshWatch(const MeshWatch&) = delete;
  MeshWatch& operator=(const MeshWatch&) = delete;

  // Runs a pass on each poke() from now on.
  void start();
  // A pass now (or right after the one under way).
  void poke();
  // The machine woke at `at`: every proxy is read on the next pass.
  void resumed(WallTime at);
  void set_k3s(std::shared_ptr<kube::HttpsClient> k3s) { k3s_ = std::move(k3s); }
  void set_heal(bool heal) { heal_ = heal; }
  // The hash of the trust bundle in force ("" unknown), and whether the
  // pods started with another are rolled (the bundle comes from the cloud,
  // which drives the rotation) or only counted.
  // `since`: when it came into force (pods made before it are rolled).
  void set_trust_bundle(std::string sha256, WallTime since, bool roll);
  const std::string& node() const { return node_; }
  void stop();
  bool finished() const { return running_ == 0; }

  // The last pass's verdict (nullopt before the first one that listed pods).
  const std::optional<MeshReport>& report() const { return report_; }
  const MeshStats& stats() const { return stats_; }
  // Called after each pass whose report changed.
  void on_report(std::function<void(const MeshReport&)> listener) {
    listener_ = std::move(listener);
  }

  // One pass (the coroutine runs them on poke(); for tests and the bench).
  boost::asio::awaitable<void> pass();

 private:
  struct Known {
    std::string uid;
    std::optional<ProxyReading> last, before;
    unsigned failed_reads = 0;  // since the last good one, which still stands
  };
  boost::asio::awaitable<void> loop();
  boost::asio::awaitable<ProxyReading> read(const MeshedPod& pod);
  boost::asio::awaitable<void> read_due(const MeshedPods& pods);
  boost::asio::awaitable<void> heal(kube::HttpsClient& k3s, const MeshedPods& pods,
                                    const MeshReport& report,
                                    const std::map<std::string, ProxyVerdict>& verdicts);
  boost::asio::awaitable<void> roll(kube::HttpsClient& k3s, const MeshedPods& pods,
                                    const StaleBundle& stale,
                                    const std::map<std::string, ProxyVerdict>& verdicts);
  bool earlier_tier_settled(const MeshedPods& pods,
                            const std::map<std::string, ProxyVerdict>& verdicts, int before,
                            WallTime now) const;
  boost::asio::awaitable<bool> evict(kube::HttpsClient& k3s, const MeshedPod& pod,
                                     const std::string& why);
  void publish(MeshReport report);
  void unlisted(const std::string& why);

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  Log& log_;
  NodeConditions& conditions_;
  std::string node_;
  bool heal_;
  std::function<bool()> issuer_valid_;
  MeshTiming timing_;
  std::shared_ptr<kube::HttpsClient> k3s_;
  Timer wake_;
  bool poked_ = false;
  bool stopped_ = false;
  int running_ = 0;
  std::optional<WallTime> resumed_at_;
  std::string bundle_sha256_;  // the trust bundle in force
  WallTime bundle_since_{};    // when it was first seen in force
  bool roll_ = false;
  std::size_t said_stale_ = 0;               // the stale count last said
  bool said_stamped_ = false;                // "the injector stamps the old hash" said
  std::map<std::string, Known> known_;       // by namespace/name
  std::map<std::string, WallTime> evicted_;  // by namespace/name: when
  std::map<std::string, bool> said_bare_;    // bare pods already reported
  bool said_issuer_ = false;                 // "waiting for the issuer" said
  std::string unlisted_;                     // why the pods cannot be listed, as said
  std::map<int, WallTime> tier_evicted_;     // by tier: its last eviction
  std::deque<MonoTime> recent_evictions_;    // asked in the last minute
  std::set<std::string> said_refused_;       // a budget's 429 said, by pod
  std::optional<MeshReport> report_;
  std::function<void(const MeshReport&)> listener_;
  MeshStats stats_;
};

}  // namespace tetherd
