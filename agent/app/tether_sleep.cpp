// Suspend and resume: a last status before the sleep (Connected=False,
// Suspending) and quiet until the resume, which redials at once.
#include "agent/app/tether.h"

namespace tetherd {

using boost::asio::awaitable;

void Tether::resumed() {
  if (stopped_) return;
  going_to_sleep_ = false;
  log_.notice("tether-redial", "resumed from suspend: redialling the control plane at " + server_,
              {{"CONTROL_PLANE", server_}});
  reflector_.resumed();
  for (auto* follower : {issuer_follower_.get(), bundle_follower_.get()})
    if (follower) follower->resumed();
  lease_.renew_now();
  poke_status();
}

void Tether::suspending(std::function<void()> done) {
  if (stopped_) {
    done();
    return;
  }
  going_to_sleep_ = true;
  // Set without poking the status loop: the write below is the one.
  quiet_ = true;
  conditions_.report(condition_type::kConnected, ConditionStatus::kFalse, "Suspending",
                     "the node is going to sleep; it redials " + server_ + " when it wakes");
  quiet_ = false;
  spawn(last_status_before_sleep(std::move(done)));
}

awaitable<void> Tether::last_status_before_sleep(std::function<void()> done) {
  // Only over a session that works: a node asleep in a backoff has nothing
  // to say that the cloud could hear.
  const std::size_t writes = stats_.status_writes;
  if (connected()) co_await write_status();
  const bool written = stats_.status_writes > writes;
  // A write slower than logind's patience: the machine slept and woke
  // meanwhile, and resumed() has redialled. Do not undo that.
  if (!going_to_sleep_ || stopped_) {
    done();
    co_return;
  }
  // Then quiet: the watch and every kept-alive connection closed, and no
  // redial until the resume.
  reflector_.suspending();
  http_->disconnect_all();
  for (auto* follower : {issuer_follower_.get(), bundle_follower_.get()})
    if (follower) follower->suspending();
  log_.notice("tether-suspended",
              std::string(written ? "wrote Connected=False (Suspending) and closed"
                                  : "could not tell the control plane; closed") +
                  " the connection to " + server_ + " for the sleep",
              {{"CONTROL_PLANE", server_}});
  changed();
  done();
}

}  // namespace tetherd
