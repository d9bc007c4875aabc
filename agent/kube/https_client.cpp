#include "agent/kube/https_client.h"

#include <array>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <set>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
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
  return make_api_error(ErrorKind::kInvalid, std::move(message));
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

// The certificates a server presented, its own first, in PEM.
std::vector<std::string> chain_pem(SSL* ssl) {
  std::vector<std::string> out;
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio == nullptr) break;
    if (PEM_write_bio_X509(bio, sk_X509_value(chain, i)) == 1) {
      char* data = nullptr;
      const long size = BIO_get_mem_data(bio, &data);
      out.emplace_back(data, static_cast<std::size_t>(size));
    }
    BIO_free(bio);
  }
  ERR_clear_error();
  return out;
}

}  // namespace

class Connection;

// Everything a call needs. Calls in flight hold it, so the client object
// may be destroyed under them; its connections point back at it.
struct HttpsClient::State {
  State(asio::any_io_executor e, std::string s, ServerAddress a, std::string t, ClientLimits l)
      : executor(std::move(e)),
        server(std::move(s)),
        address(std::move(a)),
        token(std::move(t)),
        limits(l),
        tls(std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client)) {}

  asio::any_io_executor executor;
  std::string server;
  ServerAddress address;
  std::string token;
  ClientLimits limits;
  // New connections are made with it; each connection holds the one it
  // was made with (use_credentials() swaps it under a running watch).
  std::shared_ptr<asio::ssl::context> tls;
  std::size_t connections_opened = 0;
  bool closed = false;  // close(): no connection is made again
  std::string tls_version;
  bool unverified = false;  // create_unverified(): record the chain, trust nothing
  std::vector<std::string> peer_chain;
  std::set<Connection*> live;  // before `idle`: idle connections leave it as they go
  std::vector<std::unique_ptr<Connection>> idle;
  HttpsClient::Exchange exchange;             // create_in_process(): no connections at all
  HttpsClient::WatchExchange watch_exchange;  // and its watches, which a cut ends
  std::map<std::uint64_t, std::function<void()>> cuts;
  std::uint64_t watches_in_process = 0;
  std::function<void(std::string_view)> on_date;          // on_server_date()
  std::function<void(const Kubeconfig&)> on_credentials;  // in process: use_credentials()
};

using State = HttpsClient::State;

