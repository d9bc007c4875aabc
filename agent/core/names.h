#pragma once
// Kubernetes' name rules (RFC 1123), as the API server applies them to
// object names and namespaces.

#include <string_view>

namespace tetherd {

// A DNS-1123 subdomain: at most 253 of [a-z0-9.-], starting and ending
// with [a-z0-9]. Object names (a node's name, a CSR's).
bool is_dns_subdomain(std::string_view s);
// A DNS-1123 label: a subdomain of at most 63 without dots. Namespaces.
bool is_dns_label(std::string_view s);

}  // namespace tetherd
