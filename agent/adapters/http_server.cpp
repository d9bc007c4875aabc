#include "agent/adapters/http_server.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <optional>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace tetherd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using unix_socket = asio::local::stream_protocol;
using asio::awaitable;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// After an error answer the client may still be sending (the rest of a
// huge header, a body): closing with unread bytes makes the kernel send a
// reset, which can destroy the answer before the client reads it. So shut
// down our side and read what comes, this much at most, before closing.
constexpr std::size_t kMaxDrainBytes = 64 << 10;
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

}  // namespace

struct HttpServer::State {
  State(asio::io_context& i, Handler h, HttpServerLimits l)
      : io(i), handler(std::move(h)), limits(l), accept_pause(i) {}

  asio::io_context& io;
  Handler handler;
  HttpServerLimits limits;
  HttpServerStats stats;
  std::string address;
  std::uint16_t port = 0;
  std::optional<tcp::acceptor> tcp_acceptor;
  std::optional<unix_socket::acceptor> unix_acceptor;
  asio::steady_timer accept_pause;
  // How stop() closes each open connection, by connection id.
  std::map<std::uint64_t, std::function<void()>> open;
  std::uint64_t next_id = 0;
  bool stopped = false;
  // The socket file we made: stop() removes it only if it is still this one.
  std::optional<std::pair<dev_t, ino_t>> socket_file;
};

using State = HttpServer::State;

namespace {

using Message = http::response<http::string_body>;

template <class Protocol>
struct Connection {
  Connection(std::shared_ptr<State> s, typename Protocol::socket socket)
      : state(std::move(s)),
        stream(std::move(socket)),
        // The parser bounds the header; the buffer only needs room for it
        // and what a pipelining client sent after it.
        buffer(2 * state->limits.max_header_bytes + 1024),
        id(++state->next_id) {
    state->open.emplace(id, [this] { stream.close(); });
  }
  ~Connection() { state->open.erase(id); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  std::shared_ptr<State> state;
  beast::basic_stream<Protocol> stream;
  beast::flat_buffer buffer;
  std::uint64_t id;
};

Message answer(unsigned version, http::status status, std::string body) {
  Message m{status, version};
  m.set(http::field::content_type, "text/plain; charset=utf-8");
  m.body() = std::move(body);
  m.prepare_payload();
  return m;
}

bool is_deadline(const boost::system::error_code& ec) {
  return ec == beast::error::timeout;
}

template <class Protocol>
awaitable<bool> send(Connection<Protocol>& c, Message& m) {
  c.stream.expires_after(c.state->limits.write_timeout);
  auto [ec, n] = co_await http::async_write(c.stream, m, nothrow);
  (void)n;
  if (is_deadline(ec)) ++c.state->stats.timeouts;
  co_return !ec;
}

// The answer was the last: close our side, then let the client finish.
template <class Protocol>
awaitable<void> close_after_answer(Connection<Protocol>& c) {
  boost::system::error_code ignored;
  c.stream.socket().shutdown(Protocol::socket::shutdown_send, ignored);
  c.stream.expires_after(c.state->limits.read_timeout);
  std::array<char, 4096> scratch{};
  std::size_t drained = 0;
  while (drained < kMaxDrainBytes) {
    auto [ec, n] = co_await c.stream.async_read_some(asio::buffer(scratch), nothrow);
    if (ec) break;
    drained += n;
  }
  c.stream.close();
}

// What the server answers itself, without the handler: nullopt when the
// request is one for the handler.
std::optional<Message> refusal(const http::request_parser<http::empty_body>& parser) {
  const auto& req = parser.get();
  const bool has_body =
      parser.chunked() || (parser.content_length() && *parser.content_length() > 0);
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    Message m = answer(req.version(), http::status::method_not_allowed, "method not allowed\n");
    m.set(http::field::allow, "GET, HEAD");
    // An unread body would be taken for the next request.
    m.keep_alive(req.keep_alive() && !has_body);
    return m;
  }
  if (has_body) {
    Message m = answer(req.version(), http::status::payload_too_large, "request body refused\n");
    m.keep_alive(false);
    return m;
  }
  return std::nullopt;
}

template <class Protocol>
awaitable<void> serve(std::unique_ptr<Connection<Protocol>> connection) {
  Connection<Protocol>& c = *connection;
  State& s = *c.state;
  for (bool first = true;; first = false) {
    if (!first && c.buffer.size() == 0) {
      // A kept-alive connection waits for the next request's first byte.
      c.stream.expires_after(s.limits.idle_timeout);
      auto [ec, n] = co_await c.stream.async_read_some(c.buffer.prepare(1024), nothrow);
      if (is_deadline(ec)) ++s.stats.timeouts;
      if (ec) co_return;
      c.buffer.commit(n);
    }
    http::request_parser<http::empty_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(s.limits.max_header_bytes));
    c.stream.expires_after(s.limits.read_timeout);
    auto [ec, n] = co_await http::async_read_header(c.stream, c.buffer, parser, nothrow);
    (void)n;
    if (s.stopped || ec == asio::error::operation_aborted) co_return;
    if (is_deadline(ec)) {
      ++s.stats.timeouts;
      co_return;
    }
    // The client closed between requests, or before sending any.
    if (ec == http::error::end_of_stream || ec == asio::error::connection_reset) co_return;
    std::optional<Message> reply;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      reply = answer(11, http::status::request_header_fields_too_large, "header too large\n");
      reply->keep_alive(false);
    } else if (ec) {
      reply = answer(11, http::status::bad_request, "bad request\n");
      reply->keep_alive(false);
    } else {
      reply = refusal(parser);
    }
    if (reply) {
      ++s.stats.rejected;
    } else {
      const auto& req = parser.get();
      const HttpServer::Request request{std::string(req.method_string()),
                                        std::string(req.target())};
      ++s.stats.requests;
      HttpServer::Response r = s.handler(request);
      // A status outside HTTP's range is the handler's bug: say so, as 500.
      const unsigned status = r.status >= 100 && r.status <= 599 ? r.status : 500;
      reply = answer(req.version(), static_cast<http::status>(status), std::move(r.body));
      reply->set(http::field::content_type, r.content_type);
      reply->keep_alive(req.keep_alive());
      // HEAD: the same header, Content-Length included, and no body.
      if (req.method() == http::verb::head) reply->body().clear();
    }
    const bool keep_alive = reply->keep_alive();
    if (!co_await send(c, *reply) || s.stopped) co_return;
    if (!keep_alive) {
      co_await close_after_answer(c);
      co_return;
    }
  }
}

