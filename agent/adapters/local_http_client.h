#pragma once
// One GET to tetherd's local socket (HTTP/1.1 over a unix stream socket),
// for tetherctl. It runs its own io_context and returns when done, which
// suits a command, not the daemon's event loop.
//
// Bounded like every network read in tetherd: one deadline for the whole
// exchange (connect, request, answer), the header and the body limited in
// size. Errors are written for the operator: "tetherd is not running (no
// /run/tetherd/tetherd.sock)", a hint to use sudo when the socket is root's,
// the status line and the start of the body for an answer other than 200.

#include <cstddef>
#include <string>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

// The body of a 200 answer to GET `target` (e.g. "/v1/status").
Result<std::string> http_get_unix(const std::string& socket_path, const std::string& target,
                                  Duration timeout, std::size_t max_body);

}  // namespace tetherd
