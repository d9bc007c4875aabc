#include "agent/core/duration.h"

#include <array>
#include <cstdint>
#include <limits>

namespace tetherd {
namespace {

struct Unit {
  std::string_view name;
  std::int64_t nanos;
};

// Longest names first so that "ms" is not read as "m" followed by "s".
constexpr std::array<Unit, 8> kUnits{{
    {"ns", 1},
    {"us", 1'000},
    {"\xC2\xB5s", 1'000},  // U+00B5 micro sign
    {"\xCE\xBCs", 1'000},  // U+03BC Greek mu
    {"ms", 1'000'000},
    {"h", 3'600'000'000'000},
    {"m", 60'000'000'000},
    {"s", 1'000'000'000},
}};

constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string quoted(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

}  // namespace

Result<Duration> parse_duration(std::string_view text) {
  const std::string_view original = text;
  if (text.empty()) return make_error("empty duration (use e.g. 10s, 1h30m)");
  if (text.front() == '-' || text.front() == '+') {
    return make_error("invalid duration " + quoted(original) + ": a duration cannot have a sign");
  }
  if (text == "0") return Duration::zero();

  std::int64_t total = 0;
  while (!text.empty()) {
    // Integer part.
    std::int64_t whole = 0;
    std::size_t i = 0;
    bool overflow = false;
    while (i < text.size() && is_digit(text[i])) {
      if (whole > (kMax - (text[i] - '0')) / 10) overflow = true;
      if (!overflow) whole = whole * 10 + (text[i] - '0');
      ++i;
    }
    const bool had_whole = i > 0;
    // Fraction: keep up to 18 digits, which is more than nanoseconds need.
    std::int64_t frac = 0;
    std::int64_t scale = 1;
    bool had_frac = false;
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && is_digit(text[i])) {
        had_frac = true;
        if (scale < 1'000'000'000'000'000'000) {
          frac = frac * 10 + (text[i] - '0');
          scale *= 10;
        }
        ++i;
      }
    }
    if (!had_whole && !had_frac) {
      if (text.size() == original.size() || text.empty()) {
        return make_error("invalid duration " + quoted(original) + ": expected a number");
      }
      return make_error("invalid duration " + quoted(original) + ": unexpected " +
                        quoted(text.substr(0, 1)) + " at offset " +
                        std::to_string(original.size() - text.size()));
    }
    text.remove_prefix(i);

    // Unit.
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (text.starts_with(u.name)) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) {
      std::size_t end = 0;
      while (end < text.size() && !is_digit(text[end]) && text[end] != '.')
        ++end;
      if (end == 0) {
        return make_error("invalid duration " + quoted(original) +
                          ": missing unit (ns, us, ms, s, m, h), e.g. 10s");
      }
      return make_error("invalid duration " + quoted(original) + ": unknown unit " +
                        quoted(text.substr(0, end)) + " (use ns, us, ms, s, m, h)");
    }
    text.remove_prefix(unit->name.size());

    if (overflow || whole > kMax / unit->nanos) {
      return make_error("invalid duration " + quoted(original) + ": too large");
    }
    std::int64_t value = whole * unit->nanos;
    if (frac > 0) {
      // frac/scale of a unit. long double has a 64-bit mantissa: exact to the
      // nanosecond for any fraction a human writes.
      const long double part = static_cast<long double>(frac) *
                               static_cast<long double>(unit->nanos) /
                               static_cast<long double>(scale);
      const auto nanos = static_cast<std::int64_t>(part);
      if (nanos > kMax - value) {
        return make_error("invalid duration " + quoted(original) + ": too large");
      }
      value += nanos;
    }
    if (value > kMax - total) {
      return make_error("invalid duration " + quoted(original) + ": too large");
    }
    total += value;
  }
  return Duration(total);
}

std::string format_duration(Duration d) {
  if (d == Duration::zero()) return "0s";
  std::string out;
  std::int64_t n = d.count();
  if (n < 0) {
    out = "-";
    n = -n;
  }
  if (n < 1'000'000'000) {
    // Sub-second: pick the largest unit that divides it exactly.
    if (n % 1'000'000 == 0) return out + std::to_string(n / 1'000'000) + "ms";
    if (n % 1'000 == 0) return out + std::to_string(n / 1'000) + "us";
    return out + std::to_string(n) + "ns";
  }
  const std::int64_t hours = n / 3'600'000'000'000;
  n %= 3'600'000'000'000;
  const std::int64_t minutes = n / 60'000'000'000;
  n %= 60'000'000'000;
  if (hours > 0) out += std::to_string(hours) + "h";
  if (minutes > 0) out += std::to_string(minutes) + "m";
  if (n > 0) {
    out += std::to_string(n / 1'000'000'000);
    std::int64_t frac = n % 1'000'000'000;
    if (frac > 0) {
      std::string digits = std::to_string(frac);
      digits.insert(0, 9 - digits.size(), '0');
      while (digits.back() == '0')
        digits.pop_back();
      out += "." + digits;
    }
    out += "s";
  }
  return out;
}

}  // namespace tetherd
