#include "agent/adapters/logind.h"

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "agent/core/backoff.h"

namespace tetherd {
namespace {

constexpr const char* kLogindName = "org.freedesktop.login1";
constexpr const char* kLogindPath = "/org/freedesktop/login1";
constexpr const char* kLogindManager = "org.freedesktop.login1.Manager";
constexpr const char* kBusDriver = "org.freedesktop.DBus";

// Only the bus driver can send as org.freedesktop.DBus, so this match cannot
// be fed by another client (prepare_for_sleep() relies on the owner it gives).
constexpr const char* kOwnerMatch =
    "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
    "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.freedesktop.login1'";

std::string errno_text(int negative_errno) {
  return std::strerror(-negative_errno);
}

// sd-bus's C callbacks, forwarded to a member function.
template <int (LogindSleep::*Member)(sd_bus_message*)>
struct Forward {
  static int call(sd_bus_message* m, void* self, sd_bus_error*) {
    return (static_cast<LogindSleep*>(self)->*Member)(m);
  }
};

}  // namespace

LogindSleep::LogindSleep(boost::asio::io_context& io, Log& log, std::string bus_address)
    : log_(log), address_(std::move(bus_address)), descriptor_(io), timeout_(io), redial_(io) {}

LogindSleep::~LogindSleep() {
  *life_ = false;
  redial_.cancel();
  close_bus();
}

bool LogindSleep::start(std::function<void(bool)> on_prepare) {
  on_prepare_ = std::move(on_prepare);
  return connect();
}

void LogindSleep::lost(const std::string& reason) {
  unavailable(reason);
  close_bus();
  if (stopped_) return;
  // The bus (or its daemon) restarts: connect again, subscribe again and
  // take a new lock. 1 s, doubling to 30 s: a node without a bus at all
  // wakes for it twice a minute.
  redial_.expires_after(backoff_ceiling(
      {.base = std::chrono::seconds(1), .cap = std::chrono::seconds(30)}, redials_++));
  redial_.async_wait([this, life = life_](const boost::system::error_code& ec) {
    if (!ec && *life && !stopped_ && bus_ == nullptr) connect();
  });
}

bool LogindSleep::connect() {
  alive_ = std::make_shared<bool>(true);
  // Unique names start again on a new bus: the old owner means nothing.
  // (A sleep under way stays so: a lock is not taken in the middle of one,
  // and the clocks see the resume if logind's signal was lost.)
  logind_owner_.clear();
  int r = 0;
  if (address_.empty()) {
    r = sd_bus_open_system(&bus_);
  } else {
    r = sd_bus_new(&bus_);
    if (r >= 0) r = sd_bus_set_address(bus_, address_.c_str());
    if (r >= 0) r = sd_bus_set_bus_client(bus_, 1);
    if (r >= 0) r = sd_bus_start(bus_);
  }
  if (r < 0) {
    bus_ = sd_bus_flush_close_unref(bus_);
    lost("cannot connect to the bus: " + errno_text(r));
    return false;
  }
  // The owner match goes first: the daemon answers in order, so no change
  // of owner falls between GetNameOwner's answer and the match. The slots
  // are floating: they live and die with the connection.
  r = sd_bus_add_match_async(bus_, nullptr, kOwnerMatch,
                             Forward<&LogindSleep::name_owner_changed>::call, nullptr, this);
  if (r >= 0) {
    r = sd_bus_call_method_async(bus_, nullptr, kBusDriver, "/org/freedesktop/DBus", kBusDriver,
                                 "GetNameOwner", Forward<&LogindSleep::name_owner_reply>::call,
                                 this, "s", kLogindName);
  }
  if (r >= 0) {
    r = sd_bus_match_signal_async(bus_, nullptr, kLogindName, kLogindPath, kLogindManager,
                                  "PrepareForSleep", Forward<&LogindSleep::prepare_for_sleep>::call,
                                  nullptr, this);
  }
  if (r < 0) {
    lost("cannot subscribe to PrepareForSleep: " + errno_text(r));
    return false;
  }
  boost::system::error_code ec;
  if (const int fd = sd_bus_get_fd(bus_); fd < 0) {
    ec.assign(-fd, boost::system::system_category());
  } else {
    descriptor_.assign(fd, ec);
  }
  if (ec) {
    lost("cannot wait on the bus connection: " + ec.message());
    return false;
  }
  take_inhibitor();
  arm();
  return true;
}

void LogindSleep::stop() {
  stopped_ = true;
  redial_.cancel();
  if (processing_) {
    // Closing the bus under sd_bus_process() would pull it from under its feet.
    stop_requested_ = true;
    return;
  }
  close_bus();
}

void LogindSleep::release_inhibitor() {
  if (inhibitor_fd_ < 0) return;
  close(inhibitor_fd_);
  inhibitor_fd_ = -1;
}

void LogindSleep::take_inhibitor() {
  // Never while a sleep is under way: logind would wait for this new lock
  // too, holding the machine up until its InhibitDelayMaxSec.
  if (bus_ == nullptr || inhibit_pending_ || inhibitor_fd_ >= 0 || sleeping_) return;
  const int r = sd_bus_call_method_async(
      bus_, nullptr, kLogindName, kLogindPath, kLogindManager, "Inhibit",
      Forward<&LogindSleep::inhibit_reply>::call, this, "ssss", "sleep", "tetherd",
      "write a last status to the control plane before sleep", "delay");
  if (r < 0) {
    unavailable("cannot ask logind for a delay inhibitor: " + errno_text(r));
    return;
  }
  inhibit_pending_ = true;
}

int LogindSleep::inhibit_reply(sd_bus_message* m) {
  inhibit_pending_ = false;
  if (const sd_bus_error* e = sd_bus_message_get_error(m)) {
    unavailable(std::string("no delay inhibitor: ") + (e->name ? e->name : "error") + ": " +
                (e->message ? e->message : ""));
    return 0;
  }
  int fd = -1;
  if (const int r = sd_bus_message_read(m, "h", &fd); r < 0) {
    unavailable("logind's answer to Inhibit is not an fd: " + errno_text(r));
    return 0;
  }
  logind_answered_ = true;
  redials_ = 0;
  if (unavailable_reported_) {
    unavailable_reported_ = false;
    log_.info("logind-available", "logind answered: sleep now waits for a last status",
              {{"BUS", address_.empty() ? "system" : address_}});
  }
  // Asked for before the sleep began but answered after: letting go at once
  // (the message closes its fd) is what release_inhibitor() would do.
  if (sleeping_) return 0;
  // The message owns its fd and closes it when freed.
  const int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (own < 0) {
    unavailable(std::string("cannot keep the inhibitor: ") + std::strerror(errno));
    return 0;
  }
  inhibitor_fd_ = own;
  return 0;
}

int LogindSleep::prepare_for_sleep(sd_bus_message* m) {
  // The daemon routes this match by the owner of logind's name, but sd-bus's
  // local check lets any unique sender through, and any client may send a
  // signal straight to us (the system bus allows unicast signals): only the
  // name's owner counts.
  const char* sender = sd_bus_message_get_sender(m);
  if (stop_requested_ || sender == nullptr || logind_owner_.empty() || logind_owner_ != sender)
    return 0;
  int start = 0;
  if (sd_bus_message_read(m, "b", &start) < 0) return 0;
  sleeping_ = start != 0;
  if (!sleeping_) take_inhibitor();
  if (on_prepare_) on_prepare_(sleeping_);
  return 0;
}

int LogindSleep::name_owner_changed(sd_bus_message* m) {
  const char* sender = sd_bus_message_get_sender(m);
  if (sender == nullptr || std::strcmp(sender, kBusDriver) != 0) return 0;
  const char* name = nullptr;
  const char* old_owner = nullptr;
  const char* new_owner = nullptr;
  if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
  if (std::strcmp(name, kLogindName) != 0) return 0;
  logind_owner_ = new_owner;
  // logind started (or restarted) after us: now there is someone to ask.
  // An inhibitor held across a restart stays valid (logind re-reads them).
  if (!logind_owner_.empty()) take_inhibitor();
  return 0;
}

int LogindSleep::name_owner_reply(sd_bus_message* m) {
  const char* owner = nullptr;
  // An error is NameHasNoOwner: logind is not running (Inhibit says so).
  if (sd_bus_message_is_method_error(m, nullptr) || sd_bus_message_read(m, "s", &owner) < 0) {
    logind_owner_.clear();
    return 0;
  }
  logind_owner_ = owner;
  return 0;
}

void LogindSleep::unavailable(const std::string& reason) {
  logind_answered_ = false;
  if (unavailable_reported_) return;
  unavailable_reported_ = true;
  log_.warning("logind-unavailable",
               "logind cannot be used (" + reason +
                   "): resume is seen in the clocks only, and sleep waits for no last status",
               {{"REASON", reason}, {"BUS", address_.empty() ? "system" : address_}});
}

void LogindSleep::pump() {
  if (bus_ == nullptr) return;
  processing_ = true;
  int r = 0;
  do {
    r = sd_bus_process(bus_, nullptr);
  } while (r > 0 && !stop_requested_);
  processing_ = false;
  if (stop_requested_) {
    close_bus();
  } else if (r < 0) {
    // Pending calls were answered with errors first, so this may already be
    // reported; this connection is gone, and a new one is tried.
    lost("the bus connection failed: " + errno_text(r));
  } else {
    arm();
  }
}

void LogindSleep::arm() {
  const int events = sd_bus_get_events(bus_);
  if (events < 0) {
    lost("the bus connection failed: " + errno_text(events));
    return;
  }
  auto wake = [this, alive = alive_](bool* waiting) {
    return [this, alive, waiting](const boost::system::error_code& ec) {
      if (!*alive) return;
      *waiting = false;
      if (ec != boost::asio::error::operation_aborted) pump();
    };
  };
  if ((events & POLLIN) && !read_waiting_) {
    read_waiting_ = true;
    descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_read, wake(&read_waiting_));
  }
  if ((events & POLLOUT) && !write_waiting_) {
    write_waiting_ = true;
    descriptor_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                           wake(&write_waiting_));
  }
  std::uint64_t deadline_us = UINT64_MAX;
  sd_bus_get_timeout(bus_, &deadline_us);
  if (deadline_us == UINT64_MAX) {
    timeout_.cancel();
    return;
  }
  // sd-bus's deadline is absolute on CLOCK_MONOTONIC (0: process now).
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  const std::uint64_t now_us = static_cast<std::uint64_t>(now.tv_sec) * 1'000'000u +
                               static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
  const std::uint64_t delay_us = deadline_us > now_us ? deadline_us - now_us : 0;
  timeout_.expires_after(std::chrono::microseconds(delay_us));
  timeout_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (!ec && *alive) pump();
  });
}

void LogindSleep::close_bus() {
  *alive_ = false;
  timeout_.cancel();
  // The socket is sd-bus's: stop waiting on it without closing it twice.
  if (descriptor_.is_open()) (void)descriptor_.release();
  bus_ = sd_bus_flush_close_unref(bus_);
  read_waiting_ = write_waiting_ = false;
  inhibit_pending_ = false;
  release_inhibitor();
}

}  // namespace tetherd
