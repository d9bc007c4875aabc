#pragma once
// HTTPS to one Kubernetes API server, on Boost.Beast and OpenSSL 3, the way
// the Beast async-ssl client examples do it: TLS 1.2 at least (1.3 when the
// server has it), SNI, the server's certificate verified against the
// kubeconfig's CA and its name (DNS or IP) always checked, the client
// certificate presented, and a deadline before every step. Connections are
// kept alive and reused; a watch gets one of its own.
//
// Coroutines on the caller's executor; no exceptions for anything the
// network can do (errors are ApiResult values).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/verb.hpp>

#include "agent/config/kubeconfig.h"
#include "agent/kube/api_error.h"

namespace tetherd::kube {

struct ClientLimits {
  Duration resolve_timeout = std::chrono::seconds(10);
  Duration connect_timeout = std::chrono::seconds(10);
  Duration handshake_timeout = std::chrono::seconds(10);
  Duration write_timeout = std::chrono::seconds(10);
  // The whole response of an ordinary request, headers and body: a server
  // that drips one byte a second does not hold tetherd for ever.
  Duration read_timeout = std::chrono::seconds(30);
  std::size_t max_header_bytes = 64 << 10;
  std::size_t max_body_bytes = 4 << 20;  // kube-apiserver's own request limit is 3 MiB
  std::size_t max_idle_connections = 2;
};

// Where the kubeconfig's server URL points.
struct ServerAddress {
  std::string host;  // without brackets for IPv6
  std::uint16_t port = 443;
  std::string base_path;    // "" or "/k8s/clusters/c-x" (a proxy's prefix)
  std::string verify_name;  // tls-server-name, else host: checked against the certificate
  bool verify_name_is_ip = false;
  std::string sni;  // empty when the name is an IP (RFC 6066 forbids IP literals)
  std::string host_header;
};

ApiResult<ServerAddress> parse_server_address(std::string_view server_url,
                                              std::string_view tls_server_name);

// The TLS side of a kubeconfig: its CA (or the system's), its client
// certificate and key, checked to match. Also for the tunnel's connections,
// which present the same credentials to another server.
ApiResult<std::shared_ptr<boost::asio::ssl::context>> client_context(const Kubeconfig& kubeconfig);
// Before a handshake: SNI, and the name (DNS or IP) the server's
// certificate must carry, always checked.
ApiResult<void> expect_server_name(SSL* ssl, const ServerAddress& address);

struct HttpRequest {
  boost::beast::http::verb verb = boost::beast::http::verb::get;
  std::string target;  // path and query, below the server's base path
  std::string body;
  std::string content_type;
};

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::string retry_after;
  // In process only: the answer's Date header, told to on_server_date() as
  // a real answer's is ("" for none). On the wire the header is read as it
  // comes and this stays empty.
  std::string date;
};

class HttpsClient {
 public:
  // Checks the kubeconfig's CA, certificate and key (a key that does not
  // match its certificate is an error here, not at the first handshake).
  static ApiResult<std::unique_ptr<HttpsClient>> create(boost::asio::any_io_executor executor,
                                                        const Kubeconfig& kubeconfig,
                                                        ClientLimits limits = {});
  // kubeadm's discovery, before anything is trusted: a client that verifies
  // nothing about the server and sends no credentials (no certificate, no
  // token), and records the chain each handshake presented (peer_chain()),
  // for the caller to match against a pinned CA before it trusts anything.
  // What it reads is public by construction (an anonymous GET).
  static ApiResult<std::unique_ptr<HttpsClient>> create_unverified(
      boost::asio::any_io_executor executor, std::string_view server_url, ClientLimits limits = {});
  // New credentials for the same server (a renewed client certificate, a
  // new token, another CA): new connections use them; the idle ones are
  // closed; a request or watch under way keeps its connection to its end,
  // so a renewal holds the watch. A kubeconfig for another server, or
  // credentials that do not load, are an error and change nothing.
  ApiResult<void> use_credentials(const Kubeconfig& kubeconfig);

