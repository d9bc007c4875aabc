#pragma once
// Files followed with inotify: the kubeconfigs and the files they name, the
// trust anchor's key. The directories are watched, not the files, so that
// what atomic writers do is seen (k3s, `install`, editors: write a temporary
// file, rename it over the old one), and so is a file that appears after
// start, even in a directory that does not exist yet (the nearest existing
// ancestor is watched until it does).
//
// Bursts are coalesced: `changed` runs once things have been quiet for
// kQuiet, and at most every kAtMost while a file keeps changing, so that a
// file that flaps costs a re-read a second, never a busy loop. Nothing
// wakes while nothing changes (no timer runs between events).

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include "agent/core/clock.h"
#include "agent/core/coalescer.h"
#include "agent/core/result.h"
#include "agent/core/timer.h"

namespace tetherd {

class FileWatch {
 public:
  static constexpr std::chrono::milliseconds kQuiet{200};
  static constexpr std::chrono::milliseconds kAtMost{1000};
  // The longest an answer due waits for a settled file's writer to close.
  static constexpr std::chrono::seconds kHoldAtMost{10};

  FileWatch(boost::asio::io_context& io, const Clock& clock);
  ~FileWatch();
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;

  // Follows `paths` (absolute; replacing the set followed before) and calls
  // `changed` on the loop after any of them is written, replaced, created,
  // removed or has its mode changed. An error: inotify cannot be had (the
  // limit on instances); nothing is followed then.
  // Paths in `settled` (among `paths`) count only once a writer is done
  // with them, closed after writing or renamed into place, never at each
  // write: a file written in place (an editor, `>`) is not read half-written,
  // and an answer due for another file waits for the writer too (at most
  // kHoldAtMost).
  Result<void> follow(std::vector<std::string> paths, std::function<void()> changed,
                      std::vector<std::string> settled = {});
  void stop();
  // The directories watched now, for tests.
  std::vector<std::string> watched() const;
  // An answer is due (events came, `changed` has not run yet).
  bool pending() const { return coalescer_.pending(); }

 private:
  void arm();
  void read_next();
  void handle(const char* data, std::size_t size);
  void coalesce();
  void answer();

  boost::asio::io_context& io_;
  const Clock& clock_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> fd_;
  std::vector<std::string> paths_;
  std::set<std::string> settled_;
  std::set<std::string> writing_;       // settled files written now, not closed yet
  std::optional<MonoTime> held_since_;  // an answer due waits for them since
  std::function<void()> changed_;
  // Watch descriptor → directory, and, per directory, the names in it that
  // matter (a followed file's name, or the next directory on its way).
  std::map<int, std::string> dirs_;
  std::map<std::string, std::set<std::string>> names_;
  std::vector<char> buffer_;
  Timer timer_;
  Coalescer coalescer_{kQuiet, kAtMost};
  bool stopped_ = false;
};

}  // namespace tetherd
