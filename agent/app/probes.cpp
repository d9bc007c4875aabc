#include "agent/app/probes.h"

#include <array>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/url/parse.hpp>

#include "agent/core/node_status.h"
#include "agent/core/timer.h"

namespace tetherd {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using asio::awaitable;
using tcp = asio::ip::tcp;
using Deadline = std::chrono::steady_clock::time_point;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

ProbeResult make(ConditionStatus status, std::string reason, std::string message) {
  return ProbeResult{status, std::move(reason), std::move(message), {}};
}

ProbeResult failed(std::string reason, std::string message) {
  return make(ConditionStatus::kFalse, std::move(reason), std::move(message));
}

std::string duration_text(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// A peer's text in a message: control characters become spaces, runs of
// spaces one, then at most `max` bytes of valid UTF-8.
std::string excerpt(std::string_view text, std::size_t max = kProbeBodyExcerptBytes) {
  std::string out;
  for (char c : text.substr(0, max * 2)) {
    const bool space = static_cast<unsigned char>(c) < 0x20 || c == 0x7f || c == ' ';
    if (!space)
      out += c;
    else if (!out.empty() && out.back() != ' ')
      out += ' ';
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  return bounded_text(out, max);
}

ProbeResult timed_out(const std::string& what, Duration budget, std::string_view doing = {}) {
  return failed("Timeout",
                "no answer from " + what + " within " + duration_text(budget) + std::string(doing));
}

std::string endpoint_text(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

struct HttpUrl {
  std::string host;  // without brackets
  std::uint16_t port = 80;
  std::string target;
  std::string host_header;
};

Result<HttpUrl> parse_http_url(std::string_view text) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  auto url = boost::urls::parse_uri(text);
  if (!url) return make_error(quoted + " is not a URL: " + url.error().message());
  if (url->scheme_id() != boost::urls::scheme::http)
    return make_error(quoted + " is not an http:// URL; the probe speaks plain HTTP (linkerd's " +
                      "probe port 4191 has no TLS)");
  if (url->has_userinfo()) return make_error(quoted + ": credentials in a URL are refused");
  HttpUrl out;
  out.host = url->host_address();
  if (out.host.empty()) return make_error(quoted + " has no host");
  if (url->has_port()) {
    if (url->port_number() == 0) return make_error(quoted + " has a bad port");
    out.port = url->port_number();
  }
  out.target = url->encoded_path().empty() ? "/" : std::string(url->encoded_path());
  if (url->has_query()) out.target += "?" + std::string(url->encoded_query());
  out.host_header = url->encoded_host_and_port();
  return out;
}

// getaddrinfo runs on Asio's resolver thread, which cancel() cannot stop:
// the wait is on a timer the answer cancels, and on the deadline the lookup
// is left to finish into state it shares, unobserved.
struct Lookup {
  explicit Lookup(const asio::any_io_executor& e) : resolver(e), wake(e) {}
  tcp::resolver resolver;
  asio::steady_timer wake;
  boost::system::error_code ec;
  std::vector<tcp::endpoint> endpoints;
  bool done = false;
};

awaitable<std::pair<boost::system::error_code, std::vector<tcp::endpoint>>> resolve(
    asio::any_io_executor executor, std::string host, std::uint16_t port, Deadline deadline) {
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(host, ec);
  if (!ec) co_return std::pair{ec, std::vector{tcp::endpoint(ip, port)}};
  auto lookup = std::make_shared<Lookup>(executor);
  lookup->wake.expires_at(deadline);
  lookup->resolver.async_resolve(
      host, std::to_string(port),
      [lookup](const boost::system::error_code& e, const tcp::resolver::results_type& results) {
        lookup->ec = e;
        for (const auto& entry : results)
          lookup->endpoints.push_back(entry.endpoint());
        lookup->done = true;
        lookup->wake.cancel();
      });
  co_await lookup->wake.async_wait(nothrow);
  if (!lookup->done)
    co_return std::pair{boost::system::error_code(beast::error::timeout),
                        std::vector<tcp::endpoint>{}};
  co_return std::pair{lookup->ec, std::move(lookup->endpoints)};
}

// Resolve and connect, both before `deadline`. Nothing on success.
awaitable<std::optional<ProbeResult>> connect(beast::tcp_stream& stream, const std::string& host,
                                              std::uint16_t port, Deadline deadline,
                                              const std::string& what, Duration budget) {
  auto [rec, endpoints] = co_await resolve(stream.get_executor(), host, port, deadline);
  if (rec == beast::error::timeout) co_return timed_out(what, budget, " (resolving " + host + ")");
  if (rec) co_return failed("Unreachable", "cannot resolve " + host + ": " + rec.message());
  stream.expires_at(deadline);
  auto [cec, endpoint] = co_await stream.async_connect(endpoints, nothrow);
  if (cec == beast::error::timeout) co_return timed_out(what, budget);
  if (cec == asio::error::connection_refused)
    co_return failed("Unreachable",
                     endpoint_text(host, port) + " refused the connection (nothing listens there)");
  if (cec)
    co_return failed("Unreachable",
                     "cannot connect to " + endpoint_text(host, port) + ": " + cec.message());
  co_return std::nullopt;
}

// GET, bounded as a whole by `deadline`; see http_get in probes.h.
awaitable<std::optional<ProbeResult>> get(asio::any_io_executor executor, const std::string& host,
                                          std::uint16_t port, const std::string& target,
                                          const std::string& host_header, const std::string& what,
                                          Duration budget, const HttpBodySink& take) {
  const Deadline deadline = std::chrono::steady_clock::now() + budget;
  beast::tcp_stream stream(executor);
  if (auto failure = co_await connect(stream, host, port, deadline, what, budget))
    co_return std::move(*failure);

  http::request<http::empty_body> request{http::verb::get, target, 11};
  request.set(http::field::host, host_header);
  request.set(http::field::user_agent, "tetherd/" TETHERD_VERSION);
  request.keep_alive(false);
  stream.expires_at(deadline);
  auto [wec, written] = co_await http::async_write(stream, request, nothrow);
  if (wec == beast::error::timeout) co_return timed_out(what, budget);
  if (wec) co_return failed("Unreachable", "sending the request to " + what + ": " + wec.message());

  // Bounded twice: the parser refuses longer headers, and the buffer cannot grow past them.
  beast::flat_buffer buffer(kProbeMaxHeaderBytes + kProbeMaxBodyBytes);
  http::response_parser<http::buffer_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(kProbeMaxHeaderBytes));
  parser.body_limit(boost::none);  // the sink decides how much it reads
  auto [hec, header_bytes] = co_await http::async_read_header(stream, buffer, parser, nothrow);
  if (hec == beast::error::timeout) co_return timed_out(what, budget);
  if (hec == http::error::header_limit || hec == http::error::buffer_overflow)
    co_return failed("NotReady", what + " answered with headers over " +
                                     std::to_string(kProbeMaxHeaderBytes) + " bytes");
  if (hec == http::error::end_of_stream || hec == http::error::partial_message ||
      hec == asio::error::eof || hec == asio::error::connection_reset)
    co_return failed("Unreachable", what + " closed the connection without an answer");
  if (hec.category() == boost::system::error_code(http::error::bad_version).category())
    co_return failed("NotReady", what + " did not answer HTTP: " + hec.message());
  if (hec)
    co_return failed("Unreachable", "reading the answer from " + what + ": " + hec.message());

  const unsigned status = parser.get().result_int();
  if (!take(status, {})) co_return std::nullopt;
  // An endless or slow body is cut where the sink says, or at the deadline.
  std::array<char, 4096> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    auto [bec, n] = co_await http::async_read_some(stream, buffer, parser, nothrow);
    const std::size_t got = chunk.size() - parser.get().body().size;
    if (got > 0 && !take(status, std::string_view(chunk.data(), got))) co_return std::nullopt;
    if (bec == beast::error::timeout) co_return timed_out(what, budget, " (reading the answer)");
    if (bec && bec != http::error::need_buffer)
      co_return failed("Unreachable", "reading the answer from " + what + ": " + bec.message());
  }
  co_return std::nullopt;
}

awaitable<ProbeResult> http_ready(asio::any_io_executor executor, std::string url,
                                  Duration budget) {
  auto parsed = parse_http_url(url);
  if (!parsed) co_return failed("BadURL", parsed.error().message);
  const HttpUrl& u = *parsed;
  // What the server says it is waiting for, when it is not ready: the
  // status alone decides, the body is an excerpt for the message.
  unsigned status = 0;
  std::string body;
  auto failure = co_await get(executor, u.host, u.port, u.target, u.host_header, url, budget,
                              [&](unsigned s, std::string_view piece) {
                                status = s;
                                if (s >= 200 && s < 300) return false;
                                body.append(piece.substr(0, kProbeMaxBodyBytes - body.size()));
                                return body.size() < kProbeMaxBodyBytes;
                              });
  const std::string head = "HTTP " + std::to_string(status) + " from " + url;
  if (status >= 200 && status < 300) co_return make(ConditionStatus::kTrue, "Ready", head);
  // A body cut by the deadline or the peer still says what it said.
  if (failure && status == 0) co_return std::move(*failure);
  const std::string said = excerpt(body);
  co_return failed("NotReady", head + (said.empty() ? std::string(" (no body)") : ": " + said));
}

awaitable<ProbeResult> tcp_connect(asio::any_io_executor executor, std::string host,
                                   std::uint16_t port, Duration budget) {
  const Deadline deadline = std::chrono::steady_clock::now() + budget;
  beast::tcp_stream stream(executor);
  const std::string where = endpoint_text(host, port);
  if (auto failure = co_await connect(stream, host, port, deadline, where, budget))
    co_return std::move(*failure);
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return make(ConditionStatus::kTrue, "Listening", where + " accepts connections");
}

template <class Probe>
awaitable<ProbeResult> timed(Probe probe) {
  const auto started = std::chrono::steady_clock::now();
  ProbeResult result = co_await std::move(probe);
  result.took = std::chrono::steady_clock::now() - started;
  co_return result;
}

// The gateway's verdict from its two parts; a failing part names itself.
ProbeResult gateway_verdict(const ProbeResult& ready, const ProbeResult& port,
                            std::uint16_t gateway_port) {
  const std::string port_part = "gateway port " + std::to_string(gateway_port) + ": ";
  if (ready.status == ConditionStatus::kTrue && port.status == ConditionStatus::kTrue)
    return make(ConditionStatus::kTrue, "Ready", ready.message + "; " + port.message);
  std::string message;
  if (ready.status != ConditionStatus::kTrue) message = "readiness: " + ready.message;
  if (port.status != ConditionStatus::kTrue)
    message += (message.empty() ? "" : "; ") + port_part + port.message;
  const bool any_false =
      ready.status == ConditionStatus::kFalse || port.status == ConditionStatus::kFalse;
  const ConditionStatus status = any_false ? ConditionStatus::kFalse : ConditionStatus::kUnknown;
  // The readiness check speaks for the gateway's proxy; the port's reason
  // says it is the port, so "Unreachable" is not read as the proxy's.
  const bool ready_decides =
      ready.status == (any_false ? ConditionStatus::kFalse : ConditionStatus::kUnknown);
  return make(status, ready_decides ? ready.reason : "Gateway" + port.reason, std::move(message));
}

// A node name in a URL path. Kubernetes' names are [a-z0-9.-]; anything
// else is escaped rather than allowed to change the path.
std::string path_segment(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string{};
}

// A transport failure of a k3s request.
ProbeResult k3s_unreachable(const kube::ApiError& error) {
  switch (error.kind) {
    case kube::ErrorKind::kTimeout:
      return failed("Timeout", "k3s API: " + error.message);
    case kube::ErrorKind::kTooLarge:
    case kube::ErrorKind::kDecode:
      return make(ConditionStatus::kUnknown, "NodeStatusUnknown", "k3s API: " + error.message);
    default:
      return failed("Unreachable", "k3s API: " + kube::describe(error));
  }
}

ProbeResult k3s_forbidden(const std::string& server, const kube::HttpResponse& response,
                          const std::string& target) {
  const auto error = kube::error_from_response(response.status, response.body, {});
  return failed("Forbidden", "GET " + target + " on " + server + ": " + kube::describe(error) +
                                 "; the cluster kubeconfig's user needs get on nodes (k3s's admin "
                                 "kubeconfig, /etc/rancher/k3s/k3s.yaml, has it)");
}

ProbeResult readyz_verdict(const std::string& server, const kube::HttpResponse& response) {
  if (response.status == 401 || response.status == 403)
    return k3s_forbidden(server, response, "/readyz");
  // /readyz answers text ("[-]etcd failed: ..."); a proxy may answer a Status.
  const auto error = kube::error_from_response(response.status, response.body, {});
  const std::string said = error.reason.empty()
                               ? "HTTP " + std::to_string(response.status) + ": " +
                                     (response.body.empty() ? "(no body)" : excerpt(response.body))
                               : kube::describe(error);
  return failed("APIServerNotReady", "GET /readyz on " + server + ": " + said);
}

ProbeResult node_verdict(const std::string& server, const std::string& node,
                         const kube::HttpResponse& response, const std::string& target) {
  if (response.status == 404)
    return failed("NodeNotFound", "k3s has no node \"" + node + "\" (GET " + target +
                                      ": 404); node.name must be the k3s node's name, as "
                                      "`kubectl get nodes` lists it");
  if (response.status == 401 || response.status == 403)
    return k3s_forbidden(server, response, target);
  if (response.status != 200)
    return failed("APIServerNotReady", "GET " + target + " on " + server + ": " +
                                           kube::describe(kube::error_from_response(
                                               response.status, response.body, {})));
  const auto unknown = [&](std::string_view why) {
    return make(ConditionStatus::kUnknown, "NodeStatusUnknown",
                "node \"" + node + "\": " + std::string(why));
  };
  boost::system::error_code ec;
  const json::value value = json::parse(response.body, ec, {}, kube::api_json_options());
  if (ec || !value.is_object()) return unknown("the answer is not a JSON object");
  const json::value* status = value.get_object().if_contains("status");
  const json::value* conditions = status != nullptr && status->is_object()
                                      ? status->get_object().if_contains("conditions")
                                      : nullptr;
  if (conditions == nullptr || !conditions->is_array())
    return unknown("no status.conditions (the kubelet has not reported yet)");
  for (const json::value& c : conditions->get_array()) {
    if (!c.is_object() || string_at(c.get_object(), "type") != "Ready") continue;
    const std::string ready = string_at(c.get_object(), "status");
    const std::string reason = excerpt(string_at(c.get_object(), "reason"), 128);
    const std::string message = excerpt(string_at(c.get_object(), "message"), 512);
    const std::string kubelet = reason + (reason.empty() || message.empty() ? "" : ": ") + message;
    const std::string said = kubelet.empty() ? std::string{} : " (" + kubelet + ")";
    if (ready == "True")
      return make(ConditionStatus::kTrue, "Ready", "node \"" + node + "\" is Ready" + said);
    if (ready == "False" || ready == "Unknown")
      return failed("NodeNotReady", "node \"" + node + "\" is not Ready: Ready=" + ready + said);
    return unknown("condition Ready has status \"" + excerpt(ready, 32) + "\"");
  }
  return unknown("no Ready condition (the kubelet has not reported yet)");
}

// Shared by probe_k3s and the check it starts: on the deadline the probe
// answers and abandons the check, which then touches nothing but this.
struct K3sCheck {
  K3sCheck(const asio::any_io_executor& e, const Clock& clock) : wake(e, clock) {}
  Timer wake;
  std::optional<ProbeResult> result;
  bool abandoned = false;

