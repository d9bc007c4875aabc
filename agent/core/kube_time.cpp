#include "agent/core/kube_time.h"

#include <algorithm>
#include <array>
#include <cctype>
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

std::optional<WallTime> parse_kube_time(std::string_view text) {
  // "2006-01-02T15:04:05" is 19 characters; strptime needs a terminated copy.
  if (text.size() < 20 || text.size() > 40) return std::nullopt;
  const std::string head(text.substr(0, 19));
  std::tm tm{};
  const char* end = strptime(head.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  std::string_view rest = text.substr(19);
  std::chrono::nanoseconds fraction{0};
  if (rest.front() == '.') {
    rest.remove_prefix(1);
    long long ns = 0;
    int digits = 0;
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) {
      if (++digits > 9) return std::nullopt;
      ns = ns * 10 + (rest.front() - '0');
      rest.remove_prefix(1);
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 9; ++i)
      ns *= 10;
    fraction = std::chrono::nanoseconds(ns);
  }
  std::chrono::seconds offset{0};
  if (rest == "Z" || rest == "z") {
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
             std::isdigit(static_cast<unsigned char>(rest[1])) &&
             std::isdigit(static_cast<unsigned char>(rest[2])) &&
             std::isdigit(static_cast<unsigned char>(rest[4])) &&
             std::isdigit(static_cast<unsigned char>(rest[5]))) {
    const int hours = (rest[1] - '0') * 10 + (rest[2] - '0');
    const int minutes = (rest[4] - '0') * 10 + (rest[5] - '0');
    if (hours > 23 || minutes > 59) return std::nullopt;
    offset = std::chrono::hours(hours) + std::chrono::minutes(minutes);
    if (rest[0] == '-') offset = -offset;
  } else {
    return std::nullopt;
  }
  // strptime takes 2027-02-30, " 7" for a day and 23:59:60, and timegm rolls
  // them over into another instant: only text that is the very time it
  // names, written back, is taken (Kubernetes' Go parser refuses them too).
  const std::time_t seconds = timegm(&tm);
  // Not strftime: its %Y does not pad a year below 1000 to four digits.
  char written[32];
  const int n =
      std::snprintf(written, sizeof written, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  if (n != static_cast<int>(head.size()) || head != written) return std::nullopt;
  // WallTime counts nanoseconds in 64 bits: 1677 to 2262. Beyond (Go's zero
  // time, year 1, say) the sum below would overflow; a day's margin covers
  // the offset and the fraction.
  using std::chrono::duration_cast;
  constexpr auto kDay = std::chrono::hours(24);
  constexpr auto kFirst = duration_cast<std::chrono::seconds>(WallTime::duration::min() + kDay);
  constexpr auto kLast = duration_cast<std::chrono::seconds>(WallTime::duration::max() - kDay);
  if (seconds < kFirst.count() || seconds > kLast.count()) return std::nullopt;
  const auto since_epoch = std::chrono::seconds(seconds) - offset + fraction;
  return WallTime(std::chrono::duration_cast<WallTime::duration>(since_epoch));
}

std::optional<WallTime> parse_http_date(std::string_view text) {
  static constexpr std::array<std::string_view, 7> kDays{"Sun", "Mon", "Tue", "Wed",
                                                         "Thu", "Fri", "Sat"};
  static constexpr std::array<std::string_view, 12> kMonths{
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  // "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters, every one in its place.
  if (text.size() != 29) return std::nullopt;
  std::tm tm{};
  if (std::sscanf(std::string(text).c_str(), "%*3c, %2d %*3c %4d %2d:%2d:%2d GMT", &tm.tm_mday,
                  &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 5)
    return std::nullopt;
  const auto month = std::find(kMonths.begin(), kMonths.end(), text.substr(8, 3));
  if (month == kMonths.end()) return std::nullopt;
  tm.tm_mon = static_cast<int>(month - kMonths.begin());
  // WallTime's nanoseconds end in 2262: a Date past that is no clock's.
  if (tm.tm_year < 1970 || tm.tm_year > 2200) return std::nullopt;
  tm.tm_year -= 1900;
  const std::time_t seconds = timegm(&tm);
  std::tm back{};
  if (gmtime_r(&seconds, &back) == nullptr) return std::nullopt;
  // Written back, it must be the very text: no 30 February, no " 7" for a
  // day, no 23:59:60, and the weekday the date's.
  char written[40];
  const int n = std::snprintf(
      written, sizeof written, "%s, %02d %s %04d %02d:%02d:%02d GMT",
      std::string(kDays[static_cast<std::size_t>(back.tm_wday) % 7]).c_str(), back.tm_mday,
      std::string(kMonths[static_cast<std::size_t>(back.tm_mon) % 12]).c_str(), back.tm_year + 1900,
      back.tm_hour, back.tm_min, back.tm_sec);
  if (n != 29 || text != std::string_view(written, 29)) return std::nullopt;
  return std::chrono::system_clock::from_time_t(seconds);
}

}  // namespace tetherd