class Connection {
 public:
  explicit Connection(State& state)
      : state_(state),
        tls(state.tls),
        stream(state.executor, *tls),
        // Bounds what an unparsed chunk header or trailer may grow to:
        // Beast bounds the header and the body, not those.
        buffer(state.limits.max_header_bytes + (64 << 10)) {
    state_.live.insert(this);
  }
  ~Connection() { state_.live.erase(this); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  beast::tcp_stream& tcp() { return beast::get_lowest_layer(stream); }
  // Closing the socket makes every operation pending on it complete with
  // operation_aborted. No TLS close_notify: the peer may be long gone, and
  // a half-open connection is what this is for. A name lookup has no socket
  // yet: its wait is cut instead.
  void close() {
    closed_by_us = true;
    if (lookup_wait != nullptr) lookup_wait->cancel();
    tcp().close();
  }

  State& state_;
  std::shared_ptr<asio::ssl::context> tls;
  beast::ssl_stream<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  bool reused = false;
  bool closed_by_us = false;
  asio::steady_timer* lookup_wait = nullptr;  // while resolve() waits for the name
};

ApiResult<ServerAddress> parse_server_address(std::string_view server_url,
                                              std::string_view tls_server_name) {
  const std::string quoted = "server URL \"" + std::string(server_url) + "\": ";
  auto url = boost::urls::parse_uri(server_url);
  if (!url) return invalid(quoted + url.error().message());
  if (url->scheme() != "https") return invalid(quoted + "not https");
  ServerAddress a;
  a.host = url->host_address();  // IPv6 without brackets
  if (a.host.empty()) return invalid(quoted + "no host");
  if (url->has_userinfo()) return invalid(quoted + "credentials in a URL are refused");
  if (url->has_port()) {
    if (url->port_number() == 0)
      return invalid(quoted + "bad port \"" + std::string(url->port()) + "\"");
    a.port = url->port_number();
  }
  a.base_path = url->encoded_path();
  while (!a.base_path.empty() && a.base_path.back() == '/')
    a.base_path.pop_back();
  const bool host_is_ip = url->host_type() == boost::urls::host_type::ipv4 ||
                          url->host_type() == boost::urls::host_type::ipv6;
  a.host_header = url->has_port() ? url->encoded_host_and_port() : url->encoded_host();
  a.verify_name = tls_server_name.empty() ? a.host : std::string(tls_server_name);
  boost::system::error_code ec;
  asio::ip::make_address(a.verify_name, ec);
  a.verify_name_is_ip = !ec;
  if (!a.verify_name_is_ip) a.sni = a.verify_name;
  if (tls_server_name.empty() && host_is_ip) a.sni.clear();
  return a;
}

ApiResult<std::shared_ptr<asio::ssl::context>> client_context(const Kubeconfig& k) {
  auto made = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  auto& tls = *made;
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
  return made;
}

ApiResult<void> expect_server_name(SSL* ssl, const ServerAddress& address) {
  if (!address.sni.empty()) SSL_set_tlsext_host_name(ssl, address.sni.c_str());
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  const auto& name = address.verify_name;
  const int named = address.verify_name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                                              : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
  if (named != 1) return invalid("cannot verify the server name \"" + name + "\"");
  return {};
}

ApiResult<std::unique_ptr<HttpsClient>> HttpsClient::create(asio::any_io_executor executor,
                                                            const Kubeconfig& k,
                                                            ClientLimits limits) {
  auto address = parse_server_address(k.server, k.tls_server_name);
  if (!address) return address.error();
  auto tls = client_context(k);
  if (!tls) return tls.error();
  auto state =
      std::make_shared<State>(std::move(executor), k.server, std::move(*address), k.token, limits);
  state->tls = std::move(*tls);
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(state)));
}

ApiResult<void> HttpsClient::use_credentials(const Kubeconfig& k) {
  if (state_->unverified) return invalid("a discovery client takes no credentials");
  auto address = parse_server_address(k.server, k.tls_server_name);
  if (!address) return address.error();
  if (k.server != state_->server || address->verify_name != state_->address.verify_name)
    return invalid(k.path + " is for " + k.server + ", not " + state_->server);
  auto tls = client_context(k);
  if (!tls) return tls.error();
  state_->tls = std::move(*tls);
  state_->token = k.token;
  // Idle connections spoke with the old credentials: the next request
  // opens one with the new.
  state_->idle.clear();
  if (state_->on_credentials) state_->on_credentials(k);
  return {};
}

ApiResult<std::unique_ptr<HttpsClient>> HttpsClient::create_unverified(
    asio::any_io_executor executor, std::string_view server_url, ClientLimits limits) {
  auto address = parse_server_address(server_url, {});
  if (!address) return address.error();
  auto state = std::make_shared<State>(std::move(executor), std::string(server_url),
                                       std::move(*address), std::string(), limits);
  SSL_CTX_set_min_proto_version(state->tls->native_handle(), TLS1_2_VERSION);
  state->tls->set_options(asio::ssl::context::default_workarounds |
                          asio::ssl::context::no_compression);
  state->tls->set_verify_mode(asio::ssl::verify_none);
  state->unverified = true;
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(state)));
}

