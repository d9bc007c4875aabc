#include "agent/adapters/system_clock.h"

#include <time.h>

namespace tetherd {
namespace {

MonoTime read(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

WallTime SystemClock::wall() const {
  return std::chrono::system_clock::now();
}
MonoTime SystemClock::monotonic() const {
  return read(CLOCK_MONOTONIC);
}
MonoTime SystemClock::boottime() const {
  return read(CLOCK_BOOTTIME);
}

}  // namespace tetherd
