// The HTTP readiness, TCP connect and linkerd gateway probes against tiny
// servers on 127.0.0.1 (port 0) written here, on the probes' own event loop:
// answers, silence, refusal and an endless body. A deadline test waits on a
// server that never answers; nothing sleeps.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include "agent/app/probes.h"

namespace tetherd {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr auto kShortDeadline = 200ms;
// Long enough never to pass on a loaded machine: the tests that use it
// expect an answer, not a timeout.
constexpr auto kDeadline = 10s;

enum class Behaviour {
  kAnswer,   // read the request, send `answer`, close
  kSilent,   // accept, read nothing, answer nothing, keep the connection open
  kEndless,  // read the request, send `answer` as the head, then body bytes for ever
};

// One listening socket and what it does with each connection.
class TinyServer {
 public:
  TinyServer(asio::io_context& io, Behaviour behaviour, std::string answer = {})
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        behaviour_(behaviour),
        answer_(std::move(answer)) {
    asio::co_spawn(io, accept_loop(), asio::detached);
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string url(const std::string& path = "/ready") const {
    return "http://127.0.0.1:" + std::to_string(port()) + path;
  }
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(nothrow);
      if (ec) co_return;
      if (behaviour_ == Behaviour::kSilent) {
        held_.push_back(std::make_unique<tcp::socket>(std::move(socket)));
        continue;
      }
      auto session = serve(std::move(socket));
      asio::co_spawn(acceptor_.get_executor(), std::move(session), asio::detached);
    }
  }

  awaitable<void> serve(tcp::socket socket) {
    std::string request;
    auto [rec, n] = co_await asio::async_read_until(socket, asio::dynamic_buffer(request, 8 << 10),
                                                    "\r\n\r\n", nothrow);
    if (rec) co_return;
    requests_.push_back(request.substr(0, n));
    auto [wec, written] = co_await asio::async_write(socket, asio::buffer(answer_), nothrow);
    if (wec || behaviour_ == Behaviour::kAnswer) co_return;
    const std::string more(1024, 'x');
    for (;;) {  // until the probe hangs up
      auto [ec, sent] = co_await asio::async_write(socket, asio::buffer(more), nothrow);
      if (ec) co_return;
      endless_bytes_sent_ += sent;
    }
  }

  tcp::acceptor acceptor_;
  Behaviour behaviour_;
  std::string answer_;
  std::vector<std::string> requests_;
  std::vector<std::unique_ptr<tcp::socket>> held_;
  std::size_t endless_bytes_sent_ = 0;
};

