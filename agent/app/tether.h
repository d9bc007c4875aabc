#pragma once
// The tether: tetherd's pull-mode session with the cloud control plane.
// The node dials out; the cloud never dials in to manage it.
//
//   - watches its own EdgeNode (kube::Reflector, driven by the pure
//     core/tether_session.h) and hands each spec, validated whole, to the
//     FirewallKeeper, which applies and persists it;
//   - renews its Lease every heartbeatInterval (kube::LeaseHeartbeat), and
//     lets the session hear of a renewal that could not reach the server;
//   - writes EdgeNode.status by merge patch when it changes, and an
//     unchanged one every 5 minutes (core/node_status.h decides);
//   - creates its EdgeNode if there is none, seeded with the sources in
//     force, so that re-registering never changes the rules;
//   - on resume from suspend, drops every connection and redials at once.
//
// Offline first: the FirewallKeeper has applied the last good desired state
// before the Tether starts; nothing here waits for the control plane.
//
// One file per job: tether.cpp (life cycle), tether_session.cpp (the
// session's events), tether_spec.cpp (the spec taken in, decided by
// core/spec_intake.h), tether_status.cpp (status written) and
// tether_sleep.cpp (suspend and resume). The conditions are the node's
// (core/node_conditions.h): the Tether reports Connected and FirewallInSync's
// verdict there, and writes every change it hears of.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/value.hpp>

#include "agent/app/cloud_linkerd.h"
#include "agent/app/firewall_keeper.h"
#include "agent/config/config.h"
#include "agent/core/clock.h"
#include "agent/core/edge_node.h"
#include "agent/core/log.h"
#include "agent/core/node_conditions.h"
#include "agent/core/node_status.h"
#include "agent/core/timer.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"
#include "agent/kube/lease_heartbeat.h"
#include "agent/kube/object_follower.h"
#include "agent/kube/reflector.h"

namespace tetherd {

struct TetherStats {
  std::size_t specs_applied = 0;
  std::size_t specs_rejected = 0;
  std::size_t status_writes = 0;
  std::size_t status_failures = 0;
  std::size_t edge_nodes_created = 0;
  std::size_t connects = 0;  // times the session became connected (the first included)
};

// Hooks for tests: the Lease's wait, and the Reflector's retry context
// (sleep, jitter, monotonic now). Empty: the clock's timers.
struct TetherTiming {
  std::optional<kube::RetryContext> retry;  // empty: kube::default_retry_context(clock)
  kube::LeaseHeartbeat::Wait lease_wait;    // empty: a timer of the clock
  kube::WatchOptions watch;
};

class Tether final : private kube::ReflectorHandler {
 public:
  // `conditions`: the node's, where the session reports Connected and its
  // verdict on the spec's firewall, and whose changes it writes.
  Tether(boost::asio::io_context& io, const Clock& clock, Log& log, FirewallKeeper& firewall,
         NodeConditions& conditions, std::unique_ptr<kube::HttpsClient> http, const Config& config,
         TetherTiming timing = {});
  ~Tether() override;

  // Starts the session, the heartbeat and the status writer on the loop.
  void start();
  // Ends them; the loop's run() returns once they have.
  void stop();
  // The machine woke from suspend: redial now, renew the Lease now, and
  // write status now.
  void resumed();
  // The machine is about to sleep: write a last status (Connected=False,
  // reason Suspending) so the cloud learns the node went to sleep rather
  // than vanished, close every connection, and call `done` (which releases
  // logind's delay lock). Nothing redials until resumed().
  void suspending(std::function<void()> done);

  // After stop(): whether everything start() began has ended.
  bool finished() const { return running_ == 0; }
  SessionState state() const { return reflector_.session().state(); }
  bool connected() const { return reflector_.session().connected(); }
  // The EdgeNode's status as it would be written now (the conditions the
  // node's, at this moment).
  NodeStatus status() const;
  const TetherStats& stats() const { return stats_; }
  const kube::ReflectorStats& session_stats() const { return reflector_.stats(); }
  const kube::LeaseStats& lease_stats() const { return lease_.stats(); }
  // A reload changed controlPlane's heartbeatInterval or leaseDuration, or
  // health.interval (the status cadence): taken by the running session.
  void retime(const Config& config);
  // The firewall's settings changed (a reload): a spec they rejected is
  // judged again under the new ones.
  void firewall_policy_changed();
  // For status.certificates (a change is written at once) and status.node
  // (written with the next status).
  void set_certificates(std::vector<CertificateExpiry> certificates);
  void set_node_vitals(NodeVitals facts);
  // status.linkerd: written at once when it changes (an expired proxy is news).
  void set_mesh(std::optional<MeshSummary> mesh);  // none: linkerd is not followed
  // spec.linkerd.rotate as last seen (the certificates' trigger).
  const std::string& rotate_token() const { return rotate_; }
  const std::string& server() const { return server_; }
  // New credentials for the same server (a renewed certificate): used by
  // every new connection; the watch and the Lease go on (no redial).
  kube::ApiResult<void> use_credentials(const Kubeconfig& kubeconfig);
  // A follower backs off up to this (or five times the session's cap, if
  // less) on its own: the session's connection probes the server, and its
  // watch beginning again, or the first Lease renewed after one that
  // failed, ends the followers' backoff
  // after no answer (so an outage costs the cloud one node's retries, not
  // three).
  static constexpr Duration kFollowerBackoffCap = std::chrono::minutes(5);
  // A second client to the same server, for the objects spec.linkerd names:
  // their watches are redialled on their own (a Reflector's redial closes
  // every connection of its client), so they never cut the EdgeNode's.
  // Without one, a reference is reported and not followed.
  void follow_objects_with(std::unique_ptr<kube::HttpsClient> http);
  // spec.linkerd's references and what they name, as last seen. A change
  // calls the on_change listener.
  const CloudLinkerd& cloud_linkerd() const { return cloud_; }
  // Whether the session has read its EdgeNode's spec (so cloud_linkerd()'s
  // references are the cloud's, not the defaults).
  bool spec_known() const { return judged_ > 0; }
  // "watching https://cloud.example:6443" or "backoff: <the last error>".
  std::string summary() const;
  // Called after each change summary() would show (for systemd's STATUS=).
  void on_change(std::function<void()> listener) { on_change_ = std::move(listener); }
  // The control plane's Date, as each answer on the session's connection
  // arrives (the daemon's witness of true time).
  void on_server_date(std::function<void(std::string_view)> listener);

