#include "agent/kube/https_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

namespace tetherd::kube {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using asio::awaitable;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

std::string seconds_text(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

ApiError invalid(std::string message) {
  return ApiError{ErrorKind::kInvalid, 0, {}, std::move(message), std::nullopt};
}

// Dead peers after a resume or a NAT timeout: TCP alone takes many minutes
// to notice (DESIGN.md). Keepalive probes after 30 s idle, and unacknowledged
// data fails the connection after 60 s.
void tune_socket(tcp::socket& socket) {
  boost::system::error_code ignored;
  socket.set_option(tcp::socket::keep_alive(true), ignored);
  socket.set_option(tcp::no_delay(true), ignored);
  const int fd = socket.native_handle();
  const int idle = 30, interval = 10, count = 3;
  const unsigned user_timeout_ms = 60'000;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

}  // namespace

class HttpsClient::Connection {
 public:
  Connection(HttpsClient& owner, asio::any_io_executor executor)
      : owner_(&owner), stream(executor, owner.tls_) {
    owner_->live_.insert(this);
  }
  ~Connection() {
    if (owner_ != nullptr) owner_->live_.erase(this);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }
  // Closing the socket makes every operation pending on it complete with
  // operation_aborted. No TLS close_notify: the peer may be long gone, and
  // a half-open connection is what this is for.
  void close() {
    closed_by_us = true;
    tcp().close();
  }

  HttpsClient* owner_;
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  bool reused = false;
  bool closed_by_us = false;
};

ApiResult<ServerAddress> parse_server_address(std::string_view server_url,
                                              std::string_view tls_server_name) {
  auto url = boost::urls::parse_uri(server_url);
  if (!url)
    return invalid("server URL \"" + std::string(server_url) + "\": " + url.error().message());
  if (url->scheme() != "https")
    return invalid("server URL \"" + std::string(server_url) + "\": not https");
  ServerAddress a;
  a.host = url->host_address();  // IPv6 without brackets
  if (a.host.empty()) return invalid("server URL \"" + std::string(server_url) + "\": no host");
  if (url->has_userinfo())
    return invalid("server URL \"" + std::string(server_url) +
                   "\": credentials in a URL are refused");
  a.port = url->has_port() ? std::string(url->port()) : "443";
  a.base_path = url->encoded_path();
  while (!a.base_path.empty() && a.base_path.back() == '/')
    a.base_path.pop_back();
  const bool host_is_ip = url->host_type() == boost::urls::host_type::ipv4 ||
                          url->host_type() == boost::urls::host_type::ipv6;
  a.host_header = url->encoded_host_and_port();
  if (!url->has_port()) a.host_header = url->encoded_host();
  a.verify_name = tls_server_name.empty() ? a.host : std::string(tls_server_name);
  boost::system::error_code ec;
  asio::ip::make_address(a.verify_name, ec);
  a.verify_name_is_ip = !ec;
  if (!a.verify_name_is_ip) a.sni = a.verify_name;
  if (tls_server_name.empty() && host_is_ip) a.sni.clear();
  return a;
}

ApiResult<std::unique_ptr<HttpsClient>> HttpsClient::create(asio::any_io_executor executor,
                                                            const Kubeconfig& k,
                                                            ClientLimits limits) {
  auto address = parse_server_address(k.server, k.tls_server_name);
  if (!address) return address.error();
  std::unique_ptr<HttpsClient> client(
      new HttpsClient(std::move(executor), k.server, std::move(*address), k.token, limits));
  auto& tls = client->tls_;
  SSL_CTX* ctx = tls.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  tls.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
  tls.set_verify_mode(asio::ssl::verify_peer);
  boost::system::error_code ec;
  const std::string where = k.path + " (context " + k.context + ")";
  if (k.ca_pem.empty()) {
    tls.set_default_verify_paths(ec);
  } else {
    tls.add_certificate_authority(asio::buffer(k.ca_pem), ec);
  }
  if (ec) return invalid(where + ": certificate authority: " + ec.message());
  if (!k.client_cert_pem.empty() || !k.client_key_pem.empty()) {
    tls.use_certificate_chain(asio::buffer(k.client_cert_pem), ec);
    if (ec) return invalid(where + ": client certificate: " + ec.message());
    tls.use_private_key(asio::buffer(k.client_key_pem), asio::ssl::context::pem, ec);
    if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
      return invalid(where + ": the client key does not match the client certificate");
    if (ec) return invalid(where + ": client key: " + ec.message());
    if (SSL_CTX_check_private_key(ctx) != 1)
      return invalid(where + ": the client key does not match the client certificate");
  }
  return client;
}

HttpsClient::HttpsClient(asio::any_io_executor executor, std::string server, ServerAddress address,
                         std::string token, ClientLimits limits)
    : executor_(std::move(executor)),
      server_(std::move(server)),
      address_(std::move(address)),
      token_(std::move(token)),
      limits_(limits),
      tls_(asio::ssl::context::tls_client) {}

HttpsClient::~HttpsClient() {
  idle_.clear();
  // Busy connections are owned by coroutines that must not outlive us.
  for (auto* c : live_)
    c->owner_ = nullptr;
}

void HttpsClient::disconnect_all() {
  idle_.clear();
  for (auto* c : live_)
    c->close();
}

std::unique_ptr<HttpsClient::Connection> HttpsClient::take_idle() {
  if (idle_.empty()) return nullptr;
  auto c = std::move(idle_.back());
  idle_.pop_back();
  c->reused = true;
  return c;
}

void HttpsClient::keep_idle(std::unique_ptr<Connection> connection) {
  if (connection->closed_by_us || idle_.size() >= limits_.max_idle_connections) return;
  connection->tcp().expires_never();
  idle_.push_back(std::move(connection));
}

ApiError HttpsClient::io_error(const boost::system::error_code& ec, std::string_view doing,
                               Duration timeout, const Connection* c) const {
  ApiError e;
  const std::string what = std::string(doing) + " " + server_;
  if (ec == beast::error::timeout) {
    e.kind = ErrorKind::kTimeout;
    e.message = what + ": no answer within " + seconds_text(timeout);
  } else if (ec == http::error::body_limit) {
    e.kind = ErrorKind::kTooLarge;
    e.message = what + ": body larger than " + std::to_string(limits_.max_body_bytes) + " bytes";
  } else if (ec == http::error::header_limit) {
    e.kind = ErrorKind::kTooLarge;
    e.message =
        what + ": headers larger than " + std::to_string(limits_.max_header_bytes) + " bytes";
  } else if (c != nullptr && c->closed_by_us) {
    e.kind = ErrorKind::kTransport;
    e.reason = "Disconnected";
    e.message = what + ": connection closed by tetherd";
  } else if (ec == asio::ssl::error::stream_truncated) {
    // The peer closed TCP without TLS's close_notify: a crash, a dropped
    // connection or a middlebox, not a TLS problem.
    e.kind = ErrorKind::kTransport;
    e.message = what + ": the connection was closed";
  } else if (ec.category() == asio::error::get_ssl_category()) {
    e.kind = ErrorKind::kTls;
    e.message = what + ": " + ec.message();
    if (c != nullptr) {
      // The handshake's error says only "certificate verify failed"; the
      // verification result says which check failed, which is what an
      // operator needs (wrong name, expired, unknown CA).
      const long verify = SSL_get_verify_result(const_cast<SSL*>(
          const_cast<beast::ssl_stream<beast::tcp_stream>&>(c->stream).native_handle()));
      if (verify != X509_V_OK) {
        e.message += std::string(" (") + X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
          e.message += ": the certificate is not for " + address_.verify_name;
        e.message += ")";
      }
    }
  } else {
    e.kind = ErrorKind::kTransport;
    e.message = what + ": " + ec.message();
  }
  return e;
}

awaitable<ApiResult<std::unique_ptr<HttpsClient::Connection>>> HttpsClient::connect() {
  auto c = std::make_unique<Connection>(*this, executor_);
  ++connections_opened_;
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(address_.host, ec);
  unsigned short port = 0;
  try {
    port = static_cast<unsigned short>(std::stoul(address_.port));
  } catch (const std::exception&) {
    co_return invalid("server " + server_ + ": bad port \"" + address_.port + "\"");
  }
  if (!ec) {
    // An IP literal (k3s at 127.0.0.1:6443): no resolver, and so no
    // resolver thread.
    c->tcp().expires_after(limits_.connect_timeout);
    auto [cec] = co_await c->tcp().async_connect(tcp::endpoint(ip, port), nothrow);
    if (cec) co_return io_error(cec, "connecting to", limits_.connect_timeout, c.get());
  } else {
    tcp::resolver resolver(executor_);
    asio::steady_timer deadline(executor_, limits_.resolve_timeout);
    auto expired = std::make_shared<bool>(false);
    deadline.async_wait([&resolver, expired](const boost::system::error_code& wec) {
      if (wec) return;  // cancelled: the resolve finished first
      *expired = true;
      resolver.cancel();
    });
    auto [rec, results] = co_await resolver.async_resolve(address_.host, address_.port, nothrow);
    deadline.cancel();
    if (*expired)
      co_return io_error(beast::error::timeout, "resolving", limits_.resolve_timeout, nullptr);
    if (rec) co_return io_error(rec, "resolving", limits_.resolve_timeout, nullptr);
    c->tcp().expires_after(limits_.connect_timeout);
    auto [cec, endpoint] = co_await c->tcp().async_connect(results, nothrow);
    if (cec) co_return io_error(cec, "connecting to", limits_.connect_timeout, c.get());
  }
  tune_socket(c->tcp().socket());

  SSL* ssl = c->stream.native_handle();
  if (!address_.sni.empty()) SSL_set_tlsext_host_name(ssl, address_.sni.c_str());
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const int named = address_.verify_name_is_ip
                        ? X509_VERIFY_PARAM_set1_ip_asc(param, address_.verify_name.c_str())
                        : X509_VERIFY_PARAM_set1_host(param, address_.verify_name.c_str(), 0);
  if (named != 1)
    co_return invalid("cannot verify the server name \"" + address_.verify_name + "\"");

  c->tcp().expires_after(limits_.handshake_timeout);
  auto [hec] = co_await c->stream.async_handshake(asio::ssl::stream_base::client, nothrow);
  if (hec) co_return io_error(hec, "TLS handshake with", limits_.handshake_timeout, c.get());
  co_return c;
}

namespace {

http::request<http::string_body> make_message(const HttpRequest& r, const ServerAddress& a,
                                              const std::string& token) {
  http::request<http::string_body> m{r.verb, a.base_path + r.target, 11};
  m.set(http::field::host, a.host_header);
  m.set(http::field::user_agent, "tetherd/" TETHERD_VERSION);
  m.set(http::field::accept, "application/json");
  if (!token.empty()) m.set(http::field::authorization, "Bearer " + token);
  if (!r.content_type.empty()) m.set(http::field::content_type, r.content_type);
  m.keep_alive(true);
  m.body() = r.body;
  m.prepare_payload();
  return m;
}

// A kept-alive connection the server has since closed fails at once, before
// any byte of an answer: the request never reached the server's logic.
bool stale_connection(const boost::system::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == asio::ssl::error::stream_truncated;
}

}  // namespace

awaitable<ApiResult<HttpResponse>> HttpsClient::send(HttpRequest request) {
  const auto message = make_message(request, address_, token_);
  for (int attempt = 0;; ++attempt) {
    auto c = take_idle();
    if (!c) {
      auto fresh = co_await connect();
      if (!fresh) co_return fresh.error();
      c = std::move(*fresh);
    }
    const bool may_retry = c->reused && attempt == 0 && request.verb != http::verb::post;

    c->tcp().expires_after(limits_.write_timeout);
    auto [wec, written] = co_await http::async_write(c->stream, message, nothrow);
    if (wec && may_retry && stale_connection(wec)) continue;
    if (wec) co_return io_error(wec, "sending a request to", limits_.write_timeout, c.get());

    http::response_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    parser.body_limit(limits_.max_body_bytes);
    c->tcp().expires_after(limits_.read_timeout);
    auto [rec, read] = co_await http::async_read(c->stream, c->buffer, parser, nothrow);
    if (rec && may_retry && read == 0 && stale_connection(rec)) continue;
    if (rec) co_return io_error(rec, "reading the response from", limits_.read_timeout, c.get());

    auto& res = parser.get();
    HttpResponse out;
    out.status = res.result_int();
    out.retry_after = std::string(res[http::field::retry_after]);
    const bool keep = res.keep_alive();
    out.body = std::move(res.body());
    if (keep) keep_idle(std::move(c));
    co_return out;
  }
}

awaitable<ApiResult<void>> HttpsClient::stream(HttpRequest request, Duration idle, BodySink sink) {
  auto fresh = co_await connect();
  if (!fresh) co_return fresh.error();
  auto c = std::move(*fresh);
  const auto message = make_message(request, address_, token_);
  c->tcp().expires_after(limits_.write_timeout);
  auto [wec, written] = co_await http::async_write(c->stream, message, nothrow);
  if (wec) co_return io_error(wec, "sending a request to", limits_.write_timeout, c.get());

  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
  parser.body_limit(boost::none);  // a watch is endless; the sink bounds each event
  c->tcp().expires_after(limits_.read_timeout);
  auto [hec, hread] = co_await http::async_read_header(c->stream, c->buffer, parser, nothrow);
  if (hec) co_return io_error(hec, "reading the response from", limits_.read_timeout, c.get());

  if (parser.get().result() != http::status::ok) {
    const unsigned status = parser.get().result_int();
    const std::string retry_after(parser.get()[http::field::retry_after]);
    http::response_parser<http::string_body> body_parser(std::move(parser));
    body_parser.body_limit(limits_.max_body_bytes);
    auto [bec, bread] = co_await http::async_read(c->stream, c->buffer, body_parser, nothrow);
    if (bec) co_return io_error(bec, "reading the response from", limits_.read_timeout, c.get());
    co_return error_from_response(status, body_parser.get().body(), retry_after);
  }

  std::array<char, 16 << 10> chunk;
  auto deadline = std::chrono::steady_clock::now() + idle;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    c->tcp().expires_at(deadline);
    auto [ec, n] = co_await http::async_read_some(c->stream, c->buffer, parser, nothrow);
    if (ec == http::error::need_buffer) ec = {};
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got > 0) {
      auto progressed = sink(std::string_view(chunk.data(), got));
      if (!progressed) co_return progressed.error();
      if (*progressed) deadline = std::chrono::steady_clock::now() + idle;
    }
    if (ec == beast::error::timeout) {
      ApiError e = io_error(ec, "watching", idle, c.get());
      e.message = "watch on " + server_ + " idle: nothing complete for " + seconds_text(idle) +
                  " (a stalled or dripping server, or a dead connection)";
      co_return e;
    }
    if (ec && !c->closed_by_us &&
        (ec == http::error::partial_message || ec == asio::error::eof ||
         ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated)) {
      co_return ApiError{ErrorKind::kTransport,
                         0,
                         {},
                         "watch on " + server_ + ": connection closed mid-stream",
                         std::nullopt};
    }
    if (ec) co_return io_error(ec, "watching", idle, c.get());
  }
  co_return ApiResult<void>{};
}

}  // namespace tetherd::kube
