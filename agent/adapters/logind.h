#pragma once
// logind's side of suspend, over sd-bus on the Asio loop (no thread of its
// own): the PrepareForSleep(b) signal, and a "delay" inhibitor lock, which
// makes logind wait (up to its InhibitDelayMaxSec, 5 s by default) for the
// lock's fd to be closed before the machine sleeps. That wait is tetherd's
// chance to tell the control plane it is going away.
//
// Without a bus or without logind (a container, a minimal image) this says
// so once in the log: resume is then seen in the clocks alone
// (ClockJumpCheck). A bus connection that fails or cannot be made (dbus
// restarted) is made again, with backoff from 1 s to 30 s; logind
// restarting is seen in NameOwnerChanged. Either way the match is made
// again and a new delay lock taken.

#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/core/log.h"
#include "agent/core/sleep_signal.h"

struct sd_bus;
struct sd_bus_message;

namespace tetherd {

class LogindSleep final : public SleepSignal {
 public:
  // `bus_address`: empty for the system bus, else a D-Bus address such as
  // "unix:path=/run/dbus/system_bus_socket".
  LogindSleep(boost::asio::io_context& io, Log& log, std::string bus_address = {});
  ~LogindSleep() override;
  LogindSleep(const LogindSleep&) = delete;
  LogindSleep& operator=(const LogindSleep&) = delete;

  // Connects, subscribes to PrepareForSleep and asks for a delay inhibitor,
  // none of it waiting for an answer. on_prepare(true): the machine is about
  // to sleep, and waits for release_inhibitor(); on_prepare(false): it woke
  // (a new inhibitor is then taken for the next sleep). Returns false, after
  // logging "logind-unavailable", when the bus cannot be reached (it is
  // tried again later). Call once.
  bool start(std::function<void(bool start)> on_prepare) override;

  // Disconnects and lets go of the inhibitor; no callback after this. Safe
  // from inside on_prepare (the close then waits for sd-bus to return).
  void stop() override;

  // Lets the pending sleep go ahead: closes the inhibitor's fd.
  void release_inhibitor() override;

  bool holds_inhibitor() const { return inhibitor_fd_ >= 0; }
  // logind answered (granted an inhibitor) and has not failed since.
  bool available() const override { return bus_ != nullptr && logind_answered_; }

 private:
  int prepare_for_sleep(sd_bus_message* m);
  int inhibit_reply(sd_bus_message* m);
  int name_owner_changed(sd_bus_message* m);
  int name_owner_reply(sd_bus_message* m);
  bool connect();
  // The connection failed: close it and try again later.
  void lost(const std::string& reason);
  void take_inhibitor();
  void unavailable(const std::string& reason);
  // sd_bus_process until idle, then wait for what sd-bus asks for.
  void pump();
  void arm();
  void close_bus();

  Log& log_;
  std::string address_;
  sd_bus* bus_ = nullptr;
  // Waits on sd-bus's own socket; never owns it (release(), not close()).
  boost::asio::posix::stream_descriptor descriptor_;
  // sd-bus's next timeout (a method call's reply deadline).
  boost::asio::steady_timer timeout_;
  // The next connection attempt after one failed.
  boost::asio::steady_timer redial_;
  unsigned redials_ = 0;
  bool stopped_ = false;
  std::function<void(bool)> on_prepare_;
  // The unique name that owns org.freedesktop.login1: the only sender whose
  // PrepareForSleep counts (see prepare_for_sleep()).
  std::string logind_owner_;
  int inhibitor_fd_ = -1;
  bool inhibit_pending_ = false;
  bool sleeping_ = false;
  bool logind_answered_ = false;
  bool unavailable_reported_ = false;
  bool read_waiting_ = false;
  bool write_waiting_ = false;
  bool processing_ = false;
  bool stop_requested_ = false;
  // Handlers already queued when the connection goes away check this, not
  // `this`; life_ likewise for the object itself.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<bool> life_ = std::make_shared<bool>(true);
};

}  // namespace tetherd
