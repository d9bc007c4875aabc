#pragma once
// Loads tetherd.yaml into a Config. Every problem is reported, not just the
// first, as "PATH:LINE:COL: message" (1-based), in document order.

#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/config/config.h"

namespace tetherd {

struct ConfigError {
  int line = 0;    // 1-based; 0 when the problem is not at a place in the file
  int column = 0;  // 1-based
  std::string message;

  std::string format(std::string_view path) const;
  bool operator==(const ConfigError&) const = default;
};

using ConfigErrors = std::vector<ConfigError>;

struct LoadOptions {
  // Supplies the default node name; tests pin it.
  std::string host_name;
};

// Parses YAML text. Never throws.
std::variant<Config, ConfigErrors> parse_config(std::string_view yaml, const LoadOptions& options);

// Reads and parses a file. Never throws; a missing or unreadable file is an error.
std::variant<Config, ConfigErrors> load_config_file(const std::string& path,
                                                    const LoadOptions& options);

// The machine's host name, lowercased, as kubelet names a node.
std::string default_host_name();

}  // namespace tetherd
