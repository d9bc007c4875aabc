#pragma once
// Base64 (RFC 4648, with padding) as Kubernetes uses it: kubeconfig `-data`
// fields and Secret `data` values. OpenSSL's EVP block coder does the work.

#include <string>
#include <string_view>

#include "agent/core/result.h"

namespace tetherd {

// Whitespace (line breaks in a kubeconfig) is ignored. Errors name `field`.
Result<std::string> decode_base64(std::string_view field, std::string_view text);
std::string encode_base64(std::string_view bytes);

}  // namespace tetherd
