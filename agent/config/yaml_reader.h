#pragma once
// Walks a yaml-cpp tree for the configuration loader, collecting every
// problem with its position instead of stopping at the first one.

#include <charconv>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "agent/config/config_loader.h"
#include "agent/core/duration.h"
#include "firewall/cidr.h"

namespace tetherd {

std::string quoted(std::string_view s);

// YAML allows no C0 control character but tab, LF and CR (YAML 1.2,
// c-printable), and yaml-cpp 0.7 loops for ever on some inputs with a NUL
// byte (found by the config fuzz target: "\0,\0\0"). So text is checked
// before yaml-cpp sees it. Returns the 1-based line and column of the first
// such character.
std::optional<std::pair<int, int>> find_non_yaml_character(std::string_view text);

// Levenshtein distance, case-insensitive: for "did you mean" hints.
std::size_t edit_distance(std::string_view a, std::string_view b);

// Walks the YAML tree, collecting every problem with its position.
class YamlReader {
 public:
  explicit YamlReader(ConfigErrors& errors) : errors_(errors) {}

  void error(const YAML::Mark& mark, const std::string& path, const std::string& message) {
    ConfigError e;
    if (!mark.is_null()) {
      e.line = mark.line + 1;
      e.column = mark.column + 1;
    }
    e.message = path.empty() ? message : path + ": " + message;
    errors_.push_back(std::move(e));
  }

  // The fields of a mapping, keyed by name. Unknown and duplicate keys are
  // reported; a typo must not silently drop a setting.
  using Fields = std::map<std::string, YAML::Node, std::less<>>;
  Fields fields(const YAML::Node& node, const std::string& path,
                std::initializer_list<std::string_view> known) {
    Fields out;
    if (node.IsNull()) return out;
    if (!node.IsMap()) {
      error(node.Mark(), path, "expected a mapping of keys");
      return out;
    }
    for (const auto& entry : node) {
      // Copies: yaml-cpp's iterator yields a temporary pair of handles.
      const YAML::Node key = entry.first;
      const YAML::Node value = entry.second;
      if (!key.IsScalar()) {
        error(key.Mark(), path, "keys must be plain strings");
        continue;
      }
      const std::string& name = key.Scalar();
      const std::string where = path.empty() ? name : path + "." + name;
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string message = "unknown key " + quoted(name);
        std::string_view best;
        std::size_t best_distance = 3;
        for (std::string_view k : known) {
          const std::size_t d = edit_distance(name, k);
          if (d < best_distance) best = k, best_distance = d;
        }
        if (!best.empty()) message += "; did you mean " + quoted(best) + "?";
        error(key.Mark(), path, message);
        continue;
      }
      if (out.contains(name)) {
        error(key.Mark(), path, "duplicate key " + quoted(name));
        continue;
      }
      out.emplace(name, value);
      marks_[where] = key.Mark();
    }
    return out;
  }

  // Position to blame for a value: the value itself, or its key when the
  // value is empty (yaml-cpp places an empty value at the next token).
  YAML::Mark mark_of(const YAML::Node& node, const std::string& path) const {
    if (!node.Mark().is_null() && !node.IsNull()) return node.Mark();
    const auto it = marks_.find(path);
    return it == marks_.end() ? YAML::Mark::null_mark() : it->second;
  }

  std::optional<std::string> scalar(const YAML::Node& node, const std::string& path,
                                    std::string_view expected) {
    if (!node.IsScalar()) {
      error(mark_of(node, path), path, "expected " + std::string(expected));
      return std::nullopt;
    }
    return node.Scalar();
  }

  void string(const Fields& f, std::string_view key, const std::string& path, std::string& out) {
    if (const YAML::Node* n = find(f, key)) {
      if (auto s = scalar(*n, join(path, key), "a string")) out = *s;
    }
  }

  void absolute_path(const Fields& f, std::string_view key, const std::string& path,
                     std::string& out) {
    if (const YAML::Node* n = find(f, key)) {
      const std::string where = join(path, key);
      if (auto s = scalar(*n, where, "an absolute path")) {
        if (s->empty() || s->front() != '/') {
          error(mark_of(*n, where), where, "expected an absolute path, got " + quoted(*s));
        } else {
          out = *s;
        }
      }
    }
  }

