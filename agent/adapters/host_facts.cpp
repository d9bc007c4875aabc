#include "agent/adapters/host_facts.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

namespace tetherd {

static_assert(kClockStateError == TIME_ERROR);
static_assert(kClockStatusUnsync == STA_UNSYNC);

namespace {

// /proc/meminfo is about 1.5 KiB; more is not meminfo, and a read past this
// bound would only cost time.
constexpr std::size_t kMaxMeminfoBytes = 16 << 10;

std::string read_meminfo() {
  const int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text(kMaxMeminfoBytes, '\0');
  std::size_t used = 0;
  while (used < text.size()) {
    const ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  ::close(fd);
  text.resize(used);
  return text;
}

// "MemTotal:       16318480 kB" -> bytes.
std::optional<std::uint64_t> meminfo_value(std::string_view text, std::string_view key) {
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (!line.starts_with(key) || line.size() <= key.size() || line[key.size()] != ':') continue;
    line.remove_prefix(key.size() + 1);
    while (!line.empty() && line.front() == ' ')
      line.remove_prefix(1);
    std::uint64_t value = 0;
    const auto [rest, ec] = std::from_chars(line.data(), line.data() + line.size(), value);
    if (ec != std::errc{}) return std::nullopt;
    const std::string_view unit(rest, static_cast<std::size_t>(line.data() + line.size() - rest));
    if (unit != " kB") return std::nullopt;
    if (value > UINT64_MAX / 1024) return std::nullopt;
    return value * 1024;
  }
  return std::nullopt;
}

DiskSpace disk_space(const std::string& path) {
  DiskSpace disk;
  disk.path = path;
  struct statvfs fs {};
  if (::statvfs(path.c_str(), &fs) != 0) {
    if (errno != ENOENT) disk.error = std::strerror(errno);
    return disk;
  }
  disk.present = true;
  disk.available_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  disk.total_bytes = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
  return disk;
}

ClockDiscipline clock_discipline() {
  ClockDiscipline clock;
  struct timex tx {};
  tx.modes = 0;  // read only: needs no CAP_SYS_TIME
  const int state = ::adjtimex(&tx);
  if (state < 0) {
    clock.error = std::string("adjtimex: ") + std::strerror(errno);
    return clock;
  }
  clock.state = state;
  clock.status = tx.status;
  clock.max_error_us = tx.maxerror;
  clock.est_error_us = tx.esterror;
  return clock;
}

}  // namespace

MemoryInfo parse_meminfo(std::string_view text) {
  return MemoryInfo{meminfo_value(text, "MemAvailable"), meminfo_value(text, "MemTotal")};
}

HostFacts read_host_facts(const std::vector<std::string>& disk_paths) {
  HostFacts facts;
  std::array<double, 3> load{};
  if (::getloadavg(load.data(), 3) == 3) facts.load = LoadAverage{load[0], load[1], load[2]};
  const MemoryInfo memory = parse_meminfo(read_meminfo());
  facts.memory_available_bytes = memory.available_bytes;
  facts.memory_total_bytes = memory.total_bytes;
  facts.disks.reserve(disk_paths.size());
  for (const std::string& path : disk_paths)
    facts.disks.push_back(disk_space(path));
  timespec boot{};
  ::clock_gettime(CLOCK_BOOTTIME, &boot);
  facts.uptime = std::chrono::seconds(boot.tv_sec) + std::chrono::nanoseconds(boot.tv_nsec);
  facts.clock = clock_discipline();
  return facts;
}

}  // namespace tetherd
