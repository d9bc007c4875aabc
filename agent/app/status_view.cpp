#include "agent/app/status_view.h"

#include <algorithm>
#include <cstdio>
#include <limits>
#include <vector>

#include "agent/core/kube_time.h"

namespace tetherd {

namespace {

// Text from the document goes to a terminal: control characters (C0, DEL
// and C1) would let it move the cursor or recolour the screen, and a
// newline would break the table. Each becomes a space.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool c1 = c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) < 0xa0 &&
                    static_cast<unsigned char>(s[i + 1]) >= 0x80;
    if (c < 0x20 || c == 0x7f || c1) {
      out += ' ';
      i += c1 ? 1 : 0;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool starts_character(char c) {
  return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
}

// Columns as code points: the document's strings are valid UTF-8 (the JSON
// parser checks), and wide characters are rare enough in these fields.
std::size_t width(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(s.begin(), s.end(), starts_character));
}

// Printable, at most `max` columns, a longer text ending in an ellipsis.
std::string cell(std::string_view s, std::size_t max) {
  std::string text = printable(s);
  if (width(text) <= max) return text;
  std::size_t kept = 0, end = 0;
  for (; end < text.size(); ++end) {
    if (starts_character(text[end]) && kept++ == max - 1) break;
  }
  text.resize(end);
  return text + "\u2026";
}

constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kReset = "\x1b[0m";
constexpr std::size_t kCellWidth = 40;  // a name, a reason, a path
constexpr std::size_t kLineWidth = 120;
constexpr std::size_t kMinLastColumn = 40;
constexpr std::size_t kHeaderKeyWidth = 15;
constexpr auto kSoonExpiring = std::chrono::hours(720);  // linkerd.rotateBefore's default

struct Cell {
  std::string text;
  const char* colour = nullptr;
};
using Row = std::vector<Cell>;

// kubectl's look: columns three spaces apart; the last one, free text, is
// cut so that a line stays within kLineWidth as far as the others allow.
std::string table(const std::vector<Row>& rows, bool colour) {
  const std::size_t columns = rows.front().size();
  std::vector<std::size_t> widths(columns, 0);
  std::size_t prefix = 0;
  for (std::size_t i = 0; i + 1 < columns; ++i) {
    for (const Row& row : rows)
      widths[i] = std::max(widths[i], width(row[i].text));
    prefix += widths[i] + 3;
  }
  const std::size_t last_max = std::max(kMinLastColumn, kLineWidth - std::min(prefix, kLineWidth));
  std::string out;
  for (const Row& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < columns; ++i) {
      const bool last = i + 1 == columns;
      const std::string text = last ? cell(row[i].text, last_max) : row[i].text;
      line += colour && row[i].colour ? row[i].colour + text + kReset : text;
      if (!last) line.append(widths[i] + 3 - width(text), ' ');
    }
    while (!line.empty() && line.back() == ' ')
      line.pop_back();
    out += line + "\n";
  }
  return out;
}

const char* status_colour(ConditionStatus s) {
  switch (s) {
    case ConditionStatus::kTrue:
      return kGreen;
    case ConditionStatus::kFalse:
      return kRed;
    default:
      return kYellow;
  }
}

std::string or_dash(std::string_view s) {
  return s.empty() ? "-" : cell(s, kCellWidth);
}

std::string conditions_table(const StatusDocument& s, WallTime now, bool colour) {
  if (s.conditions.empty()) return "no conditions reported yet\n";
  std::vector<Row> rows{{{"CONDITION"}, {"STATUS"}, {"REASON"}, {"AGE"}, {"MESSAGE"}}};
  for (const Condition& c : s.conditions) {
    rows.push_back({{or_dash(c.type)},
                    {std::string(to_string(c.status)), status_colour(c.status)},
                    {or_dash(c.reason)},
                    {human_duration(now - c.last_transition)},
                    {printable(c.message)}});
  }
  return table(rows, colour);
}

Cell expiry(const CertificateStatus& c, WallTime now) {
  if (!c.not_after) return {"-"};
  const Duration left = *c.not_after - now;
  if (left <= Duration::zero()) return {"expired " + human_duration(-left) + " ago", kRed};
  return {"in " + human_duration(left), left < kSoonExpiring ? kYellow : nullptr};
}

std::string certificates_table(const StatusDocument& s, WallTime now, bool colour) {
  std::vector<Row> rows{{{"CERTIFICATE"}, {"ROLE"}, {"EXPIRES"}, {"NOT AFTER"}}};
  for (const CertificateStatus& c : s.certificates) {
    rows.push_back({{or_dash(c.name)},
                    {or_dash(c.role)},
                    expiry(c, now),
                    {c.not_after ? format_kube_time(*c.not_after) : "-"}});
  }
  return table(rows, colour);
}

std::string bytes(std::uint64_t n) {
  char text[48];
  if (n >= (1ULL << 30)) {
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(n) / (1ULL << 30));
  } else if (n >= (1ULL << 20)) {
    std::snprintf(text, sizeof text, "%llu MiB", static_cast<unsigned long long>(n >> 20));
  } else {
    std::snprintf(text, sizeof text, "%llu KiB", static_cast<unsigned long long>(n >> 10));
  }
  return text;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts)
    out += (out.empty() ? "" : ", ") + p;
  return out.empty() ? out : out + "\n";
}