std::unique_ptr<HttpsClient> HttpsClient::create_in_process(
    asio::any_io_executor executor, std::string server, Exchange exchange, WatchExchange watch,
    std::function<void(const Kubeconfig&)> credentials) {
  auto address = parse_server_address(server, {});
  auto state = std::make_shared<State>(std::move(executor), std::move(server),
                                       address ? std::move(*address) : ServerAddress{},
                                       std::string(), ClientLimits{});
  state->exchange = std::move(exchange);
  state->watch_exchange = std::move(watch);
  state->on_credentials = std::move(credentials);
  return std::unique_ptr<HttpsClient>(new HttpsClient(std::move(state)));
}

HttpsClient::~HttpsClient() {
  disconnect_all();
}

const std::string& HttpsClient::server() const {
  return state_->server;
}
std::size_t HttpsClient::connections_opened() const {
  return state_->connections_opened;
}
const std::string& HttpsClient::tls_version() const {
  return state_->tls_version;
}
const std::vector<std::string>& HttpsClient::peer_chain() const {
  return state_->peer_chain;
}

void HttpsClient::disconnect_all() {
  state_->idle.clear();
  for (auto* c : state_->live)
    c->close();
  // In process: each watch under way is told once, and ends.
  auto cuts = std::move(state_->cuts);
  state_->cuts.clear();
  for (auto& [id, cut] : cuts)
    if (cut) cut();
}

void HttpsClient::on_server_date(std::function<void(std::string_view)> listener) {
  state_->on_date = std::move(listener);
}

void HttpsClient::close() {
  state_->closed = true;
  // An answer already in still ends its call: it must not reach a listener
  // whose owner is going.
  state_->on_date = nullptr;
  disconnect_all();
}

