#include "agent/app/tunnel_gate.h"

#include <algorithm>
#include <cmath>

#include "agent/core/kube_time.h"

namespace tetherd {

namespace {

double seconds(Duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

TunnelGate::TunnelGate(const boost::asio::any_io_executor& executor, const Clock& clock, Log& log,
                       FlapDampingSettings settings)
    : clock_(clock), log_(log), settings_(settings), timer_(executor, clock) {}

double TunnelGate::decayed(MonoTime now) const {
  if (penalty_ <= 0) return 0;
  const double elapsed = seconds(std::max(now - penalty_at_, Duration::zero()));
  return penalty_ * std::exp2(-elapsed / seconds(settings_.half_life));
}

double TunnelGate::penalty() const {
  return decayed(clock_.boottime());
}

Duration TunnelGate::until_reuse(double penalty) const {
  if (penalty <= settings_.reuse) return Duration::zero();
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(
      seconds(settings_.half_life) * std::log2(penalty / settings_.reuse)));
}

void TunnelGate::held(bool h, double weight) {
  const MonoTime now = clock_.boottime();
  const bool was = held_;
  held_ = h;
  // Losses that decayed while the timer could not run (a suspend) end the
  // suppression before this report is weighed. The caller acts on close()
  // after this call, so it is not told.
  if (suppressed_) end_if_decayed(/*tell=*/false);
  if (was && !h && weight > 0) {
    const double ceiling =
        settings_.reuse * std::exp2(seconds(settings_.max_suppress) / seconds(settings_.half_life));
    penalty_ = std::min(decayed(now) + settings_.penalty * std::min(weight, 1.0), ceiling);
    penalty_at_ = now;
    ++flaps_;
    if (!suppressed_ && penalty_ > settings_.suppress) {
      suppressed_ = true;
      log_.notice("firewall-tunnel-damped",
                  "the tunnel was lost again (" + std::to_string(flaps_) +
                      " times to this server): the tunnelled ports stay open to the cloud while "
                      "it is damped, at least until " +
                      format_kube_time(clock_.wall() + until_reuse(penalty_)) +
                      ", longer if it is lost meanwhile (flap damping)");
    }
  }
  if (suppressed_) arm();
}

bool TunnelGate::end_if_decayed(bool tell) {
  if (decayed(clock_.boottime()) >= settings_.reuse) return false;
  suppressed_ = false;
  timer_.cancel();
  log_.info("firewall-tunnel-undamped",
            std::string("the tunnel's losses have decayed: its ports follow it again") +
                (held_ ? " (it holds its servers)" : ""));
  if (tell && held_ && changed_) changed_("no longer damped");
  return true;
}

void TunnelGate::reset() {
  const bool was = suppressed_;
  penalty_ = 0;
  flaps_ = 0;
  stop();
  if (was)
    log_.info("firewall-tunnel-undamped", "another tunnel: the last one's losses are not its");
}

void TunnelGate::stop() {
  suppressed_ = false;
  timer_.cancel();
}

void TunnelGate::arm() {
  // When the penalty reaches `reuse`, a millisecond on so that the check
  // after the wait finds it below.
  timer_.expires_after(until_reuse(decayed(clock_.boottime())) + std::chrono::milliseconds(1));
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && suppressed_ && !end_if_decayed(/*tell=*/true)) arm();
  });
}

}  // namespace tetherd