template <class Protocol>
awaitable<void> accept_loop(std::shared_ptr<State> s, typename Protocol::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(nothrow);
    if (s->stopped) co_return;
    if (ec) {
      // Out of descriptors or memory: the connection stays queued and the
      // next accept fails at once, so pause rather than spin.
      ++s->stats.accept_errors;
      s->accept_pause.expires_after(kAcceptPause);
      co_await s->accept_pause.async_wait(nothrow);  // cancelled by stop()
      if (s->stopped) co_return;
      continue;
    }
    if (s->open.size() >= s->limits.max_connections) {
      ++s->stats.connections_refused;
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++s->stats.connections;
    // Registered now, not when the coroutine first runs, so the next accept
    // already counts it.
    auto connection = std::make_unique<Connection<Protocol>>(s, std::move(socket));
    asio::co_spawn(s->io, serve<Protocol>(std::move(connection)), asio::detached);
  }
}

Error listen_error(std::string_view where, const boost::system::error_code& ec) {
  return make_error("listen on " + std::string(where) + ": " + ec.message());
}

std::optional<tcp::endpoint> parse_listen_address(std::string_view s) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = s.substr(0, colon);
  const std::string_view port_text = s.substr(colon + 1);
  std::uint16_t port = 0;
  const auto [end, err] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || err != std::errc() || end != port_text.data() + port_text.size())
    return std::nullopt;
  boost::system::error_code ec;
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') return std::nullopt;
    auto a = asio::ip::make_address_v6(std::string(host.substr(1, host.size() - 2)), ec);
    if (ec || a.scope_id() != 0) return std::nullopt;
    return tcp::endpoint(a, port);
  }
  auto a = asio::ip::make_address_v4(std::string(host), ec);
  if (ec) return std::nullopt;
  return tcp::endpoint(a, port);
}

std::string endpoint_text(const tcp::endpoint& e) {
  const auto a = e.address();
  const std::string host = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return host + ":" + std::to_string(e.port());
}