// Two lines: how loaded and how long up; then the disks.
std::string node_lines(const NodeFacts& n, WallTime now) {
  std::vector<std::string> facts;
  if (n.load1 || n.load5 || n.load15) {
    facts.push_back("load " + cell(n.load1.value_or("-"), kCellWidth) + " " +
                    cell(n.load5.value_or("-"), kCellWidth) + " " +
                    cell(n.load15.value_or("-"), kCellWidth));
  }
  if (n.memory_available_bytes && n.memory_total_bytes) {
    facts.push_back("memory " + bytes(*n.memory_available_bytes) + " free of " +
                    bytes(*n.memory_total_bytes));
  } else if (n.memory_available_bytes) {
    facts.push_back("memory " + bytes(*n.memory_available_bytes) + " free");
  }
  if (n.uptime_seconds) {
    const auto up = std::chrono::seconds(
        std::min<std::uint64_t>(*n.uptime_seconds, std::numeric_limits<std::int32_t>::max()));
    facts.push_back("up " + human_duration(up));
  }
  if (n.last_resume) facts.push_back("resumed " + human_duration(now - *n.last_resume) + " ago");
  std::vector<std::string> disks;
  for (const DiskStatus& d : n.disks) {
    disks.push_back((disks.empty() ? "disk " : "") + or_dash(d.path) + " " +
                    bytes(d.available_bytes) + " free of " + bytes(d.total_bytes));
  }
  return joined(facts) + joined(disks);
}

}  // namespace

int status_exit_code(const StatusDocument& status) {
  for (const Condition& c : status.conditions) {
    if (c.type == condition_type::kReady) return c.status == ConditionStatus::kTrue ? 0 : 1;
  }
  return 1;
}

std::string render_status(const StatusDocument& s, WallTime now, bool colour) {
  std::string out;
  const auto line = [&out](std::string_view key, const std::string& value) {
    out += std::string(key);
    out.append(kHeaderKeyWidth - key.size(), ' ');
    out += value + "\n";
  };
  line("node", cell(s.node_name, 2 * kCellWidth));
  std::string version = s.agent_version.empty() ? "version unknown" : cell(s.agent_version, 64);
  if (s.observed_generation)
    version += ", observed generation " + std::to_string(*s.observed_generation);
  line("tetherd", version);
  if (!s.control_plane) {
    line("control plane", "standalone");
  } else {
    const auto& cp = *s.control_plane;
    line("control plane", cell(cp.summary.empty() ? cp.server : cp.summary, kLineWidth));
  }
  if (s.tunnel) {
    const auto& t = *s.tunnel;
    std::string text = std::to_string(t.servers_held.value_or(0)) + " of " +
                       std::to_string(t.servers_wanted.value_or(1)) + " konnectivity server" +
                       (t.servers_wanted.value_or(1) == 1 ? "" : "s") + " held";
    if (!t.server.empty()) text += " at " + cell(t.server, kCellWidth * 2);
    if (t.connections) text += "; " + std::to_string(*t.connections) + " connections open";
    if (t.dials_served)
      text += ", " + std::to_string(*t.dials_served) + " dials served, " +
              std::to_string(t.dials_refused.value_or(0)) + " refused, " +
              std::to_string(t.dials_failed.value_or(0)) + " failed";
    line("tunnel", text);
    if (!t.problem.empty()) line("", cell(t.problem, kLineWidth));
  }
  if (s.firewall) {
    const auto& fw = *s.firewall;
    std::string text = fw.backend.empty() ? "backend unknown" : cell(fw.backend, kCellWidth);
    if (fw.sources)
      text += ", " + std::to_string(*fw.sources) + (*fw.sources == 1 ? " source" : " sources");
    line("firewall", text);
    if (const auto& r = fw.refused_recently) {
      std::string ports;
      for (const auto p : r->ports)
        ports += (ports.empty() ? "" : ", ") + std::to_string(p);
      line("", cell(r->source, kCellWidth) + " refused on " + ports +
                   (r->since ? " for " + human_duration(now - *r->since) : std::string()) +
                   " while the cloud does not connect there: has the cloud's address changed? "
                   "(tetherctl firewall refused)");
    }
  }
  if (s.linkerd && s.linkerd->meshed) {
    const auto& m = *s.linkerd;
    std::string text = std::to_string(*m.meshed) + " meshed proxies";
    if (m.expired && *m.expired > 0) text += ", " + std::to_string(*m.expired) + " expired";
    if (m.unreadable && *m.unreadable > 0)
      text += ", " + std::to_string(*m.unreadable) + " unreadable";
    if (m.stale_bundle && *m.stale_bundle > 0)
      text += ", " + std::to_string(*m.stale_bundle) + " on an older trust bundle";
    line("mesh", text);
  }
  out += "\n" + conditions_table(s, now, colour);
  if (!s.certificates.empty()) out += "\n" + certificates_table(s, now, colour);
  if (s.node) {
    const std::string facts = node_lines(*s.node, now);
    if (!facts.empty()) out += "\n" + facts;
  }
  return out;
}

std::string human_duration(Duration d) {
  using namespace std::chrono;
  const auto seconds = duration_cast<std::chrono::seconds>(d).count();
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return std::to_string(seconds) + "s";
  const auto minutes = seconds / 60;
  const auto n = [](long long v, const char* unit) { return std::to_string(v) + unit; };
  if (minutes < 10) return n(minutes, "m") + (seconds % 60 != 0 ? n(seconds % 60, "s") : "");
  if (minutes < 180) return n(minutes, "m");
  const auto hours = minutes / 60;
  if (hours < 8) return n(hours, "h") + (minutes % 60 != 0 ? n(minutes % 60, "m") : "");
  if (hours < 48) return n(hours, "h");
  const auto days = hours / 24;
  if (hours < 24 * 8) return n(days, "d") + (hours % 24 != 0 ? n(hours % 24, "h") : "");
  if (hours < 24 * 365 * 2) return n(days, "d");
  if (hours < 24 * 365 * 8) return n(days / 365, "y") + (days % 365 != 0 ? n(days % 365, "d") : "");
  return n(days / 365, "y");
}

}  // namespace tetherd