  // A duration already read (duration()) that must be whole seconds.
  void whole_seconds(const Fields& f, std::string_view key, const std::string& path,
                     Duration value) {
    const YAML::Node* n = find(f, key);
    if (n == nullptr || value % std::chrono::seconds(1) == Duration::zero()) return;
    const std::string where = join(path, key);
    error(mark_of(*n, where), where, "must be a whole number of seconds");
  }

  void duration(const Fields& f, std::string_view key, const std::string& path, Duration min,
                Duration max, Duration& out) {
    const YAML::Node* n = find(f, key);
    if (n == nullptr) return;
    const std::string where = join(path, key);
    auto s = scalar(*n, where, "a duration such as 10s or 1h30m");
    if (!s) return;
    auto d = parse_duration(*s);
    if (!d) {
      error(mark_of(*n, where), where, d.error().message);
    } else if (*d < min || *d > max) {
      error(mark_of(*n, where), where,
            "must be between " + format_duration(min) + " and " + format_duration(max) + ", got " +
                *s);
    } else {
      out = *d;
    }
  }

  std::optional<std::uint64_t> unsigned_value(const YAML::Node& node, const std::string& path,
                                              std::uint64_t min, std::uint64_t max,
                                              std::string_view what) {
    auto s = scalar(node, path, std::string(what));
    if (!s) return std::nullopt;
    std::uint64_t v = 0;
    const auto [end, err] = std::from_chars(s->data(), s->data() + s->size(), v);
    if (s->empty() || err != std::errc() || end != s->data() + s->size() || v < min || v > max) {
      error(mark_of(node, path), path,
            "expected " + std::string(what) + " (" + std::to_string(min) + "-" +
                std::to_string(max) + "), got " + quoted(*s));
      return std::nullopt;
    }
    return v;
  }

  template <class E>
  void enumeration(const Fields& f, std::string_view key, const std::string& path,
                   std::initializer_list<std::pair<std::string_view, E>> choices, E& out) {
    const YAML::Node* n = find(f, key);
    if (n == nullptr) return;
    const std::string where = join(path, key);
    std::string names;
    for (const auto& [name, value] : choices)
      names += (names.empty() ? "" : " | ") + std::string(name);
    auto s = scalar(*n, where, "one of " + names);
    if (!s) return;
    for (const auto& [name, value] : choices) {
      if (*s == name) {
        out = value;
        return;
      }
    }
    error(mark_of(*n, where), where, "expected one of " + names + ", got " + quoted(*s));
  }

  void cidrs(const Fields& f, std::string_view key, const std::string& path,
             std::vector<firewall::Cidr>& out) {
    const YAML::Node* n = find(f, key);
    if (n == nullptr) return;
    const std::string where = join(path, key);
    if (n->IsNull()) {
      out.clear();
      return;
    }
    if (!n->IsSequence()) {
      error(mark_of(*n, where), where, "expected a list of CIDRs, e.g. [203.0.113.0/24]");
      return;
    }
    std::vector<firewall::Cidr> parsed;
    for (std::size_t i = 0; i < n->size(); ++i) {
      const YAML::Node item = (*n)[i];
      const std::string item_path = where + "[" + std::to_string(i) + "]";
      auto s = scalar(item, item_path, "a CIDR such as 203.0.113.0/24");
      if (!s) continue;
      auto c = firewall::parse_cidr(*s);
      if (!c) {
        error(mark_of(item, item_path), item_path, c.error().message);
      } else {
        parsed.push_back(*c);
      }
    }
    out = std::move(parsed);
  }

  static const YAML::Node* find(const Fields& f, std::string_view key) {
    const auto it = f.find(key);
    return it == f.end() ? nullptr : &it->second;
  }
  static std::string join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

 private:
  ConfigErrors& errors_;
  std::map<std::string, YAML::Mark, std::less<>> marks_;
};

}  // namespace tetherd
