#pragma once
// A page in the Prometheus text exposition format 0.0.4: what `GET /metrics`
// returns. Pure: it builds a string, the server sends it.
//
//   MetricsPage page;
//   page.family("tetherd_condition", MetricType::kGauge, "Condition of the node.");
//   page.sample("tetherd_condition", {{"type", "Ready"}, {"status", "true"}}, 1);
//   page.family("tetherd_controlplane_reconnects_total", MetricType::kCounter, "...");
//   page.sample("tetherd_controlplane_reconnects_total", {}, 3);
//   std::string text = page.str();
//
// Order is the caller's job: declare a family, then all its samples, then the
// next family. The format requires a family's samples to be together after its
// # HELP and # TYPE lines; a writer that reordered them would need to buffer
// the whole page by family, and every caller writes a page top to bottom anyway.
//
// A bad name (not matching the format's grammar, a counter without `_total`, a
// sample outside its family, a family declared twice) is a programming error.
// It is dropped, not written, and described in problems(): one wrong line must
// not make Prometheus reject the whole page, nor crash the daemon. Tests of
// page builders expect problems() to be empty.

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace tetherd {

// The media type a scrape answer carries.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType { kGauge, kCounter, kUntyped };

struct Label {
  std::string_view name;
  std::string_view value;  // any UTF-8; escaped on output
};

// A sample's value as text. Integers print exactly (1700000000, never
// 1.7e+09); doubles print in the shortest form that reads back as the same
// double; NaN, +Inf and -Inf as Prometheus spells them.
class SampleValue {
 public:
  // Implicit, so that a call reads page.sample(name, labels, 3).
  SampleValue(double v);
  template <std::integral T>
  SampleValue(T v)
      : text_(std::is_signed_v<T> ? format_signed(static_cast<std::int64_t>(v))
                                  : format_unsigned(static_cast<std::uint64_t>(v))) {}

  const std::string& text() const { return text_; }

 private:
  static std::string format_signed(std::int64_t v);
  static std::string format_unsigned(std::uint64_t v);
  std::string text_;
};

// The format's grammar: [a-zA-Z_:][a-zA-Z0-9_:]* for metric names,
// [a-zA-Z_][a-zA-Z0-9_]* for label names, which may not start with "__"
// (reserved for Prometheus itself).
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

class MetricsPage {
 public:
  // Starts a family: # HELP (when help is not empty) and # TYPE. A counter's
  // name ends in "_total", and its samples carry that same name. Returns
  // false when dropped.
  bool family(std::string_view name, MetricType type, std::string_view help);

  // One sample of the family declared last. Returns false when dropped.
  bool sample(std::string_view name, std::initializer_list<Label> labels, SampleValue value);
  bool sample(std::string_view name, std::span<const Label> labels, SampleValue value);

  const std::string& str() const { return text_; }
  // What was dropped and why, one line each.
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  bool drop(std::string problem);

  std::string text_;
  std::string current_;  // the family samples may be added to; empty: none
  bool current_dropped_ = false;
  std::set<std::string, std::less<>> declared_;
  std::vector<std::string> problems_;
};

}  // namespace tetherd
