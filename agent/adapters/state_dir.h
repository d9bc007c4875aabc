#pragma once
// The daemon's state directory (state.dir, /var/lib/tetherd). Files are
// replaced atomically: a crash or power cut leaves the old file or the new
// one, never a torn one. The steps: write a temp file in the same directory,
// fsync it, rename it over the target, fsync the directory (so the rename
// itself survives a power cut).

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

#include <boost/system/error_code.hpp>

namespace tetherd {

class StateDir {
 public:
  explicit StateDir(std::string dir) : dir_(std::move(dir)) {}

  const std::string& path() const { return dir_; }

  // Creates the directory (mode 0700) if missing.
  boost::system::error_code ensure() const;

  // Atomically replaces `name` (a plain file name, no '/') with `contents`.
  boost::system::error_code replace(std::string_view name, std::string_view contents,
                                    mode_t mode = 0600) const;

  // Reads `name`; nullopt with ec = no_such_file_or_directory when absent.
  // Refuses files larger than max_bytes (file_too_large).
  std::optional<std::string> read(std::string_view name, boost::system::error_code& ec,
                                  std::size_t max_bytes = 16 << 20) const;

 private:
  std::string dir_;
};

}  // namespace tetherd
