#include "agent/core/proxy_metrics.h"

#include <charconv>
#include <cmath>

namespace tetherd {
namespace {

constexpr std::string_view kExpiry = "control_identity_cert_expiration_timestamp_seconds";
constexpr std::string_view kLegacyExpiry = "identity_cert_expiration_timestamp_seconds";
constexpr std::string_view kRefreshes = "control_identity_cert_refreshes_total";
// 2200-01-01T00:00:00Z: later than any certificate a proxy holds, and
// inside what WallTime (nanoseconds in 64 bits, to 2262) can hold.
constexpr double kLatestSeconds = 7258118400.0;

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

std::optional<double> number(std::string_view text) {
  double v = 0;
  // from_chars takes no leading '+'; Go writes "+Inf" and never "+1".
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// The value of label `key` in `labels` (the text between the braces), or
// nullopt. Values are quoted, with \\, \" and \n escaped.
std::optional<std::string> label(std::string_view labels, std::string_view key) {
  std::size_t i = 0;
  while (i < labels.size()) {
    while (i < labels.size() && (is_space(labels[i]) || labels[i] == ','))
      ++i;
    const std::size_t eq = labels.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string_view name = labels.substr(i, eq - i);
    while (!name.empty() && is_space(name.back()))
      name.remove_suffix(1);
    i = eq + 1;
    while (i < labels.size() && is_space(labels[i]))
      ++i;
    if (i >= labels.size() || labels[i] != '"') return std::nullopt;
    std::string value;
    for (++i; i < labels.size() && labels[i] != '"'; ++i) {
      if (labels[i] == '\\' && i + 1 < labels.size()) {
        ++i;
        value += labels[i] == 'n' ? '\n' : labels[i];
      } else {
        value += labels[i];
      }
    }
    if (i >= labels.size()) return std::nullopt;  // unterminated
    ++i;
    if (name == key) return value;
  }
  return std::nullopt;
}

}  // namespace

void ProxyMetricsScan::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    const std::size_t nl = bytes.find('\n');
    const std::string_view piece = bytes.substr(0, nl);
    if (!skipping_) {
      if (partial_.size() + piece.size() > kMaxLineBytes) {
        skipping_ = true;
        partial_.clear();
      } else {
        partial_.append(piece);
      }
    }
    if (nl == std::string_view::npos) return;
    if (!skipping_) line(partial_);
    partial_.clear();
    skipping_ = false;
    bytes.remove_prefix(nl + 1);
  }
}

void ProxyMetricsScan::finish() {
  if (!skipping_ && !partial_.empty()) line(partial_);
  partial_.clear();
  skipping_ = false;
}

bool ProxyMetricsScan::complete() const {
  return identity_.expires && !identity_.legacy && refreshes_closed_;
}

void ProxyMetricsScan::line(std::string_view text) {
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  if (text.empty()) return;
  std::string_view name;
  if (text.front() == '#') {
    // "# HELP name ..." or "# TYPE name ...": which family comes next.
    text.remove_prefix(1);
    while (!text.empty() && is_space(text.front()))
      text.remove_prefix(1);
    const std::size_t sp = text.find(' ');
    if (sp == std::string_view::npos) return;
    text.remove_prefix(sp + 1);
    name = text.substr(0, text.find(' '));
    if (in_refreshes_ && name != kRefreshes) refreshes_closed_ = true;
    return;
  }
  const std::size_t name_end = text.find_first_of("{ \t");
  name = text.substr(0, name_end);
  // A family's samples are together (the format says so): once another
  // follows the refresh counters, they are all seen.
  if (name == kRefreshes) {
    in_refreshes_ = true;
  } else if (in_refreshes_) {
    refreshes_closed_ = true;
  }
  if (name != kExpiry && name != kLegacyExpiry && name != kRefreshes) return;
  if (name_end == std::string_view::npos) return;
  text.remove_prefix(name_end);
  std::string_view labels;
  if (text.front() == '{') {
    // The closing brace outside a quoted value.
    bool quoted = false;
    std::size_t i = 1;
    for (; i < text.size(); ++i) {
      if (text[i] == '\\' && quoted) {
        ++i;
      } else if (text[i] == '"') {
        quoted = !quoted;
      } else if (text[i] == '}' && !quoted) {
        break;
      }
    }
    if (i >= text.size()) return;
    labels = text.substr(1, i - 1);
    text.remove_prefix(i + 1);
  }
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  const std::string_view value = text.substr(0, text.find_first_of(" \t"));
  value_of(name, labels, value);
}

void ProxyMetricsScan::value_of(std::string_view name, std::string_view labels,
                                std::string_view value) {
  const std::optional<double> v = number(value);
  if (name == kRefreshes) {
    if (!v || !std::isfinite(*v) || *v < 0 || *v > 1e18) return;
    const auto result = label(labels, "result");
    if (!result) return;
    std::optional<std::uint64_t>* counter = *result == "ok"      ? &identity_.refreshes_ok
                                            : *result == "error" ? &identity_.refresh_errors
                                                                 : nullptr;
    if (counter != nullptr) *counter = counter->value_or(0) + static_cast<std::uint64_t>(*v);
    return;
  }
  const bool legacy = name == kLegacyExpiry;
  // The current name wins over the old one, whichever comes first.
  if (legacy && identity_.expires && !identity_.legacy) return;
  // 0: the gauge before the proxy's first certificate (linkerd2-proxy
  // registers it at its default); no expiry yet, not an expired one.
  if (v && *v == 0) return;
  if (!v || !std::isfinite(*v) || *v < 0 || *v > kLatestSeconds) {
    problem_ = std::string(name) + " is " + std::string(value.substr(0, 40)) + ", not a time";
    return;
  }
  const WallTime at{std::chrono::duration_cast<WallTime::duration>(
      std::chrono::duration<double>(std::floor(*v)))};
  if (identity_.expires && identity_.legacy == legacy && *identity_.expires != at) {
    problem_ = std::string(name) + " is given twice, with different values";
    return;
  }
  identity_.expires = at;
  identity_.legacy = legacy;
}

ProxyMetricsScan scan_proxy_metrics(std::string_view page) {
  ProxyMetricsScan scan;
  scan.feed(page);
  scan.finish();
  return scan;
}

}  // namespace tetherd
