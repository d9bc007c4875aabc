#pragma once
// The node's heartbeat: its Lease renewed every heartbeatInterval, the way
// kubelet's node lease controller does it. A renewal is one request, a PUT
// of the Lease as the server last returned it (its resourceVersion makes it
// safe); a GET is made only when there is nothing cached (the first time,
// or after a 409 Conflict or a 404), and a missing Lease is created. With
// a 10 s interval that is six requests a minute per node, which is what a
// control plane for thousands of nodes can afford.
//
// Operators read one line per change of state: the first renewal, the
// first failure of a streak, the recovery. Never one per tick.

#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/object.hpp>

#include "agent/core/clock.h"
#include "agent/core/lease.h"
#include "agent/core/log.h"
#include "agent/kube/kube_client.h"

namespace tetherd::kube {

struct LeaseRenewal {
  WallTime renew_time;  // what the Lease's renewTime now says
  std::string resource_version;
  bool created = false;  // the Lease did not exist and was made
};

struct LeaseStats {
  std::size_t renewals = 0;  // successful renew() calls
  std::size_t failures = 0;  // failed renew() calls
  std::size_t gets = 0;
  std::size_t creates = 0;
  std::size_t updates = 0;
  std::size_t requests() const { return gets + creates + updates; }
};

class LeaseHeartbeat {
 public:
  // Waits `delay` on the event loop; a timer of the clock (core/timer.h)
  // unless a test hands in its own. It must end early when cancelled (run() cancels it).
  using Wait = std::function<boost::asio::awaitable<void>(Duration)>;
  using Listener = std::function<void(const ApiResult<LeaseRenewal>&)>;

  LeaseHeartbeat(KubeClient& client, const Clock& clock, Log& log, LeaseSpec spec,
                 Duration interval, Wait wait = {});

  // One renewal (see the top of this file). A 409 Conflict is handled here:
  // read again, put once more. Any other error is returned as it is: what
  // a transport error means for the connection is the caller's decision.
  // Not to be called while another renew() is in flight.
  boost::asio::awaitable<ApiResult<LeaseRenewal>> renew();

  // Renews at once, then every interval (or a server's longer Retry-After;
  // either jittered, see jitter(), and never longer than the Lease's
  // duration), handing each result to the listener, until stop(). The
  // LeaseHeartbeat must outlive it.
  boost::asio::awaitable<void> run();
  // Ends run() at its next step, cutting a wait short; a renewal in flight
  // ends first (disconnect_all() on the client ends it at once).
  void stop();
  // The next renewal now, not at the end of the current wait: after a
  // resume from suspend the monotonic timer is no guide, and the Lease may
  // be about to expire. During a renewal, the next one follows at once.
  void renew_now();
  // A reload's heartbeatInterval and leaseDuration: the next renewal, made
  // now, writes the new duration, and the new interval follows it.
  void retime(Duration interval, std::chrono::seconds duration) {
    interval_ = interval;
    spec_.duration = duration;
    renew_now();
  }

  // A number in [0, 1) for each wait: up to 4% more than the interval, as
  // kubelet's, and up to half more than a server's Retry-After, within the
  // Lease's duration (core/lease.h). Without it the waits are exact (tests).
  void jitter(std::function<double()> random) { random_ = std::move(random); }

  // Hears each of run()'s renewals (the session's view of the connection).
  void on_result(Listener listener) { listener_ = std::move(listener); }

  const LeaseSpec& spec() const { return spec_; }
  const LeaseStats& stats() const { return stats_; }

 private:
  struct Attempt;
  boost::asio::awaitable<ApiResult<Attempt>> read_or_create();
  boost::asio::awaitable<ApiResult<Attempt>> put(boost::json::object current);
  boost::asio::awaitable<ApiResult<Attempt>> attempt();
  void note_holder(const boost::json::object& current);
  void record(const ApiResult<LeaseRenewal>& result);
  Duration next_wait(const ApiResult<LeaseRenewal>& result) const;
  boost::asio::awaitable<void> pause(Duration delay);

  KubeClient& client_;
  const Clock& clock_;
  Log& log_;
  LeaseSpec spec_;
  Duration interval_;
  Wait wait_;
  Listener listener_;
  std::function<double()> random_;
  std::string collection_;
  std::string path_;
  std::string lease_field_;  // "namespace/name", for log records

  std::optional<boost::json::object> cached_;  // as the server last returned it
  bool acquired_ = false;                      // renewed at least once
  bool taken_over_ = false;                    // another holder's Lease taken (logged once)
  std::size_t streak_ = 0;                     // failures since the last success
  std::optional<WallTime> last_renewed_;

  bool stopped_ = false;
  bool woken_ = false;
  std::optional<boost::asio::steady_timer> wake_timer_;  // made in run(), on its executor
  LeaseStats stats_;
};

}  // namespace tetherd::kube
