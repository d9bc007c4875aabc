#include "agent/core/names.h"

namespace tetherd {

bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-' && c != '.') return false;
    if ((i == 0 || i + 1 == s.size()) && !alnum) return false;
  }
  return true;
}

bool is_dns_label(std::string_view s) {
  return s.size() <= 63 && is_dns_subdomain(s) && s.find('.') == std::string_view::npos;
}

}  // namespace tetherd
