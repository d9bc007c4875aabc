#pragma once
// The login manager's word that the machine is about to sleep and has woken
// (logind's PrepareForSleep), with a lock that makes it wait for tetherd's
// last status before it sleeps. LogindSleep is the real one; the
// simulation supplies its own, on simulated time.

#include <functional>

namespace tetherd {

class SleepSignal {
 public:
  virtual ~SleepSignal() = default;
  // Starts listening: on_prepare(true) before a sleep (which then waits for
  // release_inhibitor()), on_prepare(false) after the wake. Returns false
  // when the source cannot be reached now. Call once.
  virtual bool start(std::function<void(bool start)> on_prepare) = 0;
  // No callback after this. Safe from inside on_prepare.
  virtual void stop() = 0;
  // Lets the pending sleep go ahead.
  virtual void release_inhibitor() = 0;
  // The source answered and has not failed since.
  virtual bool available() const = 0;
};

}  // namespace tetherd