// A port nothing listens on: bound by us a moment ago, then closed.
std::uint16_t closed_port(asio::io_context& io) {
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

class ProbeTest : public testing::Test {
 protected:
  // Runs the probe on the loop (with the servers) until it answers. A guard
  // timer fails a hang instead of blocking the test run.
  ProbeResult run(awaitable<ProbeResult> probe) {
    std::optional<ProbeResult> result;
    asio::steady_timer guard(io_, 30s);
    guard.async_wait([this](boost::system::error_code ec) {
      if (!ec) io_.stop();
    });
    asio::co_spawn(io_, std::move(probe), [&](std::exception_ptr e, ProbeResult r) {
      EXPECT_FALSE(e) << "a probe must not throw";
      result = std::move(r);
      io_.stop();
    });
    io_.restart();
    io_.run();
    EXPECT_TRUE(result) << "the probe did not finish (a hang)";
    return result.value_or(ProbeResult{});
  }

  awaitable<ProbeResult> http(std::string url, Duration deadline = kDeadline) {
    return probe_http_ready(io_.get_executor(), std::move(url), deadline);
  }
  awaitable<ProbeResult> gateway(std::string url, std::uint16_t port,
                                 Duration deadline = kDeadline) {
    return probe_linkerd_gateway(io_.get_executor(), std::move(url), port, deadline);
  }

  asio::io_context io_;  // first: outlives the servers and their sockets
};

const std::string kReady = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nready\n";

TEST_F(ProbeTest, TwoHundredIsReady) {
  TinyServer server(io_, Behaviour::kAnswer, kReady);
  const ProbeResult r = run(http(server.url()));
  EXPECT_EQ(r.status, ConditionStatus::kTrue) << r.message;
  EXPECT_EQ(r.reason, "Ready");
  EXPECT_EQ(r.message, "HTTP 200 from " + server.url());
  EXPECT_GT(r.took, Duration::zero());
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(server.requests()[0].starts_with("GET /ready HTTP/1.1\r\n")) << server.requests()[0];
  EXPECT_NE(server.requests()[0].find("Host: 127.0.0.1:" + std::to_string(server.port())),
            std::string::npos);
}

TEST_F(ProbeTest, HostNamesAreResolved) {
  TinyServer server(io_, Behaviour::kAnswer, kReady);
  const std::string url = "http://localhost:" + std::to_string(server.port()) + "/ready";
  const ProbeResult r = run(http(url));
  EXPECT_EQ(r.status, ConditionStatus::kTrue) << r.message;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_NE(server.requests()[0].find("Host: localhost:"), std::string::npos);
}

TEST_F(ProbeTest, ServiceUnavailableIsNotReadyWithTheBodySanitised) {
  const std::string body = "not ready:\r\n\twaiting\x01 for  identity\xff\n";
  TinyServer server(io_, Behaviour::kAnswer,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n" + body);
  const ProbeResult r = run(http(server.url("/ready?verbose")));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "NotReady");
  EXPECT_EQ(r.message, "HTTP 503 from " + server.url("/ready?verbose") +
                           ": not ready: waiting for identity\xEF\xBF\xBD");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_TRUE(server.requests()[0].starts_with("GET /ready?verbose HTTP/1.1\r\n"));
}

TEST_F(ProbeTest, EmptyErrorBodySaysSo) {
  TinyServer server(io_, Behaviour::kAnswer,
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
  const ProbeResult r = run(http(server.url()));
  EXPECT_EQ(r.reason, "NotReady");
  EXPECT_EQ(r.message, "HTTP 500 from " + server.url() + " (no body)");
}

TEST_F(ProbeTest, SilentServerTimesOutAtTheDeadline) {
  TinyServer server(io_, Behaviour::kSilent);
  const ProbeResult r = run(http(server.url(), kShortDeadline));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Timeout");
  EXPECT_EQ(r.message, "no answer from " + server.url() + " within 200ms");
  EXPECT_GE(r.took, kShortDeadline);
  EXPECT_LT(r.took, kDeadline) << "bounded by its deadline, not by TCP";
}

TEST_F(ProbeTest, ClosedPortIsUnreachable) {
  const std::uint16_t port = closed_port(io_);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/ready";
  const ProbeResult r = run(http(url));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Unreachable");
  EXPECT_EQ(r.message, "127.0.0.1:" + std::to_string(port) +
                           " refused the connection (nothing listens there)");
}

TEST_F(ProbeTest, EndlessErrorBodyIsCut) {
  TinyServer server(io_, Behaviour::kEndless, "HTTP/1.1 503 Service Unavailable\r\n\r\n");
  const ProbeResult r = run(http(server.url()));
  EXPECT_EQ(r.reason, "NotReady");
  const std::string head = "HTTP 503 from " + server.url() + ": ";
  ASSERT_TRUE(r.message.starts_with(head)) << r.message;
  EXPECT_LE(r.message.size() - head.size(), kProbeBodyExcerptBytes);
  EXPECT_TRUE(r.message.ends_with("\xE2\x80\xA6")) << "cut, and says so";
  EXPECT_LT(r.took, kDeadline) << "answered at the bound, not at the deadline";
}

TEST_F(ProbeTest, EndlessReadyBodyIsNotWaitedFor) {
  TinyServer server(io_, Behaviour::kEndless, "HTTP/1.1 200 OK\r\n\r\n");
  const ProbeResult r = run(http(server.url()));
  EXPECT_EQ(r.status, ConditionStatus::kTrue) << r.message;
  EXPECT_LT(r.took, kDeadline);
}

TEST_F(ProbeTest, NotHttpIsNotReady) {
  TinyServer server(io_, Behaviour::kAnswer, "SSH-2.0-OpenSSH_9.2\r\n\r\n");
  const ProbeResult r = run(http(server.url()));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "NotReady");
  EXPECT_NE(r.message.find("did not answer HTTP"), std::string::npos) << r.message;
}

TEST_F(ProbeTest, HugeHeadersAreRefused) {
  TinyServer server(io_, Behaviour::kAnswer,
                    "HTTP/1.1 200 OK\r\nX-Big: " + std::string(16 << 10, 'a') + "\r\n\r\n");
  const ProbeResult r = run(http(server.url()));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "NotReady");
  EXPECT_NE(r.message.find("headers over 8192 bytes"), std::string::npos) << r.message;
}

