#pragma once
// What the stand-in programs share: their flags' values. Both throw
// std::runtime_error with a message for the command line.

#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "agent/config/small_file.h"

namespace tetherd::test {

inline std::uint16_t port_flag(const std::string& text) {
  unsigned value = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || err != std::errc() || end != text.data() + text.size() || value > 65535)
    throw std::runtime_error("not a port: " + text);
  return static_cast<std::uint16_t>(value);
}

// A certificate, key or manifest named on the command line (at most 1 MiB).
inline std::string file_flag(const std::string& path) {
  auto text = read_small_file(path, 1 << 20, path);
  if (!text) throw std::runtime_error(text.error().message);
  return std::move(*text);
}

}  // namespace tetherd::test
