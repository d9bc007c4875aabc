#pragma once
// Log to the journal with structured fields when stderr is connected to
// journald (JOURNAL_STREAM matches stderr, as systemd sets it); otherwise to
// stderr, one line per record, with the sd-daemon "<N>" priority prefix that
// journald and systemd understand when the output is later captured.

#include <cstdio>

#include "agent/core/log.h"

namespace tetherd {

class JournalLog final : public Log {
 public:
  enum class Sink { kJournal, kStderr };

  // Picks the sink from JOURNAL_STREAM and stderr's device and inode.
  static Sink detect_sink();

  explicit JournalLog(Sink sink, std::FILE* stream = stderr) : sink_(sink), stream_(stream) {}

  void write(Priority priority, std::string_view event, std::string_view message,
             std::initializer_list<LogField> fields = {}) override;

 private:
  Sink sink_;
  std::FILE* stream_;
};

}  // namespace tetherd