// Is someone accepting on the socket file? Then it is not stale: replacing
// it would steal a running daemon's socket.
Result<bool> socket_is_live(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error(path + ": " + std::strerror(errno));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int e = errno;
  ::close(fd);
  if (rc == 0 || e == EAGAIN) return true;  // EAGAIN: alive, its backlog full
  if (e == ECONNREFUSED) return false;
  return make_error(path + ": " + std::strerror(e));
}

}  // namespace

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::stop() {
  State& s = *state_;
  if (s.stopped) return;
  s.stopped = true;
  boost::system::error_code ignored;
  if (s.tcp_acceptor) s.tcp_acceptor->close(ignored);
  if (s.unix_acceptor) s.unix_acceptor->close(ignored);
  s.accept_pause.cancel();
  // Each pending operation now completes with operation_aborted, and its
  // coroutine ends (and leaves `open`) on its next run, not here.
  for (auto& [id, close] : s.open)
    close();
  struct stat st {};
  if (s.socket_file && ::lstat(s.address.c_str(), &st) == 0 &&
      std::pair(st.st_dev, st.st_ino) == *s.socket_file) {
    ::unlink(s.address.c_str());
  }
}

const std::string& HttpServer::address() const {
  return state_->address;
}
std::uint16_t HttpServer::port() const {
  return state_->port;
}
const HttpServerStats& HttpServer::stats() const {
  return state_->stats;
}
std::size_t HttpServer::open_connections() const {
  return state_->open.size();
}

Result<std::unique_ptr<HttpServer>> listen_tcp(asio::io_context& io, std::string_view address,
                                               HttpServer::Handler handler,
                                               HttpServerLimits limits) {
  const auto endpoint = parse_listen_address(address);
  if (!endpoint) {
    return make_error("listen address \"" + std::string(address) +
                      "\": expected ADDRESS:PORT such as 127.0.0.1:9477 or [::1]:9477");
  }
  auto state = std::make_shared<State>(io, std::move(handler), limits);
  auto& acceptor = state->tcp_acceptor.emplace(io);
  boost::system::error_code ec;
  acceptor.open(endpoint->protocol(), ec);
  // A restart must not wait for the old connections' TIME_WAIT; Linux still
  // refuses a second live listener on the same address.
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(*endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return listen_error(address, ec);
  const auto bound = acceptor.local_endpoint(ec);
  if (ec) return listen_error(address, ec);
  state->address = endpoint_text(bound);
  state->port = bound.port();
  asio::co_spawn(io, accept_loop<tcp>(state, acceptor), asio::detached);
  return std::make_unique<HttpServer>(std::move(state));
}

Result<std::unique_ptr<HttpServer>> listen_unix(asio::io_context& io, const std::string& path,
                                                mode_t mode, HttpServer::Handler handler,
                                                HttpServerLimits limits) {
  const std::string where = "unix socket " + path;
  if (path.empty() || path.front() != '/') return make_error(where + ": the path must be absolute");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return make_error(where + ": the path is longer than " +
                      std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes");
  }
  const std::string parent = path.substr(0, std::max<std::size_t>(path.rfind('/'), 1));
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0)
    return make_error(where + ": directory " + parent + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return make_error(where + ": " + parent + " is not a directory");
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return make_error(where + ": the path exists and is not a socket; refusing to replace it");
    auto live = socket_is_live(path);
    if (!live) return make_error(where + ": " + live.error().message);
    if (*live) return make_error(where + ": another process is listening on it");
    if (::unlink(path.c_str()) != 0)
      return make_error(where + ": removing the stale socket: " + std::strerror(errno));
  }
  auto state = std::make_shared<State>(io, std::move(handler), limits);
  auto& acceptor = state->unix_acceptor.emplace(io);
  boost::system::error_code ec;
  acceptor.open(unix_socket(), ec);
  if (ec) return listen_error(where, ec);
  // bind() creates the file with 0777 & ~umask; until a chmod it could be
  // connected to by anyone. A umask that leaves exactly `mode` closes that
  // window. The umask is process-wide, so another thread's file made in this
  // instant is only more private.
  const mode_t old_umask = ::umask(~mode & 0777);
  acceptor.bind(unix_socket::endpoint(path), ec);
  ::umask(old_umask);
  if (ec) return listen_error(where, ec);
  if (::chmod(path.c_str(), mode) != 0 || ::lstat(path.c_str(), &st) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    return make_error(where + ": " + std::strerror(e));
  }
  state->socket_file = std::pair(st.st_dev, st.st_ino);
  state->address = path;
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    ::unlink(path.c_str());
    return listen_error(where, ec);
  }
  asio::co_spawn(io, accept_loop<unix_socket>(state, acceptor), asio::detached);
  return std::make_unique<HttpServer>(std::move(state));
}

}  // namespace tetherd
