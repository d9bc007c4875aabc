#pragma once
// The operator's log. One line per state change, never one per heartbeat
// (STYLE.md). Each record has a syslog priority, an event name that becomes
// TETHERD_EVENT= in the journal, a human message, and structured fields.

#include <initializer_list>
#include <string>
#include <string_view>

namespace tetherd {

enum class Priority { kEmerg, kAlert, kCrit, kErr, kWarning, kNotice, kInfo, kDebug };

struct LogField {
  std::string_view name;  // journal field name: upper case, digits, '_'
  std::string value;
};

class Log {
 public:
  virtual ~Log() = default;
  virtual void write(Priority priority, std::string_view event, std::string_view message,
                     std::initializer_list<LogField> fields = {}) = 0;

  void info(std::string_view event, std::string_view message,
            std::initializer_list<LogField> fields = {}) {
    write(Priority::kInfo, event, message, fields);
  }
  void notice(std::string_view event, std::string_view message,
              std::initializer_list<LogField> fields = {}) {
    write(Priority::kNotice, event, message, fields);
  }
  void warning(std::string_view event, std::string_view message,
               std::initializer_list<LogField> fields = {}) {
    write(Priority::kWarning, event, message, fields);
  }
  void error(std::string_view event, std::string_view message,
             std::initializer_list<LogField> fields = {}) {
    write(Priority::kErr, event, message, fields);
  }
};

}  // namespace tetherd
