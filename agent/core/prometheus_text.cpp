#include "agent/core/prometheus_text.h"

#include <array>
#include <charconv>
#include <cmath>

namespace tetherd {
namespace {

bool name_start(char c, bool colon_ok) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
}

bool name_char(char c, bool colon_ok) {
  return name_start(c, colon_ok) || (c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon_ok) {
  if (name.empty() || !name_start(name.front(), colon_ok)) return false;
  for (char c : name)
    if (!name_char(c, colon_ok)) return false;
  return true;
}

std::string_view type_text(MetricType type) {
  switch (type) {
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kCounter:
      return "counter";
    case MetricType::kUntyped:
      return "untyped";
  }
  return "untyped";
}

// HELP escapes backslash and newline; label values also the double quote.
void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

template <class T>
std::string integer_text(T v) {
  std::array<char, 24> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  (void)ec;  // 24 characters hold any 64-bit integer
  return std::string(buf.data(), end);
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  return valid_name(name, true);
}

bool valid_label_name(std::string_view name) {
  return valid_name(name, false) && !name.starts_with("__");
}

SampleValue::SampleValue(double v) {
  if (std::isnan(v)) {
    text_ = "NaN";
  } else if (std::isinf(v)) {
    text_ = v > 0 ? "+Inf" : "-Inf";
  } else if (std::trunc(v) == v && std::fabs(v) <= 9007199254740992.0) {
    // Up to 2^53 every integer is a double: print its digits, which the
    // shortest form would turn into 1.7e+09 for a timestamp.
    text_ = format_signed(static_cast<std::int64_t>(v));
  } else {
    std::array<char, 32> buf{};
    const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
    (void)ec;  // the shortest form of a double is at most 24 characters
    text_.assign(buf.data(), end);
  }
}

std::string SampleValue::format_signed(std::int64_t v) {
  return integer_text(v);
}

std::string SampleValue::format_unsigned(std::uint64_t v) {
  return integer_text(v);
}

bool MetricsPage::drop(std::string problem) {
  problems_.push_back(std::move(problem));
  return false;
}

bool MetricsPage::family(std::string_view name, MetricType type, std::string_view help) {
  // Its samples go with it: dropped too, without a problem line each.
  current_ = std::string(name);
  current_dropped_ = true;
  if (!valid_metric_name(name))
    return drop("metric family \"" + std::string(name) + "\": not a valid metric name");
  if (type == MetricType::kCounter && !name.ends_with("_total"))
    return drop("counter \"" + std::string(name) + "\": a counter's name ends in _total");
  if (type != MetricType::kCounter && name.ends_with("_total"))
    return drop("metric family \"" + std::string(name) +
                "\": only a counter's name ends in _total");
  if (!declared_.insert(std::string(name)).second)
    return drop("metric family \"" + std::string(name) + "\": declared twice");
  current_dropped_ = false;
  if (!help.empty()) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    append_escaped(text_, help, false);
    text_ += '\n';
  }
  text_ += "# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type_text(type);
  text_ += '\n';
  return true;
}

bool MetricsPage::sample(std::string_view name, std::initializer_list<Label> labels,
                         SampleValue value) {
  return sample(name, std::span<const Label>(labels.begin(), labels.size()), value);
}

bool MetricsPage::sample(std::string_view name, std::span<const Label> labels, SampleValue value) {
  if (name != current_) {
    const std::string last = current_.empty() ? "none" : "\"" + current_ + "\"";
    return drop("sample \"" + std::string(name) + "\": not in the family declared last (" + last +
                "); declare its family, then its samples");
  }
  if (current_dropped_) return false;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!valid_label_name(labels[i].name)) {
      return drop("sample \"" + std::string(name) + "\": label \"" + std::string(labels[i].name) +
                  "\" is not a valid label name");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (labels[j].name == labels[i].name) {
        return drop("sample \"" + std::string(name) + "\": label \"" + std::string(labels[i].name) +
                    "\" given twice");
      }
    }
  }
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += labels[i].name;
      text_ += "=\"";
      append_escaped(text_, labels[i].value, true);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += value.text();
  text_ += '\n';
  return true;
}

}  // namespace tetherd