  void finish(ProbeResult r) {
    result = std::move(r);
    wake.cancel();
  }
};

awaitable<void> check_k3s(kube::HttpsClient& http, std::string node,
                          std::shared_ptr<K3sCheck> check) {
  const std::string server = http.server();
  kube::HttpRequest readyz;
  readyz.target = "/readyz";
  auto ready = co_await http.send(std::move(readyz));
  if (check->abandoned) co_return;  // `http` may be gone
  if (!ready) co_return check->finish(k3s_unreachable(ready.error()));
  if (ready->status != 200) co_return check->finish(readyz_verdict(server, *ready));

  kube::HttpRequest get;
  get.target = "/api/v1/nodes/" + path_segment(node);
  const std::string target = get.target;
  auto answer = co_await http.send(std::move(get));
  if (check->abandoned) co_return;
  if (!answer) co_return check->finish(k3s_unreachable(answer.error()));
  check->finish(node_verdict(server, node, *answer, target));
}

awaitable<ProbeResult> k3s(kube::HttpsClient& http, std::string node, Duration budget,
                           const Clock& clock) {
  auto executor = co_await asio::this_coro::executor;
  auto check = std::make_shared<K3sCheck>(executor, clock);
  check->wake.expires_after(budget);
  asio::co_spawn(executor, check_k3s(http, node, check), asio::detached);
  // co_spawn starts the check inline: one that never waited (a client
  // that fails at once) has finished already, and its cancel found no
  // wait to end.
  if (!check->result) co_await check->wake.async_wait(nothrow);
  if (check->result) co_return std::move(*check->result);
  check->abandoned = true;
  // Ends the requests in flight now, rather than at the client's own
  // (longer) timeouts: their sockets are closed under them.
  http.disconnect_all();
  co_return timed_out("the k3s API " + http.server(), budget);
}

}  // namespace