 private:
  // kube::ReflectorHandler
  void on_list(const std::vector<boost::json::object>& items,
               const std::string& resource_version) override;
  void on_event(const kube::WatchEvent& event) override;
  void on_error(const kube::ApiError& error, Duration retry_in) override;
  void on_state(SessionState state) override;

  // Runs `job` on the loop, counted in running_ until it ends.
  void spawn(boost::asio::awaitable<void> job);
  void take(const boost::json::object& object);
  void edge_node_missing(std::string_view why);
  void follow_refs(const LinkerdRefs& refs);
  std::shared_ptr<kube::ObjectFollower> follow(const kube::Resource& resource,
                                               const std::string& name, kube::FollowedObject& into);
  void set_condition(std::string_view type, ConditionStatus status, std::string_view reason,
                     std::string_view message);
  void set_firewall(ConditionStatus status, std::string_view reason, std::string_view message);
  void poke_status();
  void changed();
  boost::asio::awaitable<void> write_status_loop();
  boost::asio::awaitable<void> write_status();
  boost::asio::awaitable<void> last_status_before_sleep(std::function<void()> done);
  boost::asio::awaitable<void> create_edge_node();

  boost::asio::io_context& io_;
  const Clock& clock_;
  Log& log_;
  FirewallKeeper& firewall_;
  NodeConditions& conditions_;
  std::unique_ptr<kube::HttpsClient> http_;
  kube::KubeClient client_;
  std::string node_;
  std::string namespace_;
  std::string server_;
  kube::RetryContext objects_retry_;  // the session's (the followers' backoff is longer)
  kube::WatchOptions objects_watch_;
  kube::Reflector reflector_;
  kube::LeaseHeartbeat lease_;
  NodeStatus status_;
  StatusPublisher publisher_;
  Duration health_interval_;
  Timer status_timer_;
  bool status_poked_ = false;
  bool missing_ = false;  // our EdgeNode does not exist (yet, or any more)
  bool stopped_ = false;
  bool going_to_sleep_ = false;    // between suspending() and resumed()
  std::size_t status_streak_ = 0;  // status writes failed in a row
  std::optional<kube::ApiError> last_error_;
  std::string rotate_;
  std::optional<boost::json::value> last_spec_;  // the EdgeNode's spec last acted on
  std::optional<boost::json::object> rejected_;  // the EdgeNode, when its spec was rejected
  bool apply_failed_ = false;
  std::function<void()> on_change_;
  NodeConditions::Subscription listening_;
  bool quiet_ = false;  // a change the caller writes itself (suspending)
  // Which apply's answer sets FirewallInSync: the latest launched
  // (authority_), and only while the spec it speaks for is the latest
  // judged (a new spec with the same firewall hands it over).
  std::uint64_t judged_ = 0;  // new specs taken
  std::uint64_t applies_launched_ = 0;
  std::uint64_t authority_ = 0;
  std::uint64_t speaks_for_ = 0;
  std::string applied_text_;
  // Expires with this object: a callback from the firewall's worker that
  // comes after it checks.
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  // A Lease renewal failed to reach the server since the last one that
  // worked (the followers' wake-up).
  bool lease_failed_ = false;
  TetherStats stats_;
  std::unique_ptr<kube::HttpsClient> objects_http_;
  std::unique_ptr<kube::KubeClient> objects_client_;
  std::shared_ptr<kube::ObjectFollower> issuer_follower_, bundle_follower_;
  CloudLinkerd cloud_;
  int running_ = 0;  // coroutines still running, for the destructor's check
};

}  // namespace tetherd
