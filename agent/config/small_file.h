#pragma once
// Reads a small file whole, refusing one larger than a bound: configuration
// and kubeconfigs are kilobytes, and a wrong path must not read a disk image.

#include <cstddef>
#include <string>
#include <string_view>

#include "agent/core/result.h"

namespace tetherd {

// Errors name the file as `subject`: "cannot read <subject>: <reason>",
// "<subject> is larger than <max>; is this the right file?".
Result<std::string> read_small_file(const std::string& path, std::size_t max_bytes,
                                    std::string_view subject);

// A private key (or a token) must be readable by its owner alone: refuses a
// file with any group or other permission bit, saying how to fix it.
// `what` says what the file holds, e.g. "a private key".
Result<void> refuse_shared_key(const std::string& path, std::string_view what);

// A bearer token as it goes into an Authorization header: visible ASCII
// only (no spaces, no line breaks: a token with "\r\n" would write a header
// of its own), at most 64 KiB. `subject` names where it came from.
Result<void> check_bearer_token(std::string_view token, std::string_view subject);

// A bearer token file (a kubeconfig's tokenFile, enroll's --token-file):
// readable by its owner alone, trailing whitespace (a newline) dropped,
// then checked as above.
Result<std::string> read_token_file(const std::string& path);

}  // namespace tetherd
