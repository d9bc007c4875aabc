#include "firewall/ufw_rules.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <iterator>

namespace tetherd::firewall {
namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const auto at = s.find(sep);
    if (at != 0) out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

// "4143,4191,6443" or "6443:6450" into ports; false if it is neither.
bool parse_ports(std::string_view text, std::vector<std::uint16_t>& out,
                 std::vector<std::pair<unsigned, unsigned>>* ranges = nullptr) {
  if (text.empty() || text.front() == ',' || text.back() == ',' ||
      text.find(",,") != std::string_view::npos) {
    return false;
  }
  for (std::string_view item : split(text, ',')) {
    unsigned lo = 0, hi = 0;
    const auto colon = item.find(':');
    const std::string_view a = item.substr(0, colon);
    const std::string_view b = colon == std::string_view::npos ? a : item.substr(colon + 1);
    if (std::from_chars(a.data(), a.data() + a.size(), lo).ptr != a.data() + a.size() ||
        std::from_chars(b.data(), b.data() + b.size(), hi).ptr != b.data() + b.size() ||
        a.empty() || b.empty() || lo > 65535 || hi > 65535 || lo > hi) {
      return false;
    }
    if (lo == hi) {
      out.push_back(static_cast<std::uint16_t>(lo));
    } else if (ranges) {
      ranges->emplace_back(lo, hi);
    } else {
      return false;
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return true;
}

std::string join_ports(const std::vector<std::uint16_t>& ports) {
  std::string s;
  for (auto p : ports)
    s += (s.empty() ? "" : ",") + std::to_string(p);
  return s;
}

bool touches(const std::vector<std::uint16_t>& listed,
             const std::vector<std::pair<unsigned, unsigned>>& ranges,
             const std::vector<std::uint16_t>& managed) {
  for (auto m : managed) {
    if (std::binary_search(listed.begin(), listed.end(), m)) return true;
    for (auto [lo, hi] : ranges)
      if (m >= lo && m <= hi) return true;
  }
  return false;
}

}  // namespace

Result<UfwAdded> parse_ufw_added(std::string_view text, const std::vector<std::uint16_t>& managed) {
  if (!text.starts_with("Added user rules")) {
    return make_error("not the output of `ufw show added`: " +
                      std::string(text.substr(0, std::min<std::size_t>(text.find('\n'), 80))));
  }
  UfwAdded added;
  for (std::string_view line : split(text, '\n')) {
    if (!line.starts_with("ufw ")) continue;
    // The comment, quoted, ends the line and may hold spaces.
    std::string_view comment;
    if (auto at = line.find(" comment '"); at != std::string_view::npos && line.ends_with("'")) {
      comment = line.substr(at + 10, line.size() - at - 11);
      line = line.substr(0, at);
    }
    const auto words = split(line, ' ');
    if (words.size() < 2 || words[1] != "allow") continue;

    // ufw allow from SRC to any port PORTS proto tcp
    if (words.size() == 10 && words[2] == "from" && words[4] == "to" && words[5] == "any" &&
        words[6] == "port" && words[8] == "proto" && words[9] == "tcp") {
      auto source = parse_cidr(words[3]);
      UfwRule rule;
      if (source && parse_ports(words[7], rule.ports)) {
        rule.source = *source;
        (comment == kUfwComment ? added.ours : added.others).push_back(std::move(rule));
        continue;
      }
    }
    // Rules with no source that allow a managed port: `ufw allow 6443/tcp`,
    // `ufw allow 6443`, `ufw allow to any port 6443 proto tcp`.
    if (std::find(words.begin(), words.end(), "from") != words.end()) continue;
    std::vector<std::uint16_t> listed;
    std::vector<std::pair<unsigned, unsigned>> ranges;
    std::string_view port_word;
    if (words.size() == 3) {
      port_word = words[2].substr(0, words[2].find('/'));
      if (words[2].ends_with("/udp")) continue;
    } else if (auto it = std::find(words.begin(), words.end(), "port");
               it != words.end() && it + 1 != words.end()) {
      port_word = *(it + 1);
      if (std::find(words.begin(), words.end(), "udp") != words.end()) continue;
    }
    if (!port_word.empty() && parse_ports(port_word, listed, &ranges) &&
        touches(listed, ranges, managed)) {
      added.open_to_anyone.emplace_back(line);
    }
  }
  std::sort(added.ours.begin(), added.ours.end());
  std::sort(added.others.begin(), added.others.end());
  return added;
}

std::vector<UfwRule> ufw_rules_for(const Allowlist& allowlist) {
  std::vector<UfwRule> rules;
  if (allowlist.closed_ports.empty()) {
    for (const Cidr& c : allowlist.sources.cidrs())
      rules.push_back({c, allowlist.ports});
  } else {
    // The inner sources on every port; the rest on the ports left open.
    for (const Cidr& c : allowlist.inner.cidrs())
      rules.push_back({c, allowlist.ports});
    std::vector<std::uint16_t> open;
    std::set_difference(allowlist.ports.begin(), allowlist.ports.end(),
                        allowlist.closed_ports.begin(), allowlist.closed_ports.end(),
                        std::back_inserter(open));
    AddressSet rest = allowlist.sources;
    rest.remove(allowlist.inner);
    if (!open.empty())
      for (const Cidr& c : rest.cidrs())
        rules.push_back({c, open});
  }
  std::sort(rules.begin(), rules.end());
  return rules;
}

std::vector<std::string> ufw_add_args(const UfwRule& r) {
  return {"allow",
          "proto",
          "tcp",
          "from",
          r.source.to_string(),
          "to",
          "any",
          "port",
          join_ports(r.ports),
          "comment",
          std::string(kUfwComment)};
}

std::vector<std::string> ufw_delete_args(const UfwRule& r) {
  return {"delete", "allow",
          "proto",  "tcp",
          "from",   r.source.to_string(),
          "to",     "any",
          "port",   join_ports(r.ports)};
}

bool ufw_ipv6_enabled(std::string_view defaults) {
  bool on = false;  // ufw: 'ipv6' in self.defaults and self.defaults['ipv6'] == 'yes'
  while (!defaults.empty()) {
    const std::size_t end = std::min(defaults.find('\n'), defaults.size());
    std::string_view line = defaults.substr(0, end);
    defaults.remove_prefix(std::min(end + 1, defaults.size()));
    // ufw's own reading: a line that starts KEY=value (no indent, no
    // comment, the value a word, perhaps quoted);
    // the value up to any further '=', quotes and case ignored, the last
    // line for a key winning.
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos || eq != 4) continue;
    std::string key(line.substr(0, eq));
    for (auto& c : key)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (key != "ipv6") continue;
    std::string_view value = line.substr(eq + 1);
    value = value.substr(0, value.find('='));
    const std::string_view word = value.starts_with('"') ? value.substr(1) : value;
    const auto is_word = [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    };
    if (word.empty() || !is_word(word.front())) continue;  // ufw skips the line
    while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back())))
      value.remove_suffix(1);
    while (!value.empty() && (value.front() == '"' || value.front() == '\''))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == '"' || value.back() == '\''))
      value.remove_suffix(1);
    std::string lower(value);
    for (auto& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    on = lower == "yes";
  }
  return on;
}

}  // namespace tetherd::firewall