namespace {

ApiError disconnected(const State& s) {
  return ApiError{ErrorKind::kTransport, 0, "Disconnected",
                  s.server + ": connection closed by tetherd", std::nullopt};
}

// Data or an EOF waiting on an idle kept-alive connection means it is out of
// step (a proxy's 408, a close): it must not carry the next request.
bool idle_connection_is_clean(Connection& c) {
  if (c.buffer.size() != 0) return false;
  char byte;
  const auto n = ::recv(c.tcp().socket().native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::unique_ptr<Connection> take_idle(State& s) {
  while (!s.idle.empty()) {
    auto c = std::move(s.idle.back());
    s.idle.pop_back();
    if (!idle_connection_is_clean(*c)) continue;
    c->reused = true;
    return c;
  }
  return nullptr;
}

void keep_idle(State& s, std::unique_ptr<Connection> c) {
  // One made with credentials since replaced (use_credentials) is not
  // kept: the next request opens one with the new.
  if (s.closed || c->closed_by_us || c->buffer.size() != 0 || c->tls != s.tls ||
      s.idle.size() >= s.limits.max_idle_connections)
    return;
  c->tcp().expires_never();
  s.idle.push_back(std::move(c));
}

ApiError io_error(const State& s, const boost::system::error_code& ec, std::string_view doing,
                  Duration timeout, const Connection* c) {
  ApiError e;
  const std::string what = std::string(doing) + " " + s.server;
  if (c != nullptr && c->closed_by_us) {
    e = disconnected(s);
  } else if (ec == beast::error::timeout) {
    e.kind = ErrorKind::kTimeout;
    e.message = what + ": no answer within " + seconds_text(timeout);
  } else if (ec == http::error::body_limit) {
    e.kind = ErrorKind::kTooLarge;
    e.message = what + ": body larger than " + std::to_string(s.limits.max_body_bytes) + " bytes";
  } else if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    e.kind = ErrorKind::kTooLarge;
    e.message = what + ": headers (or a chunk header) larger than " +
                std::to_string(s.limits.max_header_bytes) + " bytes";
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
      auto& stream = const_cast<Connection*>(c)->stream;
      const long verify = SSL_get_verify_result(stream.native_handle());
      if (verify != X509_V_OK) {
        e.message += std::string(" (") + X509_verify_cert_error_string(verify);
        if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
          e.message += ": the certificate is not for " + s.address.verify_name;
        e.message += ")";
      }
    }
  } else {
    e.kind = ErrorKind::kTransport;
    e.message = what + ": " + ec.message();
  }
  return e;
}

// Resolving runs getaddrinfo on Asio's resolver thread, which cancel()
// cannot interrupt. So the wait is on a timer the answer cancels, and so
// does disconnect_all(): the request ends at once, and the lookup is left
// to finish into state it shares, unobserved. Asio runs an io_context's
// lookups one at a time on one thread, so a new one (the redial after a
// resume) still starts only once the stale getaddrinfo returns.
struct Lookup {
  explicit Lookup(asio::any_io_executor e) : resolver(e), wake(e) {}
  tcp::resolver resolver;
  asio::steady_timer wake;
  boost::system::error_code ec;
  tcp::resolver::results_type results;
  bool done = false;
};

awaitable<ApiResult<tcp::resolver::results_type>> resolve(const State& s, Connection& c) {
  auto lookup = std::make_shared<Lookup>(s.executor);
  lookup->wake.expires_after(s.limits.resolve_timeout);
  lookup->resolver.async_resolve(
      s.address.host, std::to_string(s.address.port),
      [lookup](const boost::system::error_code& ec, tcp::resolver::results_type results) {
        lookup->ec = ec;
        lookup->results = std::move(results);
        lookup->done = true;
        lookup->wake.cancel();
      });
  c.lookup_wait = &lookup->wake;
  co_await lookup->wake.async_wait(nothrow);
  c.lookup_wait = nullptr;
  if (c.closed_by_us) co_return disconnected(s);
  if (!lookup->done)
    co_return io_error(s, beast::error::timeout, "resolving", s.limits.resolve_timeout, nullptr);
  if (lookup->ec) co_return io_error(s, lookup->ec, "resolving", s.limits.resolve_timeout, nullptr);
  co_return lookup->results;
}

awaitable<ApiResult<std::unique_ptr<Connection>>> connect(std::shared_ptr<State> s) {
  if (s->closed) co_return disconnected(*s);
  auto c = std::make_unique<Connection>(*s);
  ++s->connections_opened;
  const auto& limits = s->limits;
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(s->address.host, ec);
  if (!ec) {
    // An IP literal (k3s at 127.0.0.1:6443): no resolver, and so no
    // resolver thread.
    c->tcp().expires_after(limits.connect_timeout);
    auto [cec] = co_await c->tcp().async_connect(tcp::endpoint(ip, s->address.port), nothrow);
    if (cec) co_return io_error(*s, cec, "connecting to", limits.connect_timeout, c.get());
  } else {
    auto endpoints = co_await resolve(*s, *c);
    if (!endpoints) co_return endpoints.error();
    c->tcp().expires_after(limits.connect_timeout);
    auto [cec, endpoint] = co_await c->tcp().async_connect(*endpoints, nothrow);
    if (cec) co_return io_error(*s, cec, "connecting to", limits.connect_timeout, c.get());
  }
  // disconnect_all() while connecting: closing a socket not yet open does
  // nothing, so look.
  if (c->closed_by_us) co_return disconnected(*s);
  tune_socket(c->tcp().socket());

  SSL* ssl = c->stream.native_handle();
  if (auto named = expect_server_name(ssl, s->address); !named) co_return named.error();

  c->tcp().expires_after(limits.handshake_timeout);
  auto [hec] = co_await c->stream.async_handshake(asio::ssl::stream_base::client, nothrow);
  if (hec) co_return io_error(*s, hec, "TLS handshake with", limits.handshake_timeout, c.get());
  s->tls_version = SSL_get_version(ssl);
  if (s->unverified) s->peer_chain = chain_pem(ssl);
  co_return c;
}

template <class Fields>
void heard_date(const State& s, const Fields& response) {
  if (!s.on_date) return;
  const auto date = response[http::field::date];
  if (!date.empty()) s.on_date(std::string_view(date.data(), date.size()));
}

http::request<http::string_body> make_message(const HttpRequest& r, const State& s) {
  http::request<http::string_body> m{r.verb, s.address.base_path + r.target, 11};
  m.set(http::field::host, s.address.host_header);
  m.set(http::field::user_agent, "tetherd/" TETHERD_VERSION);
  m.set(http::field::accept, "application/json");
  if (!s.token.empty()) m.set(http::field::authorization, "Bearer " + s.token);
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

awaitable<ApiResult<HttpResponse>> send_on(std::shared_ptr<State> s, HttpRequest request) {
  const auto message = make_message(request, *s);
  const auto& limits = s->limits;
  for (int attempt = 0;; ++attempt) {
    auto c = take_idle(*s);
    if (!c) {
      auto fresh = co_await connect(s);
      if (!fresh) co_return fresh.error();
      c = std::move(*fresh);
    }
    const bool may_retry = c->reused && attempt == 0 && request.verb != http::verb::post;

    c->tcp().expires_after(limits.write_timeout);
    auto [wec, written] = co_await http::async_write(c->stream, message, nothrow);
    if (wec && may_retry && stale_connection(wec)) {
      s->idle.clear();  // its siblings are likely as dead (a server restart)
      continue;
    }
    if (wec) co_return io_error(*s, wec, "sending a request to", limits.write_timeout, c.get());

    http::response_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
    parser.body_limit(limits.max_body_bytes);
    c->tcp().expires_after(limits.read_timeout);
    auto [rec, read] = co_await http::async_read(c->stream, c->buffer, parser, nothrow);
    if (rec && may_retry && read == 0 && stale_connection(rec)) {
      s->idle.clear();
      continue;
    }
    if (rec) co_return io_error(*s, rec, "reading the response from", limits.read_timeout, c.get());

    auto& res = parser.get();
    HttpResponse out;
    out.status = res.result_int();
    out.retry_after = std::string(res[http::field::retry_after]);
    heard_date(*s, res);
    out.body = std::move(res.body());
    if (parser.keep_alive()) keep_idle(*s, std::move(c));
    co_return out;
  }
}

awaitable<ApiResult<void>> stream_on(std::shared_ptr<State> s, HttpRequest request, Duration idle,
                                     HttpsClient::BodySink sink, std::function<void()> on_open,
                                     HttpsClient::Cut on_cut) {
  auto fresh = co_await connect(s);
  if (!fresh) co_return fresh.error();
  auto c = std::move(*fresh);
  // The owner's cut closes this connection while the stream runs, and
  // nothing after (the flag falls with this frame).
  auto running = std::make_shared<bool>(true);
  struct Over {
    std::shared_ptr<bool> running;
    ~Over() { *running = false; }
  } over{running};
  if (on_cut)
    on_cut([running, raw = c.get()] {
      if (*running) raw->close();
    });
  const auto& limits = s->limits;
  const auto message = make_message(request, *s);
  c->tcp().expires_after(limits.write_timeout);
  auto [wec, written] = co_await http::async_write(c->stream, message, nothrow);
  if (wec) co_return io_error(*s, wec, "sending a request to", limits.write_timeout, c.get());

  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
  parser.body_limit(boost::none);  // a watch is endless; the sink bounds each event
  c->tcp().expires_after(limits.read_timeout);
  auto [hec, hread] = co_await http::async_read_header(c->stream, c->buffer, parser, nothrow);
  if (hec) co_return io_error(*s, hec, "reading the response from", limits.read_timeout, c.get());
  heard_date(*s, parser.get());

  if (parser.get().result() != http::status::ok) {
    const unsigned status = parser.get().result_int();
    const std::string retry_after(parser.get()[http::field::retry_after]);
    http::response_parser<http::string_body> body_parser(std::move(parser));
    body_parser.body_limit(limits.max_body_bytes);
    auto [bec, bread] = co_await http::async_read(c->stream, c->buffer, body_parser, nothrow);
    if (bec) co_return io_error(*s, bec, "reading the response from", limits.read_timeout, c.get());
    co_return error_from_response(status, body_parser.get().body(), retry_after);
  }

  if (on_open) on_open();
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
    if (!ec) continue;
    if (c->closed_by_us) co_return disconnected(*s);
    if (ec == beast::error::timeout) {
      ApiError e = io_error(*s, ec, "watching", idle, c.get());
      e.message = "watch on " + s->server + " idle: nothing complete for " + seconds_text(idle) +
                  " (a stalled or dripping server, or a dead connection)";
      co_return e;
    }
    if (ec == http::error::partial_message || ec == asio::error::eof ||
        ec == http::error::end_of_stream || ec == asio::ssl::error::stream_truncated)
      co_return ApiError{ErrorKind::kTransport,
                         0,
                         {},
                         "watch on " + s->server + ": connection closed mid-stream",
                         std::nullopt};
    co_return io_error(*s, ec, "watching", idle, c.get());
  }
  co_return ApiResult<void>{};
}

awaitable<ApiResult<HttpResponse>> refused_after_close(std::shared_ptr<State> s) {
  co_return disconnected(*s);
}

// An answer's Date is heard as a socket's is; a client closed meanwhile
// tells no one (close() has let go of the listener).
awaitable<ApiResult<HttpResponse>> send_in_process(std::shared_ptr<State> s, HttpRequest request) {
  auto answer = co_await s->exchange(std::move(request));
  if (answer && !answer->date.empty() && s->on_date) s->on_date(answer->date);
  co_return answer;
}

}  // namespace

