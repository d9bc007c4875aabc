#pragma once
// firewall.closeWhenTunnelled's decision, damped: the tunnelled ports are
// closed to the cloud while the tunnel holds its servers, but a server that
// keeps being lost would close and open them as often (each an nftables
// element update, with ufw a delete and an add per cloud source, and every
// time a journal line). BGP's answer to a route that flaps is the model
// (RFC 2439, route flap damping), cut down: each loss of a held tunnel adds
// a penalty that halves every `half_life`; above `suppress` the ports stay
// open (the direct path, which the cloud can count on) until the penalty
// has decayed below `reuse`, however often the tunnel comes back meanwhile.
// Opening is never damped: a lost tunnel opens the ports at once.
//
// The penalty decays on CLOCK_BOOTTIME, so a suspend counts as quiet time;
// the timer that ends a suppression runs on the monotonic clock and stops
// in a suspend, which is safe (the ports stay open a little longer) and
// short-lived (after a resume the tunnel dials again and is judged anew).

#include <functional>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "agent/core/clock.h"
#include "agent/core/log.h"
#include "agent/core/timer.h"

namespace tetherd {

struct FlapDampingSettings {
  double penalty = 1000;   // added by each loss of a held tunnel
  double suppress = 2000;  // above it, the ports are not closed
  double reuse = 750;      // below it, they may close again
  Duration half_life = std::chrono::minutes(15);
  // The penalty's ceiling is set so that a suppression never outlasts this
  // after the last loss.
  Duration max_suppress = std::chrono::minutes(60);
};

class TunnelGate {
 public:
  TunnelGate(const boost::asio::any_io_executor& executor, const Clock& clock, Log& log,
             FlapDampingSettings settings = {});

  // Called when the decision changes without a report (a suppression
  // ended), with why, for the firewall's log line.
  void on_change(std::function<void(const std::string& why)> changed) {
    changed_ = std::move(changed);
  }

  // The tunnel holds its servers (or no longer does). A loss of a held
  // tunnel is a flap, weighed by `weight` (the daemon gives 1 over the
  // servers it should hold, serverCount, so that a rolling restart of three konnectivity
  // servers costs what one restart does; 0 when the ports do not follow
  // the tunnel).
  void held(bool h, double weight = 1);
  // The tunnel let go on purpose or by the machine (a reload made a new
  // one, a resume closed every connection): not held, and not a loss.
  void let_go() { held_ = false; }
  // Another tunnel (a reload changed its server, or took it away): its
  // losses are not the new one's.
  void reset();
  // The daemon stops: no timer left to hold the loop.
  void stop();
  bool is_held() const { return held_; }
  // Whether the tunnelled ports are to be closed now: held and not damped.
  bool close() const { return held_ && !suppressed_; }
  bool suppressed() const { return suppressed_; }
  // The penalty as of now (decayed), and the losses counted since start or
  // the last reset() (another server).
  double penalty() const;
  unsigned flaps() const { return flaps_; }

 private:
  double decayed(MonoTime now) const;
  // How long a penalty takes to decay to `reuse`.
  Duration until_reuse(double penalty) const;
  void arm();
  // Ends the suppression when the losses have decayed below `reuse`
  // (telling on_change's listener when `tell` and held); returns whether.
  bool end_if_decayed(bool tell);

  const Clock& clock_;
  Log& log_;
  FlapDampingSettings settings_;
  Timer timer_;
  std::function<void(const std::string&)> changed_;
  bool held_ = false;
  bool suppressed_ = false;
  double penalty_ = 0;  // as of penalty_at_
  MonoTime penalty_at_{};
  unsigned flaps_ = 0;
};

}  // namespace tetherd
