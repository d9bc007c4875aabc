#pragma once
// A small HTTP/1.1 server for what tetherd serves locally: Prometheus metrics
// on metrics.listen (TCP) and the status API on /run/tetherd/tetherd.sock
// (a unix socket, root only). GET and HEAD only, no request bodies: nothing
// it serves changes state over HTTP.
//
// One coroutine per connection on the caller's io_context, one thread, no
// locks; call every member on that thread. Everything a client can do is
// bounded: header bytes, the time to send a request, the time to take a
// response, the time a kept-alive connection may idle, and how many
// connections are open at once (beyond that a connection is accepted and
// closed at once, so a flood cannot use up file descriptors). Nothing a client
// sends throws or logs; stats() counts what went wrong.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <sys/types.h>

#include <boost/asio/io_context.hpp>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

struct HttpServerLimits {
  std::size_t max_connections = 16;
  std::size_t max_header_bytes = 8 << 10;  // beyond: 431 and close
  // From a connection's accept, or a request's first byte, to the end of
  // its header: a slowloris client is closed after this.
  Duration read_timeout = std::chrono::seconds(5);
  Duration write_timeout = std::chrono::seconds(10);
  // Between requests on a kept-alive connection.
  Duration idle_timeout = std::chrono::seconds(60);
};

struct HttpServerStats {
  std::uint64_t connections = 0;          // accepted and served
  std::uint64_t connections_refused = 0;  // over max_connections: closed at once
  std::uint64_t accept_errors = 0;
  std::uint64_t requests = 0;  // passed to the handler
  std::uint64_t rejected = 0;  // answered by the server: 400, 405, 413, 431
  std::uint64_t timeouts = 0;  // read, write or idle deadline
};

class HttpServer {
 public:
  struct Request {
    std::string method;  // "GET" or "HEAD": the only ones the handler sees
    std::string target;  // as sent, e.g. "/metrics" or "/status?o=json"
  };
  struct Response {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;  // not sent for HEAD; Content-Length still says its size
  };
  // Called on the io_context's thread; must not throw.
  using Handler = std::function<Response(const Request&)>;

  struct State;
  explicit HttpServer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Closes the listening socket and every connection (requests in flight
  // are cut off), and removes the unix socket file if it is still ours. After
  // it nothing of the server is left on the io_context, so io.run() returns.
  void stop();

  // "127.0.0.1:9477", "[::1]:41234" (the bound port, for port 0), or the
  // unix socket's path.
  const std::string& address() const;
  std::uint16_t port() const;  // 0 for a unix socket
  const HttpServerStats& stats() const;
  std::size_t open_connections() const;

 private:
  std::shared_ptr<State> state_;
};

// Listens on "ADDRESS:PORT": an IPv4 literal or a bracketed IPv6 literal, as
// metrics.listen takes them ("127.0.0.1:9477", "[::1]:9477", "0.0.0.0:9477");
// port 0 picks a free port. Errors say which address and why (bad address,
// address in use, address not on this host).
Result<std::unique_ptr<HttpServer>> listen_tcp(boost::asio::io_context& io,
                                               std::string_view address,
                                               HttpServer::Handler handler,
                                               HttpServerLimits limits = {});

// Listens on a unix socket at `path` with file mode `mode` (0600: root
// only), the mode set before the socket can be connected to. A stale socket
// file at the path (nobody listening) is replaced; anything else there, a
// live socket or a regular file, is an error. The parent directory must exist.
Result<std::unique_ptr<HttpServer>> listen_unix(boost::asio::io_context& io,
                                                const std::string& path, mode_t mode,
                                                HttpServer::Handler handler,
                                                HttpServerLimits limits = {});

}  // namespace tetherd
