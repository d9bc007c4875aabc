#pragma once
// A Log that keeps what it was told, for assertions on events and fields.

#include <map>
#include <string>
#include <vector>

#include "agent/core/log.h"

namespace tetherd::test {

struct LogRecord {
  Priority priority;
  std::string event;
  std::string message;
  std::map<std::string, std::string> fields;
};

class RecordingLog final : public Log {
 public:
  void write(Priority priority, std::string_view event, std::string_view message,
             std::initializer_list<LogField> fields = {}) override {
    LogRecord r{priority, std::string(event), std::string(message), {}};
    for (const LogField& f : fields)
      r.fields.emplace(std::string(f.name), f.value);
    records.push_back(std::move(r));
  }

  std::vector<LogRecord> with_event(std::string_view event) const {
    std::vector<LogRecord> out;
    for (const LogRecord& r : records) {
      if (r.event == event) out.push_back(r);
    }
    return out;
  }

  std::vector<LogRecord> records;
};

}  // namespace tetherd::test
