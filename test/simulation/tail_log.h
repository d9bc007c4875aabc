#pragma once
// A log that keeps the last lines (for a failure's message), not all: a
// simulated year writes hundreds of thousands.

#include <deque>
#include <string>
#include <string_view>

#include "agent/core/log.h"

namespace tetherd::sim {

class TailLog final : public Log {
 public:
  void write(Priority, std::string_view event, std::string_view message,
             std::initializer_list<LogField>) override {
    lines_.push_back(std::string(event) + ": " + std::string(message).substr(0, 300));
    if (lines_.size() > 8) lines_.pop_front();
  }
  std::string tail() const {
    std::string out;
    for (const auto& l : lines_)
      out += "\n    " + l;
    return out;
  }

 private:
  std::deque<std::string> lines_;
};

}  // namespace tetherd::sim