awaitable<ProbeResult> probe_http_ready(asio::any_io_executor executor, std::string url,
                                        Duration deadline) {
  return timed(http_ready(std::move(executor), std::move(url), deadline));
}

awaitable<std::optional<ProbeResult>> http_get(asio::any_io_executor executor, std::string host,
                                               std::uint16_t port, std::string target,
                                               Duration deadline, HttpBodySink take) {
  const std::string where = endpoint_text(host, port);
  co_return co_await get(std::move(executor), host, port, target, where, "http://" + where + target,
                         deadline, take);
}

awaitable<ProbeResult> probe_tcp_connect(asio::any_io_executor executor, std::string host,
                                         std::uint16_t port, Duration deadline) {
  return timed(tcp_connect(std::move(executor), std::move(host), port, deadline));
}

awaitable<ProbeResult> probe_linkerd_gateway(asio::any_io_executor executor, std::string ready_url,
                                             std::uint16_t gateway_port, Duration deadline) {
  const auto started = std::chrono::steady_clock::now();
  auto parsed = parse_http_url(ready_url);
  if (!parsed) {
    ProbeResult bad = failed("BadURL", parsed.error().message);
    bad.took = std::chrono::steady_clock::now() - started;
    co_return bad;
  }
  // Both within the same deadline, so the whole probe is within it.
  auto ready = http_ready(executor, std::move(ready_url), deadline);
  auto port = tcp_connect(executor, parsed->host, gateway_port, deadline);
  auto [ready_result, port_result] = co_await (std::move(ready) && std::move(port));
  ProbeResult result = gateway_verdict(ready_result, port_result, gateway_port);
  result.took = std::chrono::steady_clock::now() - started;
  co_return result;
}

awaitable<ProbeResult> probe_k3s(kube::HttpsClient& http, std::string node_name, Duration deadline,
                                 const Clock& clock) {
  return timed(k3s(http, std::move(node_name), deadline, clock));
}

}  // namespace tetherd
