#pragma once
// What the host's own facts mean for its health. Pure: the adapter
// (adapters/host_facts.h) reads the kernel, this judges what it read.

#include <chrono>
#include <cstdint>
#include <string>

#include "agent/core/probe.h"

namespace tetherd {

// The kernel's clock discipline as adjtimex(2) reports it (modes 0: a read).
// Core does not include <sys/timex.h>; the adapter checks that the
// constants below match it.
struct ClockDiscipline {
  std::string error;  // set when the kernel could not be asked; the rest is then unset
  int state = 0;      // adjtimex's return value: TIME_OK ... TIME_ERROR
  int status = 0;     // STA_* flags
  std::int64_t max_error_us = 0;
  std::int64_t est_error_us = 0;

  friend bool operator==(const ClockDiscipline&, const ClockDiscipline&) = default;
};

inline constexpr int kClockStateError = 5;       // TIME_ERROR
inline constexpr int kClockStatusUnsync = 0x40;  // STA_UNSYNC

// Certificates (notBefore, notAfter) and the Lease's renewTime are judged
// on the wall clock, here and by the control plane on its own. An error of
// seconds makes a fresh certificate "not yet valid" to a peer, or a live
// Lease look late: 5 s is half the default heartbeatInterval (10 s), so a
// clock within it cannot cost a heartbeat. The kernel adds 500 us to
// maxerror each second no NTP daemon corrects it (and sets STA_UNSYNC at
// 16 s), so a daemon that stopped is noticed here after about 2.8 hours.
inline constexpr std::chrono::microseconds kMaxClockError = std::chrono::seconds(5);

// False "NotSynchronized" when STA_UNSYNC is set or the state is TIME_ERROR,
// False "ClockErrorTooLarge" when maxerror exceeds kMaxClockError, True
// "Synchronized" otherwise; Unknown "ClockStateUnknown" when the kernel
// could not be asked. `took` is left zero.
ProbeResult clock_synchronized(const ClockDiscipline& clock);

}  // namespace tetherd