awaitable<ApiResult<HttpResponse>> HttpsClient::send(HttpRequest request) {
  if (state_->exchange) {
    if (state_->closed) return refused_after_close(state_);
    return send_in_process(state_, std::move(request));
  }
  return send_on(state_, std::move(request));
}

namespace {
awaitable<ApiResult<void>> not_in_process(std::string server) {
  co_return invalid(server + ": watches are not served in process");
}

awaitable<ApiResult<void>> stream_in_process(std::shared_ptr<State> s, HttpRequest request,
                                             Duration idle, HttpsClient::BodySink sink,
                                             std::function<void()> on_open,
                                             HttpsClient::Cut owner_cut) {
  if (s->closed) co_return disconnected(*s);
  const std::uint64_t id = ++s->watches_in_process;
  std::weak_ptr<State> weak = s;
  // The owner's cut is this watch's alone: told once, as disconnect_all()
  // tells it. (The in-process watch registers its cut before it first
  // suspends, as the simulations' do; a cut before that would be lost.)
  if (owner_cut)
    owner_cut([weak, id] {
      auto state = weak.lock();
      if (!state) return;
      auto it = state->cuts.find(id);
      if (it == state->cuts.end()) return;
      auto cut = std::move(it->second);
      state->cuts.erase(it);
      if (cut) cut();
    });
  HttpsClient::Cut on_cut = [weak, id](std::function<void()> cut) {
    if (auto state = weak.lock()) state->cuts[id] = std::move(cut);
  };
  auto ended = co_await s->watch_exchange(std::move(request), idle, std::move(sink),
                                          std::move(on_open), std::move(on_cut));
  s->cuts.erase(id);
  co_return ended;
}
}  // namespace

awaitable<ApiResult<void>> HttpsClient::stream(HttpRequest request, Duration idle, BodySink sink,
                                               std::function<void()> on_open, Cut on_cut) {
  if (state_->watch_exchange)
    return stream_in_process(state_, std::move(request), idle, std::move(sink), std::move(on_open),
                             std::move(on_cut));
  if (state_->exchange) return not_in_process(state_->server);
  return stream_on(state_, std::move(request), idle, std::move(sink), std::move(on_open),
                   std::move(on_cut));
}

}  // namespace tetherd::kube
