#include "agent/adapters/process_stats.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <limits>
#include <string_view>
#include <unistd.h>
#include <vector>

namespace tetherd {
namespace {

// procfs files report size 0, so read to the end, up to a bound: /proc/stat
// grows with CPUs and interrupts, a few KiB on an edge box.
Result<std::string> read_bounded(const std::string& path, std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": " + std::strerror(errno));
  std::string text;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return make_error(path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    text.append(chunk, static_cast<std::size_t>(n));
    if (text.size() > max_bytes) {
      ::close(fd);
      return make_error(path + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  ::close(fd);
  return Result<std::string>(boost::system::in_place_value, std::move(text));
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
      ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t' && s[i] != '\n')
      ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
    if (i < s.size() && s[i] == '\n') break;
  }
  return out;
}

bool to_u64(std::string_view s, std::uint64_t& v) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

// The line of `text` that starts with `key`, without the key.
std::string_view line_after(std::string_view text, std::string_view key) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    if (line.starts_with(key)) return line.substr(key.size());
    pos = end + 1;
  }
  return {};
}

Result<std::uint64_t> count_entries(const std::string& dir, std::uint64_t max_entries) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return make_error(dir + ": " + std::strerror(errno));
  std::uint64_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (++n >= max_entries) break;
  }
  ::closedir(d);
  return n;
}

}  // namespace

Result<ProcessStats> read_process_stats(const std::string& proc) {
  ProcessStats s;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const auto page_size = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));

  const std::string stat_path = proc + "/self/stat";
  auto stat = read_bounded(stat_path, 4096);
  if (!stat) return stat.error();
  // The command name, field 2, is in parentheses and may hold spaces and
  // ')' itself: the fields that follow start after the last ')'.
  const auto close_paren = stat->rfind(')');
  if (close_paren == std::string::npos) return make_error(stat_path + ": no command name");
  const auto f = words(std::string_view(*stat).substr(close_paren + 1));
  // f[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
  std::uint64_t utime = 0, stime = 0, starttime = 0, vsize = 0, rss = 0;
  if (f.size() < 22 || !to_u64(f[11], utime) || !to_u64(f[12], stime) ||
      !to_u64(f[19], starttime) || !to_u64(f[20], vsize) || !to_u64(f[21], rss)) {
    return make_error(stat_path + ": unexpected format");
  }
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  s.virtual_bytes = vsize;
  s.resident_bytes = rss * page_size;

  const std::string boot_path = proc + "/stat";
  auto boot = read_bounded(boot_path, 1 << 20);
  if (!boot) return boot.error();
  const auto btime_words = words(line_after(*boot, "btime "));
  std::uint64_t btime = 0;
  if (btime_words.size() != 1 || !to_u64(btime_words[0], btime))
    return make_error(boot_path + ": no btime line");
  s.start_time_seconds = static_cast<double>(btime) + static_cast<double>(starttime) / ticks;

  const std::string limits_path = proc + "/self/limits";
  auto limits = read_bounded(limits_path, 8192);
  if (!limits) return limits.error();
  const auto nofile = words(line_after(*limits, "Max open files "));
  if (nofile.empty()) return make_error(limits_path + ": no \"Max open files\" line");
  if (nofile[0] == "unlimited") {
    s.max_fds = std::numeric_limits<std::uint64_t>::max();
  } else if (!to_u64(nofile[0], s.max_fds)) {
    return make_error(limits_path + ": unexpected \"Max open files\" line");
  }

  // Bounded by the limit just read; the directory's own descriptor is
  // counted too, as client_golang counts it.
  auto fds = count_entries(proc + "/self/fd", std::min<std::uint64_t>(s.max_fds, 1 << 24) + 1);
  if (!fds) return fds.error();
  s.open_fds = *fds;
  return s;
}

void append_process_metrics(MetricsPage& page, const ProcessStats& s) {
  page.family("process_cpu_seconds_total", MetricType::kCounter,
              "Total user and system CPU time spent in seconds.");
  page.sample("process_cpu_seconds_total", {}, s.cpu_seconds);
  page.family("process_max_fds", MetricType::kGauge, "Maximum number of open file descriptors.");
  page.sample("process_max_fds", {}, s.max_fds);
  page.family("process_open_fds", MetricType::kGauge, "Number of open file descriptors.");
  page.sample("process_open_fds", {}, s.open_fds);
  page.family("process_resident_memory_bytes", MetricType::kGauge,
              "Resident memory size in bytes.");
  page.sample("process_resident_memory_bytes", {}, s.resident_bytes);
  page.family("process_start_time_seconds", MetricType::kGauge,
              "Start time of the process since unix epoch in seconds.");
  page.sample("process_start_time_seconds", {}, s.start_time_seconds);
  page.family("process_virtual_memory_bytes", MetricType::kGauge, "Virtual memory size in bytes.");
  page.sample("process_virtual_memory_bytes", {}, s.virtual_bytes);
}

}  // namespace tetherd
