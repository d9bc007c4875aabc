// test-logind: a stand-in for systemd-logind's sleep signalling, for
// scripts/demo, on the bus at DBUS_SYSTEM_BUS_ADDRESS (a private
// dbus-daemon: the demo cannot suspend the machine it runs on). It owns
// org.freedesktop.login1, hands out delay inhibitors (Inhibit, one pipe
// each, as logind does) and says when they are released, and on signals
// broadcasts what logind broadcasts around a sleep:
//
//   SIGUSR1  PrepareForSleep(true): the machine is about to sleep
//   SIGUSR2  PrepareForSleep(false): it has resumed
//
// Every step is a line on stdout; it runs until SIGTERM or SIGINT.

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/signalfd.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

namespace {

constexpr const char* kPath = "/org/freedesktop/login1";
constexpr const char* kManager = "org.freedesktop.login1.Manager";

sd_bus* bus = nullptr;

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

int released(sd_event_source* source, int fd, uint32_t, void* what) {
  say("delay inhibitor released: " + *static_cast<std::string*>(what));
  delete static_cast<std::string*>(what);
  sd_event_source_disable_unref(source);
  close(fd);
  return 0;
}

int inhibit(sd_bus_message* m, void*, sd_bus_error*) {
  const char *what = nullptr, *who = nullptr, *why = nullptr, *mode = nullptr;
  if (int r = sd_bus_message_read(m, "ssss", &what, &who, &why, &mode); r < 0) return r;
  int ends[2];
  if (pipe2(ends, O_CLOEXEC) < 0) return -errno;
  // The caller holds the read end; when it closes it (or dies) the write
  // end reports an error, as logind notices a released inhibitor.
  const int r = sd_bus_reply_method_return(m, "h", ends[0]);
  close(ends[0]);
  if (r < 0) {
    close(ends[1]);
    return r;
  }
  auto* label = new std::string(std::string(who) + " (" + what + ", " + mode + ": " + why + ")");
  sd_event_source* source = nullptr;
  if (const int watched = sd_event_add_io(sd_bus_get_event(sd_bus_message_get_bus(m)), &source,
                                          ends[1], 0, released, label);
      watched < 0) {
    say("delay inhibitor taken by " + *label +
        ", but its release cannot be watched: " + std::strerror(-watched));
    delete label;
    close(ends[1]);
    return 0;
  }
  say("delay inhibitor taken: " + *label);
  return 0;
}

int on_signal(sd_event_source*, const struct signalfd_siginfo* info, void*) {
  const bool start = info->ssi_signo == SIGUSR1;
  const int r = sd_bus_emit_signal(bus, kPath, kManager, "PrepareForSleep", "b", start);
  say(std::string("PrepareForSleep(") + (start ? "true" : "false") + ")" +
      (r < 0 ? std::string(" not sent: ") + std::strerror(-r) : std::string(" sent")));
  return 0;
}

const sd_bus_vtable kVtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD("Inhibit", "ssss", "h", inhibit, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL("PrepareForSleep", "b", 0),
    SD_BUS_VTABLE_END,
};

}  // namespace

int main() {
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2})
    sigaddset(&signals, s);
  sigprocmask(SIG_BLOCK, &signals, nullptr);

  sd_event* event = nullptr;
  int r = sd_event_default(&event);
  if (r >= 0) r = sd_bus_open_system(&bus);
  if (r >= 0) r = sd_bus_add_object_vtable(bus, nullptr, kPath, kManager, kVtable, nullptr);
  if (r >= 0) r = sd_bus_request_name(bus, "org.freedesktop.login1", 0);
  if (r >= 0) r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
  if (r >= 0) r = sd_event_add_signal(event, nullptr, SIGUSR1, on_signal, nullptr);
  if (r >= 0) r = sd_event_add_signal(event, nullptr, SIGUSR2, on_signal, nullptr);
  // NULL handler: the loop exits.
  if (r >= 0) r = sd_event_add_signal(event, nullptr, SIGTERM, nullptr, nullptr);
  if (r >= 0) r = sd_event_add_signal(event, nullptr, SIGINT, nullptr, nullptr);
  if (r < 0) {
    std::fprintf(stderr, "test-logind: %s\n", std::strerror(-r));
    return 1;
  }
  say("serving org.freedesktop.login1");
  r = sd_event_loop(event);
  sd_bus_flush_close_unref(bus);
  sd_event_unref(event);
  return r < 0 ? 1 : 0;
}
