#include "agent/core/kube_time.h"

#include <cstdio>
#include <ctime>

namespace tetherd {

namespace {

// Seconds since the epoch (floored, so a time before 1970 still rounds
// towards the past) and the microseconds within that second.
struct Split {
  std::time_t seconds;
  long micros;
};

Split split(WallTime t) {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(t.time_since_epoch());
  auto s = floor<seconds>(us);
  return {static_cast<std::time_t>(s.count()), static_cast<long>((us - s).count())};
}

std::string format(WallTime t, bool micro) {
  const Split parts = split(t);
  std::tm tm{};
  gmtime_r(&parts.seconds, &tm);
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  if (micro) n += std::snprintf(text + n, sizeof text - n, ".%06ld", parts.micros);
  std::string out(text, n);
  out += 'Z';
  return out;
}

}  // namespace

std::string format_kube_time(WallTime t) {
  return format(t, false);
}

std::string format_kube_micro_time(WallTime t) {
  return format(t, true);
}

}  // namespace tetherd
