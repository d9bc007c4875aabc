#include "agent/adapters/journal_log.h"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <cstdlib>
#include <string>
#include <vector>

#include <systemd/sd-journal.h>

namespace tetherd {

JournalLog::Sink JournalLog::detect_sink() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return Sink::kStderr;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return Sink::kStderr;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return Sink::kStderr;
  return (st.st_dev == dev && st.st_ino == ino) ? Sink::kJournal : Sink::kStderr;
}

void JournalLog::write(Priority priority, std::string_view event, std::string_view message,
                       std::initializer_list<LogField> fields) {
  const int level = static_cast<int>(priority);
  if (sink_ == Sink::kJournal) {
    std::vector<std::string> parts;
    parts.reserve(4 + fields.size());
    parts.push_back("MESSAGE=" + std::string(message));
    parts.push_back("PRIORITY=" + std::to_string(level));
    parts.push_back("SYSLOG_IDENTIFIER=tetherd");
    parts.push_back("TETHERD_EVENT=" + std::string(event));
    for (const LogField& f : fields)
      parts.push_back(std::string(f.name) + "=" + f.value);
    std::vector<iovec> iov;
    iov.reserve(parts.size());
    for (std::string& p : parts)
      iov.push_back({p.data(), p.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0) return;
    // The journal went away (e.g. journald restarting): fall through to stderr,
    // which systemd also routes to the journal.
  }
  // One record, one line: the "<N>" prefix applies to a single line only.
  auto one_line = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    return out;
  };
  std::string line = "<" + std::to_string(level) + ">" + one_line(message);
  line += " [TETHERD_EVENT=" + one_line(event);
  for (const LogField& f : fields) {
    const std::string value = one_line(f.value);
    const bool quote = value.empty() || value.find(' ') != std::string::npos;
    line += " " + std::string(f.name) + "=" + (quote ? "\"" + value + "\"" : value);
  }
  line += "]\n";
  std::fwrite(line.data(), 1, line.size(), stream_);
  std::fflush(stream_);
}

}  // namespace tetherd
