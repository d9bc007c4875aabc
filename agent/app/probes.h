#pragma once
// The network health probes: linkerd's gateway (its readiness URL and its
// gateway port) and the local k3s API. Coroutines on the caller's executor,
// run concurrently by the health loop; each is bounded by its own deadline
// as a whole (resolve, connect, write, read), reads a bounded answer, and
// never throws: whatever happens is a ProbeResult, with `took` measured.
//
// Reasons, for the conditions they become:
//   HTTP readiness: Ready, NotReady, Unreachable, Timeout, BadURL
//   TCP connect:    Listening, Unreachable, Timeout
//   linkerd:        Ready, or the failing part's reason (the gateway port's
//                   prefixed: GatewayUnreachable, GatewayTimeout)
//   k3s:            Ready, APIServerNotReady, NodeNotReady, NodeNotFound,
//                   Forbidden, Unreachable, Timeout, NodeStatusUnknown

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/core/clock.h"
#include "agent/core/probe.h"
#include "agent/kube/https_client.h"

namespace tetherd {

// What a probe reads from a peer at most. Readiness answers are a word
// ("ready"); the excerpt in a message is what an operator needs to see.
inline constexpr std::size_t kProbeMaxHeaderBytes = 8 << 10;
inline constexpr std::size_t kProbeMaxBodyBytes = 4 << 10;
inline constexpr std::size_t kProbeBodyExcerptBytes = 200;

// GET of a plain http://host[:port]/path URL (no TLS: linkerd's probe port
// 4191 is plain HTTP on localhost). 2xx: True "Ready"; another status:
// False "NotReady" with "HTTP 503 from <url>: <body excerpt>"; refused or
// unroutable: False "Unreachable"; nothing within `deadline`: False
// "Timeout"; not an http:// URL: False "BadURL".
boost::asio::awaitable<ProbeResult> probe_http_ready(boost::asio::any_io_executor executor,
                                                     std::string url, Duration deadline);

// A plain HTTP GET of http://host:port/target (a literal address or a
// name), bounded as a whole by `deadline` (resolve, connect, write, read).
// The answer's status goes to `take` (with an empty piece) once its header
// is read, then its body piece by piece; `take` returns false when it has
// heard enough, and the connection is closed. The header is bounded
// (kProbeMaxHeaderBytes); the body is the sink's to bound. Returns nullopt
// when the sink was fed to its end or its wish; otherwise why not, as a
// probe's failure (Unreachable, Timeout, NotReady for what is not HTTP).
using HttpBodySink = std::function<bool(unsigned status, std::string_view piece)>;
boost::asio::awaitable<std::optional<ProbeResult>> http_get(boost::asio::any_io_executor executor,
                                                            std::string host, std::uint16_t port,
                                                            std::string target, Duration deadline,
                                                            HttpBodySink take);

// A TCP connect, closed at once: True "Listening", False "Unreachable" or
// "Timeout".
boost::asio::awaitable<ProbeResult> probe_tcp_connect(boost::asio::any_io_executor executor,
                                                      std::string host, std::uint16_t port,
                                                      Duration deadline);

// Both at once, within one deadline: the readiness URL, and a TCP connect
// to `gateway_port` (4143) on the URL's host. True only when both pass; the
// message names what failed.
boost::asio::awaitable<ProbeResult> probe_linkerd_gateway(boost::asio::any_io_executor executor,
                                                          std::string ready_url,
                                                          std::uint16_t gateway_port,
                                                          Duration deadline);

// The local k3s API over the cluster kubeconfig's client: GET /readyz must
// answer 200, then GET /api/v1/nodes/<node_name> must have condition Ready
// True. On the deadline, `http.disconnect_all()` ends what is in flight and
// the probe answers False "Timeout" at once. Runs on the coroutine's
// executor, which must be the client's; the deadline is on `clock`'s
// timers (the only probe here whose client can be answered in process, so
// the only one a simulated clock can drive).
boost::asio::awaitable<ProbeResult> probe_k3s(kube::HttpsClient& http, std::string node_name,
                                              Duration deadline, const Clock& clock);

}  // namespace tetherd
