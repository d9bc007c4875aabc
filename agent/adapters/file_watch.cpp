#include "agent/adapters/file_watch.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/inotify.h>

namespace tetherd {

namespace {

// What changes a file as a reader sees it: written (in place, or closed
// after writing), replaced by a rename, created, removed, its mode changed
// (a key made private). And the watched directory itself going away.
constexpr std::uint32_t kMask = IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM |
                                IN_CREATE | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |
                                IN_ONLYDIR;

}  // namespace

FileWatch::FileWatch(boost::asio::io_context& io, const Clock& clock)
    : io_(io), clock_(clock), buffer_(64 << 10), timer_(io, clock) {}

FileWatch::~FileWatch() {
  stop();
}

Result<void> FileWatch::follow(std::vector<std::string> paths, std::function<void()> changed,
                               std::vector<std::string> settled) {
  if (!fd_) {
    const int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) return make_error(std::string("inotify: ") + std::strerror(errno));
    fd_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, fd);
    stopped_ = false;
    read_next();
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  paths_ = std::move(paths);
  settled_ = std::set<std::string>(settled.begin(), settled.end());
  std::erase_if(writing_, [this](const std::string& path) { return !settled_.contains(path); });
  changed_ = std::move(changed);
  arm();
  return {};
}

void FileWatch::stop() {
  stopped_ = true;
  timer_.cancel();
  if (fd_) {
    boost::system::error_code ignored;
    fd_->close(ignored);
    fd_.reset();
  }
  dirs_.clear();
  names_.clear();
}

std::vector<std::string> FileWatch::watched() const {
  std::vector<std::string> out;
  for (const auto& [dir, names] : names_)
    out.push_back(dir);
  return out;
}

// Watches, for each path, its directory, or the nearest ancestor that
// exists, with the name that leads on to it. Done again after every event
// that may change which directories exist: the set is small.
void FileWatch::arm() {
  if (!fd_) return;
  const int fd = fd_->native_handle();
  std::map<std::string, std::set<std::string>> want;
  for (const std::string& path : paths_) {
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::string name = std::filesystem::path(path).filename();
    std::error_code ec;
    while (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      name = dir.filename();
      if (dir == dir.parent_path()) break;
      dir = dir.parent_path();
    }
    if (!dir.empty() && !name.empty()) want[dir.string()].insert(name);
  }
  // A directory already watched keeps its watch descriptor (the kernel
  // hands the same one back), so events queued for it are not lost.
  std::map<int, std::string> dirs;
  names_.clear();
  for (auto& [dir, names] : want) {
    // One that cannot be watched (no permission, no inotify on its
    // filesystem): its files are read when something else changes, or at
    // the next reload.
    const int wd = inotify_add_watch(fd, dir.c_str(), kMask);
    if (wd < 0) continue;
    dirs[wd] = dir;
    names_[dir] = std::move(names);
  }
  for (const auto& [wd, dir] : dirs_)
    if (dirs.count(wd) == 0) inotify_rm_watch(fd, wd);
  dirs_ = std::move(dirs);
}

void FileWatch::read_next() {
  fd_->async_read_some(boost::asio::buffer(buffer_),
                       [this](const boost::system::error_code& ec, std::size_t n) {
                         // Touches nothing of this object when cancelled: it
                         // may be gone.
                         if (ec) return;
                         handle(buffer_.data(), n);
                         if (fd_) read_next();
                       });
}

void FileWatch::handle(const char* data, std::size_t size) {
  bool relevant = false;
  bool rearm = false;
  for (std::size_t at = 0; at + sizeof(inotify_event) <= size;) {
    inotify_event event;
    std::memcpy(&event, data + at, sizeof event);
    const std::size_t next = at + sizeof(inotify_event) + event.len;
    if (next > size) break;
    const std::string name =
        event.len > 0 ? std::string(data + at + sizeof(inotify_event)) : std::string();
    at = next;
    if (event.mask & IN_Q_OVERFLOW) {
      relevant = rearm = true;  // events were lost: look at everything
      continue;
    }
    auto dir = dirs_.find(event.wd);
    if (dir == dirs_.end()) continue;  // a watch dropped by arm()
    if (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
      relevant = rearm = true;
      continue;
    }
    const auto& names = names_[dir->second];
    if (names.count(name) == 0) continue;
    // A write under way (or a file just made, to be written) of a file
    // that counts only when settled: noted, so that an answer already due
    // waits for its writer (coalesce()).
    const std::string path = dir->second + "/" + name;
    constexpr std::uint32_t kUnderWay = IN_MODIFY | IN_CREATE;
    if (settled_.contains(path)) {
      if ((event.mask & ~kUnderWay & ~IN_ISDIR) == 0) {
        writing_.insert(path);
        continue;
      }
      writing_.erase(path);  // closed, renamed over, removed: done with
    }
    relevant = true;
    // A directory on the way came or went: watch the next one down (or up).
    if (event.mask & IN_ISDIR) rearm = true;
  }
  if (rearm) arm();
  if (relevant) coalesce();
}

void FileWatch::coalesce() {
  const MonoTime now = clock_.monotonic();
  timer_.expires_after(coalescer_.event(now) - now);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    answer();
  });
}

void FileWatch::answer() {
  // An answer due while a settled file is half written (a change to one
  // file, then the configuration opened in an editor's in-place save)
  // waits for the writer's close, which answers (coalesce()): otherwise
  // the half would be read and refused, or worse, valid and applied. A
  // writer that holds the file open longer than kHoldAtMost is not waited
  // for; its close is a change like any other.
  const MonoTime now = clock_.monotonic();
  if (!writing_.empty()) {
    if (!held_since_) held_since_ = now;
    if (now - *held_since_ < kHoldAtMost) {
      timer_.expires_after(*held_since_ + kHoldAtMost - now);
      timer_.async_wait([this](const boost::system::error_code& ec) {
        if (ec || stopped_) return;
        answer();
      });
      return;
    }
    writing_.clear();
  }
  held_since_.reset();
  coalescer_.answered();
  // A copy: the callee may follow a new set, replacing changed_.
  if (auto changed = changed_) changed();
}

}  // namespace tetherd