TEST_F(ProbeTest, BadUrlsAreRefusedClearly) {
  for (const std::string url : {"https://127.0.0.1:4191/ready", "127.0.0.1:4191/ready", "http://",
                                "http://user:pw@127.0.0.1/ready", "ftp://x/ready"}) {
    const ProbeResult r = run(http(url));
    EXPECT_EQ(r.status, ConditionStatus::kFalse) << url;
    EXPECT_EQ(r.reason, "BadURL") << url;
    EXPECT_NE(r.message.find(url), std::string::npos) << r.message;
  }
  EXPECT_NE(run(http("https://127.0.0.1:4191/ready")).message.find("not an http:// URL"),
            std::string::npos);
  EXPECT_EQ(run(gateway("https://127.0.0.1:4191/ready", 4143)).reason, "BadURL");
}

TEST_F(ProbeTest, TcpConnect) {
  TinyServer server(io_, Behaviour::kSilent);
  const ProbeResult up =
      run(probe_tcp_connect(io_.get_executor(), "127.0.0.1", server.port(), kDeadline));
  EXPECT_EQ(up.status, ConditionStatus::kTrue);
  EXPECT_EQ(up.reason, "Listening");
  EXPECT_EQ(up.message, "127.0.0.1:" + std::to_string(server.port()) + " accepts connections");

  const ProbeResult down =
      run(probe_tcp_connect(io_.get_executor(), "127.0.0.1", closed_port(io_), kDeadline));
  EXPECT_EQ(down.status, ConditionStatus::kFalse);
  EXPECT_EQ(down.reason, "Unreachable");
  EXPECT_NE(down.message.find("refused the connection"), std::string::npos) << down.message;
}

TEST_F(ProbeTest, GatewayReadyWhenBothPass) {
  TinyServer ready(io_, Behaviour::kAnswer, kReady);
  TinyServer gateway_port(io_, Behaviour::kSilent);
  const ProbeResult r = run(gateway(ready.url(), gateway_port.port()));
  EXPECT_EQ(r.status, ConditionStatus::kTrue) << r.message;
  EXPECT_EQ(r.reason, "Ready");
  EXPECT_EQ(r.message, "HTTP 200 from " + ready.url() + "; 127.0.0.1:" +
                           std::to_string(gateway_port.port()) + " accepts connections");
}

TEST_F(ProbeTest, GatewayPortDownWhileProbePortIsUp) {
  TinyServer ready(io_, Behaviour::kAnswer, kReady);
  const std::uint16_t port = closed_port(io_);
  const ProbeResult r = run(gateway(ready.url(), port));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "GatewayUnreachable");
  EXPECT_EQ(r.message, "gateway port " + std::to_string(port) +
                           ": 127.0.0.1:" + std::to_string(port) +
                           " refused the connection (nothing listens there)");
}

TEST_F(ProbeTest, ProbePortDownWhileGatewayPortIsUp) {
  TinyServer gateway_port(io_, Behaviour::kSilent);
  const std::string url = "http://127.0.0.1:" + std::to_string(closed_port(io_)) + "/ready";
  const ProbeResult r = run(gateway(url, gateway_port.port()));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Unreachable");
  EXPECT_TRUE(r.message.starts_with("readiness: 127.0.0.1:")) << r.message;
  EXPECT_EQ(r.message.find("gateway port"), std::string::npos) << "the port passed";
}

TEST_F(ProbeTest, GatewayNotReadyAndPortDownNamesBoth) {
  TinyServer ready(io_, Behaviour::kAnswer,
                   "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 9\r\n\r\nnot ready");
  const std::uint16_t port = closed_port(io_);
  const ProbeResult r = run(gateway(ready.url(), port));
  EXPECT_EQ(r.reason, "NotReady");
  EXPECT_EQ(r.message, "readiness: HTTP 503 from " + ready.url() + ": not ready; gateway port " +
                           std::to_string(port) + ": 127.0.0.1:" + std::to_string(port) +
                           " refused the connection (nothing listens there)");
}

TEST_F(ProbeTest, GatewayIsBoundedByOneDeadline) {
  TinyServer silent(io_, Behaviour::kSilent);
  const ProbeResult r = run(gateway(silent.url(), silent.port(), kShortDeadline));
  EXPECT_EQ(r.status, ConditionStatus::kFalse);
  EXPECT_EQ(r.reason, "Timeout");
  EXPECT_NE(r.message.find("within 200ms"), std::string::npos) << r.message;
  EXPECT_GE(r.took, kShortDeadline);
  EXPECT_LT(r.took, kDeadline);
}

}  // namespace
}  // namespace tetherd