  // In process: every request is answered by `exchange`, with no socket
  // and no TLS. For the simulations (test/simulation/), which run the app
  // layer on simulated time against the test API server's REST semantics;
  // the daemon never makes one. Watches are served by `watch` when given
  // (stream() fails without one).
  using Exchange = std::function<boost::asio::awaitable<ApiResult<HttpResponse>>(HttpRequest)>;
  using BodySink = std::function<ApiResult<bool>(std::string_view)>;
  // A watch in process: stream()'s arguments, and `on_cut`, which the watch
  // calls once to be told of a disconnect_all() or close() while it runs
  // (it must then end, with a transport error, as a cut socket does). The
  // watch keeps its own idle deadline, on its own (simulated) clock.
  using Cut = std::function<void(std::function<void()> cut)>;
  using WatchExchange = std::function<boost::asio::awaitable<ApiResult<void>>(
      HttpRequest request, Duration idle, BodySink sink, std::function<void()> on_open,
      Cut on_cut)>;
  // `credentials` hears the kubeconfig of each use_credentials() that took
  // (the simulated server judges the certificate the client presents).
  static std::unique_ptr<HttpsClient> create_in_process(
      boost::asio::any_io_executor executor, std::string server, Exchange exchange,
      WatchExchange watch = {}, std::function<void(const Kubeconfig&)> credentials = {});

  // Closes every connection. Calls in flight may outlive the client: they
  // hold its state, and end with a "Disconnected" transport error.
  ~HttpsClient();
  HttpsClient(const HttpsClient&) = delete;
  HttpsClient& operator=(const HttpsClient&) = delete;

  // One request and its whole response (bounded in size and time), on a
  // kept-alive connection when one is idle. A kept-alive connection the
  // server closed meanwhile is retried once on a fresh one, except for POST.
  boost::asio::awaitable<ApiResult<HttpResponse>> send(HttpRequest request);

  // BodySink (above): called with each piece of a streamed 200 body;
  // returns whether a whole unit (a watch event) completed, which pushes
  // the idle deadline back, or an error that ends the stream.
  // A long response (a watch) on a connection of its own. A non-200 answer
  // is an error decoded from its Status body. A stream that completes no unit
  // within `idle` is dead: silent and dripping servers alike.
  // `on_open` hears the 200: the server has accepted the stream.
  // `on_cut`, when given, is called once the stream has a connection, with
  // a function that ends this stream alone (as a cut socket: a transport
  // error) and does nothing once the stream is over: for the owner of one
  // stream on a client others share, which disconnect_all() would cut too.
  boost::asio::awaitable<ApiResult<void>> stream(HttpRequest request, Duration idle, BodySink sink,
                                                 std::function<void()> on_open = {},
                                                 Cut on_cut = {});

  // Closes every connection now, idle and busy; what was in flight ends
  // with a transport error. For a resume from suspend: the old sockets are
  // dead, and TCP would take many minutes to say so.
  void disconnect_all();
  // disconnect_all(), and every request begun after it fails at once the
  // same way: for a stop. A request whose answer had already arrived when
  // this ran still ends with it, and its owner may go on to the next step
  // without looking at its own stop flag; that step must not open a
  // connection the stop did not see (and wait out its deadline).
  void close();

  // Hears the Date header of every answer as it arrives (a witness of the
  // server's clock: core/clock_jump.h's ClockWitness).
  void on_server_date(std::function<void(std::string_view)> listener);

  const std::string& server() const;
  std::size_t connections_opened() const;
  // The protocol of the last handshake, e.g. "TLSv1.3" (for status output).
  const std::string& tls_version() const;
  // The certificates (PEM, the server's first) of the last handshake of a
  // create_unverified() client; empty for a verifying one.
  const std::vector<std::string>& peer_chain() const;

  struct State;

 private:
  explicit HttpsClient(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

// How a part makes its client from a kubeconfig: HttpsClient::create when
// empty; the simulations (test/simulation/) answer in process.
using ClientMaker = std::function<ApiResult<std::unique_ptr<HttpsClient>>(const Kubeconfig&)>;

}  // namespace tetherd::kube
