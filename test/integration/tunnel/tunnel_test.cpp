// tetherd's konnectivity agent against a konnectivity server on real gRPC
// (test/support/standins/konnectivity_server.py, Debian's python3-grpcio):
// mTLS made by the test, real sockets, and the server's HTTP CONNECT
// frontend as the cloud's clients use it (Karmada's proxyURL, a
// kubeconfig's proxy-url).
#include <condition_variable>
#include <future>
#include <mutex>
#include <regex>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/system_clock.h"
#include "agent/config/kubeconfig_writer.h"
#include "agent/tunnel/tunnel_agent.h"
#include "agent/tunnel/tunnel_relay.h"
#include "test/support/api_server/api_server.h"
#include "test/support/child_process.h"
#include "test/support/netns.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace tetherd::tunnel {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr const char* kPython = "/usr/bin/python3";

bool grpc_available() {
  return std::system((std::string(kPython) + " -c 'import grpc' 2>/dev/null").c_str()) == 0;
}

// A plain HTTP request to the stand-in's control port.
boost::json::value control(std::uint16_t port, http::verb verb, const std::string& target) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return boost::json::parse(res.body());
}

// A client of the frontend: CONNECT, then the answer's status line and
// (on an error) its body.
struct ConnectClient {
  asio::io_context io;
  tcp::socket socket{io};
  std::string status_line;
  std::string rest;  // what came after the answer's head

  bool connect(std::uint16_t frontend, const std::string& target) {
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), frontend));
    asio::write(socket, asio::buffer("CONNECT " + target + " HTTP/1.1\r\nHost: " + target +
                                     "\r\nUser-Agent: tunnel_test\r\n\r\n"));
    std::string head;
    boost::system::error_code ec;
    const auto n = asio::read_until(socket, asio::dynamic_buffer(head), "\r\n\r\n", ec);
    if (ec) return false;
    status_line = head.substr(0, head.find("\r\n"));
    rest = head.substr(n);
    return status_line.find(" 200 ") != std::string::npos;
  }
  std::string read_rest() {
    boost::system::error_code ec;
    asio::read(socket, asio::dynamic_buffer(rest), ec);
    return rest;
  }
  std::string exchange(const std::string& bytes) {
    asio::write(socket, asio::buffer(bytes));
    std::string got(bytes.size(), '\0');
    asio::read(socket, asio::buffer(got));
    return got;
  }
};

class Tunnel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!grpc_available()) {
      if (std::getenv("CI") != nullptr) FAIL() << kPython << " has no grpc module (python3-grpcio)";
      GTEST_SKIP() << "python3-grpcio is not installed (scripts/install-deps)";
    }
    const auto server = ca_.issue({.common_name = "konnectivity-server",
                                   .ip_addresses = {"127.0.0.1"},
                                   .client_auth = false});
    const auto agent = ca_.issue({.common_name = "tetherd:node-a", .server_auth = false});
    tmp_.write("ca.crt", ca_.cert_pem());
    tmp_.write("server.crt", server.cert_pem);
    tmp_.write("server.key", server.key_pem);
    kubeconfig_.path = "test";
    kubeconfig_.ca_pem = ca_.cert_pem();
    kubeconfig_.client_cert_pem = agent.cert_pem;
    kubeconfig_.client_key_pem = agent.key_pem;

    ASSERT_NO_FATAL_FAILURE(start_standin());

    // The destination: an echo server on loopback.
    asio::co_spawn(io_, echo(), asio::detached);
    // Every handler the agent's loop runs is counted and heard by
    // eventually(): the test looks again when something happened.
    io_thread_ = std::thread([this] {
      while (io_.run_one() > 0) {
        {
          std::lock_guard lock(ran_mutex_);
          ++ran_;
        }
        ran_cv_.notify_all();
      }
    });
  }
  // The konnectivity server; on the same agent port when it ran before (a
  // restart).
  void start_standin() {
    const std::string dir = tmp_.file("standin-" + std::to_string(++standins_));
    std::filesystem::create_directories(dir);
    standin_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{
            kPython, TETHERD_SOURCE_DIR "/test/support/standins/konnectivity_server.py",
            "--proto-dir", TETHERD_SOURCE_DIR "/agent/tunnel/proto", "--cert",
            tmp_.file("server.crt"), "--key", tmp_.file("server.key"), "--client-ca",
            tmp_.file("ca.crt"), "--server-count", std::to_string(server_count_), "--agent-port",
            std::to_string(agent_port_)},
        dir);
    ASSERT_TRUE(standin_->out_shows("listening", 30s)) << standin_->err();
    const std::string line = standin_->out();
    ASSERT_EQ(std::sscanf(line.c_str(), "listening agent=%hu frontend=%hu control=%hu",
                          &agent_port_, &frontend_port_, &control_port_),
              3)
        << line;
  }
  void stop_standin() {
    standin_->signal(SIGTERM);
    EXPECT_EQ(standin_->wait(10s), 0) << standin_->err();
    standin_.reset();
  }

  // Runs `f` on the agent's thread and waits for it.
  template <class F>
  auto on_io(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto done = task.get_future();
    asio::post(io_, [&task] { task(); });
    return done.get();
  }

  void TearDown() override {
    if (io_thread_.joinable()) {
      on_io([this] {
        if (agent_) agent_->stop();
        if (relay_) relay_->close_all();
        if (connection_) connection_->close("the test ends");
        acceptor_.close();
        sink_.close();
        sunk_.clear();
      });
      // The agent's coroutines end (the stop's grace at most) before it goes.
      if (agent_) {
        EXPECT_TRUE(eventually([this] { return agent_->finished(); }));
      }
      on_io([this] {
        agent_.reset();
        return true;
      });
      work_.reset();
      io_thread_.join();
    }
    if (standin_) stop_standin();
  }

  asio::awaitable<void> echo() {
    acceptor_.open(tcp::v4());
    acceptor_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    acceptor_.listen();
    echo_port_ = acceptor_.local_endpoint().port();
    echo_ready_.set_value();
    for (;;) {
      auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      asio::co_spawn(
          io_,
          [](tcp::socket s) -> asio::awaitable<void> {
            std::array<char, 16 << 10> buf{};
            for (;;) {
              auto [rec, n] = co_await s.async_read_some(asio::buffer(buf),
                                                         asio::as_tuple(asio::use_awaitable));
              if (rec) co_return;
              auto [wec, w] = co_await asio::async_write(s, asio::buffer(buf.data(), n),
                                                         asio::as_tuple(asio::use_awaitable));
              if (wec) co_return;
            }
          }(std::move(socket)),
          asio::detached);
    }
  }

  // A destination that takes connections and reads nothing.
  std::string sink_destination() {
    return on_io([this] {
      sink_.open(tcp::v4());
      sink_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
      sink_.listen();
      sink_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
        if (!ec) {
          // The smallest receive buffer: what the kernel holds is not
          // what the test measures.
          s.set_option(tcp::socket::receive_buffer_size(4096));
          sunk_.push_back(std::move(s));
        }
      });
      return "127.0.0.1:" + std::to_string(sink_.local_endpoint().port());
    });
  }

  // Whether `p` (run on the agent's thread) becomes true within 20 s:
  // looked at again each time the agent's loop has run another handler
  // (its state changes nowhere else), not on a timer.
  template <class P>
  bool eventually(P p) {
    const auto until = std::chrono::steady_clock::now() + 20s;
    for (;;) {
      std::uint64_t seen = 0;
      if (on_io([&] {
            seen = ran_;  // the handlers before this look (read on the loop's thread)
            return p();
          }))
        return true;
      std::unique_lock lock(ran_mutex_);
      // This look is one handler more; wait for another after it.
      if (!ran_cv_.wait_until(lock, until, [&] { return ran_ > seen + 1; })) return false;
    }
  }

  // The whole agent, as the daemon runs it.
  void start_tunnel_agent(std::vector<std::string> allowed) {
    TunnelSettings settings;
    settings.server =
        *kube::parse_server_address("https://127.0.0.1:" + std::to_string(agent_port_), "");
    settings.server_url = "https://127.0.0.1:" + std::to_string(agent_port_);
    settings.identity = {"node-a", "host=127.0.0.1"};
    for (const auto& a : allowed)
      settings.destinations.push_back(*parse_destination(a));
    settings.backoff = {100ms, 500ms};
    settings.duplicate_wait = 50ms;
    settings.drain_grace = 5s;
    on_io([&] {
      agent_ = std::make_unique<TunnelAgent>(io_.get_executor(), clock_, log_, settings,
                                             *kube::client_context(kubeconfig_));
      agent_->start();
      return true;
    });
  }

  std::string echo_destination() {
    echo_ready_future_.wait();
    return "127.0.0.1:" + std::to_string(echo_port_);
  }

  // Connects the agent (one server) and serves its packets; the hello or why not.
  Result<ServerHello> start_agent(std::vector<std::string> allowed,
                                  std::string verify_name = "127.0.0.1") {
    std::vector<Destination> destinations;
    for (const auto& a : allowed)
      destinations.push_back(*parse_destination(a));
    std::promise<Result<ServerHello>> opened;
    auto future = opened.get_future();
    asio::post(io_, [&, destinations] {
      auto tls = kube::client_context(kubeconfig_);
      connection_ = TunnelConnection::make(io_.get_executor(), clock_, *tls, connection_limits_);
      relay_ = std::make_shared<TunnelRelay>(io_.get_executor(), clock_, connection_, destinations,
                                             next_id_, relay_limits_);
      auto address = kube::parse_server_address("https://127.0.0.1:" + std::to_string(agent_port_),
                                                verify_name);
      asio::co_spawn(
          io_,
          [this, &opened, address = *address]() -> asio::awaitable<void> {
            TunnelConnection::Handlers handlers;
            // Weak: the connection holds its handlers, the relay the connection.
            handlers.packet = [weak = std::weak_ptr<TunnelRelay>(relay_)](Packet p,
                                                                          std::size_t wire) {
              if (auto r = weak.lock()) r->on_packet(std::move(p), wire);
            };
            handlers.writable = [weak = std::weak_ptr<TunnelRelay>(relay_)] {
              if (auto r = weak.lock()) r->on_writable();
            };
            // Named, not a braced temporary: GCC 12 frees a coroutine's
            // aggregate argument made in the call twice.
            AgentIdentity identity{"node-a", "host=127.0.0.1"};
            auto hello = co_await connection_->open(address, identity, std::move(handlers));
            const bool ok = hello.has_value();
            opened.set_value(std::move(hello));
            if (!ok) co_return;
            ended_.set_value(co_await connection_->serve());
            relay_->close_all();
          },
          asio::detached);
    });
    return future.get();
  }

  test::TestCa ca_;
  test::TempDir tmp_;
  Kubeconfig kubeconfig_;
  int server_count_ = 1;
  std::unique_ptr<test::ChildProcess> standin_;
  std::uint16_t agent_port_ = 0, frontend_port_ = 0, control_port_ = 0, echo_port_ = 0;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{
      asio::make_work_guard(io_)};
  std::thread io_thread_;
  tcp::acceptor acceptor_{io_};
  tcp::acceptor sink_{io_};
  std::promise<void> echo_ready_;
  std::shared_future<void> echo_ready_future_{echo_ready_.get_future()};
  // The system's clock, skipped forward by hand: the timers wait real time,
  // what the agent judges by monotonic() sees a minute pass at once.
  class SkippingClock final : public Clock {
   public:
    WallTime wall() const override { return real_.wall() + skipped_; }
    MonoTime monotonic() const override { return real_.monotonic() + skipped_; }
    MonoTime boottime() const override { return real_.boottime() + skipped_; }
    bool skip(std::chrono::seconds d) {
      skipped_ += d;
      return true;
    }

   private:
    SystemClock real_;
    std::chrono::seconds skipped_{0};
  };
  SkippingClock clock_;
  std::shared_ptr<TunnelConnection> connection_;
  std::shared_ptr<TunnelRelay> relay_;
  std::shared_ptr<std::int64_t> next_id_ = std::make_shared<std::int64_t>(0);
  RelayLimits relay_limits_;
  ConnectionLimits connection_limits_;
  std::vector<tcp::socket> sunk_;  // accepted by the sink, never read
  std::promise<std::string> ended_;
  std::mutex ran_mutex_;
  std::condition_variable ran_cv_;
  std::uint64_t ran_ = 0;  // handlers the agent's loop has run
  test::RecordingLog log_;
  std::unique_ptr<TunnelAgent> agent_;
  int standins_ = 0;
};

TEST_F(Tunnel, TheCloudReachesAnAllowedDestinationThroughTheAgent) {
  auto hello = start_agent({echo_destination()});
  ASSERT_TRUE(hello) << hello.error().message;
  EXPECT_EQ(hello->server_id, "server-0");
  EXPECT_EQ(hello->server_count, 1);

  ConnectClient client;
  ASSERT_TRUE(client.connect(frontend_port_, echo_destination())) << client.status_line;
  EXPECT_EQ(client.exchange("hello through the tunnel"), "hello through the tunnel");
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>(i * 7);
  EXPECT_EQ(client.exchange(big), big) << "a megabyte each way, in order";

  const auto state = control(control_port_, http::verb::get, "/state");
  const auto& stream = state.at("streams").as_array().at(0).as_object();
  EXPECT_EQ(stream.at("agentId"), "node-a");
  EXPECT_EQ(stream.at("identifiers"), "host=127.0.0.1");
  EXPECT_EQ(stream.at("peer"), "tetherd:node-a") << "the agent's client certificate";
  const auto stats = on_io([this] { return relay_->stats(); });
  EXPECT_EQ(stats.dials, 1u);
  EXPECT_EQ(stats.connections, 1u);
  EXPECT_EQ(stats.bytes_to_destinations, big.size() + 24);
}

TEST_F(Tunnel, ADestinationNotAllowedIsRefusedWithTheReason) {
  ASSERT_TRUE(start_agent({echo_destination()}));
  ConnectClient client;
  EXPECT_FALSE(client.connect(frontend_port_, "127.0.0.1:22"));
  EXPECT_NE(client.status_line.find("503"), std::string::npos) << client.status_line;
  EXPECT_NE(client.read_rest().find("127.0.0.1:22 is not among this node's tunnel.destinations"),
            std::string::npos)
      << client.rest;
  const auto stats = on_io([this] { return relay_->stats(); });
  EXPECT_EQ(stats.dials_refused, 1u);
  EXPECT_EQ(stats.dials, 0u);
}

TEST_F(Tunnel, AHundredConnectionsAtOnceEachGetTheirOwnBytes) {
  ASSERT_TRUE(start_agent({echo_destination()}));
  std::vector<std::unique_ptr<ConnectClient>> clients;
  for (int i = 0; i < 100; ++i) {
    clients.push_back(std::make_unique<ConnectClient>());
    ASSERT_TRUE(clients.back()->connect(frontend_port_, echo_destination()))
        << i << ": " << clients.back()->status_line;
  }
  EXPECT_EQ(on_io([this] { return relay_->stats().connections; }), 100u);
  for (int i = 0; i < 100; ++i) {
    const std::string mine = "connection " + std::to_string(i) + std::string(1000, 'a' + i % 26);
    EXPECT_EQ(clients[i]->exchange(mine), mine);
  }
  // Each connectID once, from one counter.
  EXPECT_EQ(on_io([this] { return *next_id_; }), 100);
  clients.clear();  // the clients leave: every connection is closed through the server
  ASSERT_TRUE(eventually([this] { return relay_->stats().connections == 0; }));
  const auto state = control(control_port_, http::verb::get, "/state");
  EXPECT_TRUE(state.at("closeRspErrors").as_array().empty()) << state;
}

TEST_F(Tunnel, APacketForAnUnknownConnectionIsAnsweredWithAnError) {
  ASSERT_TRUE(start_agent({echo_destination()}));
  control(control_port_, http::verb::post, "/misbehave/unknown-connect-id");
  // The answer arrives when the server has read it: it says so.
  ASSERT_TRUE(standin_->err_shows("CLOSE_RSP for unknown connectID", 20s)) << standin_->err();
  const auto errors =
      control(control_port_, http::verb::get, "/state").at("closeRspErrors").as_array();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].at("connectID"), 999999);
  EXPECT_NE(std::string(errors[0].at("error").as_string()).find("unrecognized connectID"),
            std::string::npos);
}

TEST_F(Tunnel, DrainTellsTheServerAndServingGoesOn) {
  ASSERT_TRUE(start_agent({echo_destination()}));
  on_io([this] { relay_->drain(); });
  ASSERT_TRUE(standin_->err_shows("is draining", 20s)) << standin_->err();
  EXPECT_TRUE(control(control_port_, http::verb::get, "/state")
                  .at("streams")
                  .as_array()
                  .at(0)
                  .at("drained")
                  .as_bool());
  ConnectClient client;
  ASSERT_TRUE(client.connect(frontend_port_, echo_destination())) << "a drained agent still serves";
  EXPECT_EQ(client.exchange("still here"), "still here");
}

TEST_F(Tunnel, TheServerEndingTheCallEndsTheConnectionWithItsStatus) {
  ASSERT_TRUE(start_agent({echo_destination()}));
  ConnectClient client;
  ASSERT_TRUE(client.connect(frontend_port_, echo_destination()));
  control(control_port_, http::verb::post,
          "/misbehave/end-streams?code=UNAVAILABLE&message=restart");
  auto ended = ended_.get_future();
  ASSERT_EQ(ended.wait_for(20s), std::future_status::ready);
  const std::string why = ended.get();
  EXPECT_NE(why.find("gRPC status 14: restart"), std::string::npos) << why;
  EXPECT_EQ(on_io([this] { return relay_->stats().connections; }), 0u)
      << "its connections are closed with it";
}

// A destination that reads nothing holds back what the server may send
// (its window, not tetherd's memory), and only until its write timeout:
// then it is closed and the others through the same server go on.
TEST_F(Tunnel, ADestinationThatReadsNothingHoldsTheWindowNotMemoryAndIsClosed) {
  relay_limits_.write_timeout = 1s;
  connection_limits_.max_message = 128 << 10;  // a window of 256 KiB holds a whole one
  connection_limits_.window = 256 << 10;
  const std::string sink = sink_destination();
  ASSERT_TRUE(start_agent({echo_destination(), sink}));
  ConnectClient slow;
  ASSERT_TRUE(slow.connect(frontend_port_, sink));
  // 8 MiB for it: far more than the window and the kernel's buffers.
  std::thread writer([&] {
    boost::system::error_code ec;
    asio::write(slow.socket, asio::buffer(std::string(8 << 20, 'x')), ec);
  });
  // Until the agent has closed it (its write timed out), what waits in
  // tetherd for the sink never exceeds the window.
  std::size_t most = 0;
  ASSERT_TRUE(eventually([&] {
    const auto stats = relay_->stats();
    most = std::max(most, stats.bytes_waiting);
    return stats.connections == 0;
  })) << "the sink was never closed";
  EXPECT_LE(most, connection_limits_.window);
  EXPECT_GT(most, 0u) << "the sink was sent something it did not take";
  EXPECT_TRUE(standin_->err_shows("it read nothing for 1s", 20s))
      << "the server hears why, not the read's 'Operation canceled': " << standin_->err();
  slow.socket.close();
  writer.join();
  ConnectClient next;
  ASSERT_TRUE(next.connect(frontend_port_, echo_destination())) << next.status_line;
  EXPECT_EQ(next.exchange("the window came back"), "the window came back");
}

TEST_F(Tunnel, AServerWhoseCertificateDoesNotNameItIsRefused) {
  auto hello = start_agent({echo_destination()}, "konnectivity.example");
  ASSERT_FALSE(hello);
  EXPECT_NE(hello.error().message.find("TLS handshake"), std::string::npos)
      << hello.error().message;
  EXPECT_NE(hello.error().message.find("certificate verify failed"), std::string::npos)
      << hello.error().message;
}

// --- the agent: every server behind the address, backoff, resume, stop ------

class TwoServers : public Tunnel {
 protected:
  TwoServers() { server_count_ = 2; }
};

TEST_F(TwoServers, TheAgentHoldsEveryServerBehindTheAddress) {
  start_tunnel_agent({echo_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  const auto report = on_io([this] { return agent_->report(); });
  EXPECT_EQ(report.servers_wanted, 2);
  EXPECT_EQ(report.servers, (std::vector<std::string>{"server-0", "server-1"}));
  EXPECT_TRUE(report.problem.empty()) << report.problem;
  EXPECT_EQ(on_io([this] { return log_.with_event("tunnel-connected").size(); }), 2u);
  ConnectClient client;
  ASSERT_TRUE(client.connect(frontend_port_, echo_destination())) << client.status_line;
  EXPECT_EQ(client.exchange("through either"), "through either");
}

// The balancer sends a redial to the server still held: that connection is
// closed, and the next dial finds the lost one.
TEST_F(TwoServers, ASecondConnectionToAServerHeldIsClosedAndTheLostOneFoundAgain) {
  start_tunnel_agent({echo_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  control(control_port_, http::verb::post,
          "/misbehave/end-streams?code=UNAVAILABLE&serverId=server-1");
  ASSERT_TRUE(eventually([this] { return log_.with_event("tunnel-disconnected").size() == 1; }));
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  const auto streams = control(control_port_, http::verb::get, "/state").at("streams").as_array();
  ASSERT_EQ(streams.size(), 4u) << streams;
  EXPECT_EQ(streams[2].at("serverId"), "server-0");
  EXPECT_FALSE(streams[2].at("open").as_bool()) << "the duplicate, closed";
  EXPECT_EQ(streams[3].at("serverId"), "server-1");
  EXPECT_TRUE(streams[3].at("open").as_bool());
  EXPECT_NE(on_io([this] {
              return log_.with_event("tunnel-disconnected")[0].message;
            }).find("gRPC status 14"),
            std::string::npos);
}

TEST_F(Tunnel, AResumeDialsAgainAtOnce) {
  start_tunnel_agent({echo_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  EXPECT_FALSE(on_io([this] {
    agent_->resumed();
    return agent_->report().connected();
  })) << "the old connection is gone";
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  const auto streams = control(control_port_, http::verb::get, "/state").at("streams").as_array();
  ASSERT_EQ(streams.size(), 2u);
  EXPECT_TRUE(streams[1].at("open").as_bool());
  EXPECT_TRUE(on_io([this] { return log_.with_event("tunnel-disconnected").empty(); }))
      << "a resume's close is not a failure";
}

TEST_F(Tunnel, AServerRestartIsFollowedAndTheOutageSaid) {
  start_tunnel_agent({echo_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  stop_standin();
  ASSERT_TRUE(eventually([this] { return !log_.with_event("tunnel-dial-failed").empty(); }));
  EXPECT_FALSE(on_io([this] { return agent_->report().connected(); }));
  EXPECT_NE(on_io([this] { return agent_->report().problem; }).find("Connection refused"),
            std::string::npos);
  ASSERT_NO_FATAL_FAILURE(start_standin());
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  EXPECT_TRUE(on_io([this] { return agent_->report().problem; }).empty());
  ConnectClient client;
  ASSERT_TRUE(client.connect(frontend_port_, echo_destination())) << client.status_line;
  EXPECT_EQ(client.exchange("back"), "back");
}

// DRAIN is not the end: a connection under way goes on through the grace.
TEST_F(Tunnel, AfterDrainAConnectionUnderWayIsStillServed) {
  start_tunnel_agent({echo_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  ConnectClient client;
  ASSERT_TRUE(client.connect(frontend_port_, echo_destination()));
  on_io([this] {
    agent_->stop();
    return true;
  });
  EXPECT_EQ(client.exchange("still served"), "still served");
  EXPECT_FALSE(on_io([this] { return agent_->finished(); }));
  EXPECT_TRUE(control(control_port_, http::verb::get, "/state")
                  .at("streams")
                  .as_array()
                  .at(0)
                  .at("drained")
                  .as_bool());
  ASSERT_TRUE(eventually([this] { return agent_->finished(); })) << "ended after the grace";
}

TEST_F(Tunnel, StoppingSendsDrainAndEndsTheCall) {
  start_tunnel_agent({echo_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  on_io([this] {
    agent_->stop();
    return true;
  });
  // The server ends its half when the agent ends its own: well within the
  // grace (5 s here).
  const auto began = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([this] { return agent_->finished(); }));
  EXPECT_LT(std::chrono::steady_clock::now() - began, 4s) << "not cut by the grace";
  const auto stream =
      control(control_port_, http::verb::get, "/state").at("streams").as_array().at(0);
  EXPECT_TRUE(stream.at("drained").as_bool());
  EXPECT_FALSE(stream.at("open").as_bool());
}

// --- a real client through the tunnel ------------------------------------------

std::string kubectl_path() {
  if (const char* path = std::getenv("TETHERD_KUBECTL"); path != nullptr && *path != '\0')
    return path;
  return TETHERD_KUBECTL_DEFAULT;
}

// Debian's kubectl 1.20 with a kubeconfig's proxy-url (as linkerd's service
// mirror and Karmada's proxyURL use the tunnel) reads the k3s stand-in's API
// through the konnectivity server and the agent; a destination the node
// does not allow is refused, and kubectl says so.
class TunnelKubectl : public Tunnel {
 protected:
  void SetUp() override {
    Tunnel::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!std::filesystem::exists(kubectl_path())) {
      if (std::getenv("CI") != nullptr) FAIL() << kubectl_path() << " is missing";
      GTEST_SKIP() << kubectl_path() << " is missing (scripts/install-deps unpacks it)";
    }
    test::ApiServerOptions options;
    options.identity = ca_.issue({.common_name = "k3s", .ip_addresses = {"127.0.0.1"}});
    options.client_ca_pem = ca_.cert_pem();
    k3s_ = std::make_unique<test::ApiServer>(options);
    const auto admin = ca_.issue(
        {.common_name = "cloud-admin", .organizations = {"system:masters"}, .server_auth = false});
    tmp_.write("admin.crt", admin.cert_pem);
    tmp_.write("admin.key", admin.key_pem);
    tmp_.write("through-tunnel.kubeconfig",
               "apiVersion: v1\nkind: Config\nclusters:\n- name: edge\n  cluster:\n"
               "    server: " +
                   k3s_->url() + "\n    certificate-authority: " + tmp_.file("ca.crt") +
                   "\n    proxy-url: http://127.0.0.1:" + std::to_string(frontend_port_) +
                   "\nusers:\n- name: admin\n  user:\n    client-certificate: " +
                   tmp_.file("admin.crt") + "\n    client-key: " + tmp_.file("admin.key") +
                   "\ncontexts:\n- name: edge\n  context:\n    cluster: edge\n    user: "
                   "admin\ncurrent-context: edge\n");
  }
  std::string k3s_destination() const { return "127.0.0.1:" + std::to_string(k3s_->port()); }
  // The daemon's own credentials for the tunnel: tunnel.kubeconfig.
  void write_agent_kubeconfig() {
    const auto agent = ca_.issue({.common_name = "tetherd:node-a", .server_auth = false});
    tmp_.write("agent.crt", agent.cert_pem);
    tmp_.write("agent.key", agent.key_pem);
    tmp_.write("tunnel.kubeconfig",
               render_kubeconfig({.server = "https://127.0.0.1:" + std::to_string(agent_port_),
                                  .ca_pem = ca_.cert_pem(),
                                  .client_certificate = tmp_.file("agent.crt"),
                                  .client_key = tmp_.file("agent.key"),
                                  .user = "tetherd:node-a"}));
  }
  // kubectl get --raw PATH through the tunnel: its exit code and output.
  std::pair<int, std::string> kubectl_get(const std::string& path) {
    const std::string out = tmp_.file("kubectl-" + std::to_string(++runs_));
    std::filesystem::create_directories(out);
    test::ChildProcess child(
        {kubectl_path(), "--kubeconfig", tmp_.file("through-tunnel.kubeconfig"), "--cache-dir",
         out + "/cache", "--request-timeout", "10s", "get", "--raw", path},
        out, test::ChildOptions{.env = {{"HOME", out}}});
    const int code = child.wait(60s);
    return {code, child.out() + child.err()};
  }

  std::unique_ptr<test::ApiServer> k3s_;
  int runs_ = 0;
};

TEST_F(TunnelKubectl, KubectlReadsTheNodesApiThroughTheTunnel) {
  start_tunnel_agent({k3s_destination()});
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  const auto [code, out] = kubectl_get("/api");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"kind\":\"APIVersions\""), std::string::npos) << out;
  const auto [ns_code, namespaces] = kubectl_get("/api/v1/namespaces");
  EXPECT_EQ(ns_code, 0) << namespaces;
  EXPECT_NE(namespaces.find("\"kind\":\"NamespaceList\""), std::string::npos) << namespaces;
  const auto stats = on_io([this] { return agent_->report().totals; });
  EXPECT_GE(stats.dials, 1u);
  EXPECT_GT(stats.bytes_to_server, 0u);
}

TEST_F(TunnelKubectl, AnApiTheNodeDoesNotAllowIsRefused) {
  start_tunnel_agent({echo_destination()});  // not k3s
  ASSERT_TRUE(eventually([this] { return agent_->report().connected(); }));
  const auto [code, out] = kubectl_get("/api");
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(out.find("Service Unavailable"), std::string::npos) << out;
  EXPECT_EQ(on_io([this] { return agent_->report().totals.dials_refused; }), 1u);
  // Said in the journal; a second refusal within the minute is counted only.
  const auto said = on_io([this] { return log_.with_event("tunnel-dial-refused"); });
  ASSERT_EQ(said.size(), 1u);
  EXPECT_EQ(said[0].message,
            "konnectivity server server-0 asked for a dial, refused: " + k3s_destination() +
                " is not among this node's tunnel.destinations");
  EXPECT_NE(kubectl_get("/api").first, 0);
  EXPECT_EQ(on_io([this] { return agent_->report().totals.dials_refused; }), 2u);
  EXPECT_EQ(on_io([this] { return log_.with_event("tunnel-dial-refused").size(); }), 1u);
  // A minute on, the next refusal is said, with the count of those unsaid.
  on_io([this] { return clock_.skip(std::chrono::minutes(1)); });
  EXPECT_NE(kubectl_get("/api").first, 0);
  const auto later = on_io([this] { return log_.with_event("tunnel-dial-refused"); });
  ASSERT_EQ(later.size(), 2u);
  EXPECT_EQ(later[1].message, said[0].message + " (1 more refused since the last such line)");
}

// The real tetherd, configured as a new user would: a `tunnel` section, its
// own kubeconfig (no control plane), k3s as the one destination. kubectl
// reads k3s through it; TunnelConnected says so; a stop drains.
TEST_F(TunnelKubectl, TheDaemonServesTheTunnelFromItsConfiguration) {
  write_agent_kubeconfig();
  std::filesystem::create_directories(tmp_.file("run"));
  tmp_.write("tetherd.yaml",
             "node: {name: node-a}\nfirewall: {backend: none}\nmetrics: {listen: \"\"}\n"
             "state: {dir: " +
                 tmp_.file("state") +
                 "}\n"
                 "tunnel:\n  server: https://127.0.0.1:" +
                 std::to_string(agent_port_) + "\n  kubeconfig: " + tmp_.file("tunnel.kubeconfig") +
                 "\n  agentIdentifiers: host=127.0.0.1\n  destinations: [\"" + k3s_destination() +
                 "\"]\n");
  std::filesystem::create_directories(tmp_.file("daemon"));
  test::ChildProcess daemon({TETHERD_BINARY, "--config", tmp_.file("tetherd.yaml")},
                            tmp_.file("daemon"),
                            {.env = {{"RUNTIME_DIRECTORY", tmp_.file("run")}}});
  ASSERT_TRUE(daemon.err_shows("TETHERD_EVENT=tunnel-connected", 30s)) << daemon.err();
  const auto [code, out] = kubectl_get("/api");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"kind\":\"APIVersions\""), std::string::npos) << out;

  std::filesystem::create_directories(tmp_.file("ctl"));
  test::ChildProcess status({TETHERCTL_BINARY, "status", "--socket", tmp_.file("run/tetherd.sock")},
                            tmp_.file("ctl"));
  // Its exit code is Ready's, which this machine's clock may hold False.
  EXPECT_NE(status.wait(30s), -1) << status.err();
  const std::string table = status.out();
  const auto row = table.find("TunnelConnected");
  ASSERT_NE(row, std::string::npos) << table;
  EXPECT_EQ(table.substr(row, table.find('\n', row) - row).find("True"), 20u) << table;
  EXPECT_NE(status.out().find("1 of 1 konnectivity server held"), std::string::npos)
      << status.out();
  // Its own line: the servers held and the dials kubectl's request made.
  EXPECT_TRUE(std::regex_search(
      table,
      std::regex("\ntunnel +1 of 1 konnectivity server held at https://127\\.0\\.0\\.1:[0-9]+; "
                 "[0-9]+ connections open, [1-9][0-9]* dials served, 0 refused, 0 failed\n")))
      << table;

  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(30s), 0) << daemon.err();
  const auto stream =
      control(control_port_, http::verb::get, "/state").at("streams").as_array().at(0);
  EXPECT_EQ(stream.at("agentId"), "node-a");
  EXPECT_TRUE(stream.at("drained").as_bool()) << "DRAIN on stop";
  EXPECT_NE(daemon.err().find("TETHERD_EVENT=tunnel-draining"), std::string::npos) << daemon.err();
}

// The `tunnel` section is taken without a restart, as every setting is
// (tetherd follows its file; a SIGHUP reloads the same way, tested in
// DaemonProcess): added (the agent dials and kubectl reads k3s through
// it), changed (a new agent with the new destinations, the old one drained
// and its call ended), and removed (the agent drains and ends its call),
// one process throughout.
TEST_F(TunnelKubectl, TheDaemonTakesItsTunnelSectionWithoutARestart) {
  write_agent_kubeconfig();
  std::filesystem::create_directories(tmp_.file("run"));
  const auto configure = [&](const std::string& destination) {
    std::string yaml =
        "node: {name: node-a}\nfirewall: {backend: none}\nmetrics: {listen: \"\"}\n"
        "state: {dir: " +
        tmp_.file("state") + "}\n";
    if (!destination.empty())
      yaml += "tunnel:\n  server: https://127.0.0.1:" + std::to_string(agent_port_) +
              "\n  kubeconfig: " + tmp_.file("tunnel.kubeconfig") +
              "\n  agentIdentifiers: host=127.0.0.1\n  destinations: [\"" + destination + "\"]\n";
    tmp_.write("tetherd.yaml", yaml);
  };
  const auto streams = [&] {
    return control(control_port_, http::verb::get, "/state").at("streams").as_array();
  };
  // The stand-in's streams once it has said (on stderr, followed by
  // inotify) that `ended` of them ended and `drained` were drained: what
  // it says is filed in its state before it is said.
  const auto streams_after = [&](int ended, int drained) {
    EXPECT_TRUE(standin_->err_shows("agent=node-a ended", 10s, ended)) << standin_->err();
    EXPECT_TRUE(standin_->err_shows("agent=node-a is draining", 10s, drained)) << standin_->err();
    return streams();
  };

  configure("");
  std::filesystem::create_directories(tmp_.file("daemon"));
  test::ChildProcess daemon({TETHERD_BINARY, "--config", tmp_.file("tetherd.yaml")},
                            tmp_.file("daemon"),
                            {.env = {{"RUNTIME_DIRECTORY", tmp_.file("run")}}});
  ASSERT_TRUE(daemon.err_shows("TETHERD_EVENT=started", 30s)) << daemon.err();

  // Added: one stream at the server, so none before it.
  configure(k3s_destination());
  ASSERT_TRUE(daemon.err_shows("TETHERD_EVENT=tunnel-connected", 30s)) << daemon.err();
  EXPECT_TRUE(daemon.err_shows("TETHERD_EVENT=config-reloaded", 10s)) << daemon.err();
  EXPECT_EQ(streams().size(), 1u) << boost::json::serialize(streams());
  const auto [code, out] = kubectl_get("/api");
  EXPECT_EQ(code, 0) << out;

  // Changed: k3s is no longer a destination; the old call is drained.
  configure("127.0.0.1:1");
  ASSERT_TRUE(daemon.err_shows("TETHERD_EVENT=tunnel-connected", 30s, 2)) << daemon.err();
  {
    const auto s = streams_after(1, 1);
    ASSERT_EQ(s.size(), 2u) << boost::json::serialize(s);
    EXPECT_TRUE(s.at(0).at("drained").as_bool()) << boost::json::serialize(s);
    EXPECT_FALSE(s.at(0).at("open").as_bool()) << boost::json::serialize(s);
    EXPECT_TRUE(s.at(1).at("open").as_bool()) << boost::json::serialize(s);
  }
  const auto [refused, said] = kubectl_get("/api");
  EXPECT_NE(refused, 0) << said;
  EXPECT_NE(said.find("Service Unavailable"), std::string::npos) << said;
  EXPECT_TRUE(daemon.err_shows("TETHERD_EVENT=tunnel-dial-refused", 10s)) << daemon.err();

  // Removed.
  configure("");
  ASSERT_TRUE(daemon.err_shows("TETHERD_EVENT=tunnel-off", 30s)) << daemon.err();
  {
    const auto s = streams_after(2, 2);
    ASSERT_EQ(s.size(), 2u) << boost::json::serialize(s);
    EXPECT_TRUE(s.at(1).at("drained").as_bool()) << boost::json::serialize(s);
    EXPECT_FALSE(s.at(1).at("open").as_bool()) << boost::json::serialize(s);
  }

  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(30s), 0) << daemon.err();
  EXPECT_EQ(
      daemon.err().find("TETHERD_EVENT=started", daemon.err().find("TETHERD_EVENT=started") + 1),
      std::string::npos)
      << "one start";
}

// firewall.closeWhenTunnelled on a real node: tetherd in the node's network
// namespace with nftables, k3s's API (the stand-in) on 6443 of every
// address, the cloud (the konnectivity server and kubectl) in its own
// namespace at 192.0.2.2, allowed by firewall.allow. While the tunnel holds
// its server the cloud reaches the API only through it: 6443 refuses it
// directly, 4143 does not; the server's outage opens 6443 again, its return
// closes it, and a stop leaves it open.
class TunnelFirewall : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root: network namespaces and nftables";
    if (!grpc_available()) {
      if (std::getenv("CI") != nullptr) FAIL() << kPython << " has no grpc module (python3-grpcio)";
      GTEST_SKIP() << "python3-grpcio is not installed (scripts/install-deps)";
    }
    if (!std::filesystem::exists(kubectl_path())) {
      if (std::getenv("CI") != nullptr) FAIL() << kubectl_path() << " is missing";
      GTEST_SKIP() << kubectl_path() << " is missing (scripts/install-deps unpacks it)";
    }
    topo_ = std::make_unique<test::Topology>();
    topo_->listen_on({4143});
    tmp_.write("ca.crt", ca_.cert_pem());
    const auto server = ca_.issue({.common_name = "konnectivity-server",
                                   .ip_addresses = {"192.0.2.2"},
                                   .client_auth = false});
    tmp_.write("server.crt", server.cert_pem);
    tmp_.write("server.key", server.key_pem);
    {
      test::InNetns in(topo_->node);
      test::ApiServerOptions options;
      options.identity = ca_.issue({.common_name = "k3s", .ip_addresses = {"127.0.0.1"}});
      options.client_ca_pem = ca_.cert_pem();
      options.listen_address = "0.0.0.0";
      options.listen_port = 6443;
      k3s_ = std::make_unique<test::ApiServer>(options);
    }
    ASSERT_NO_FATAL_FAILURE(start_standin());
  }
  void TearDown() override {
    if (daemon_) {
      daemon_->signal(SIGTERM);
      daemon_->wait(30s);
    }
    if (standin_) {
      standin_->signal(SIGTERM);
      standin_->wait(10s);
    }
    if (topo_)
      test::sh("ip netns exec " + topo_->node + " nft delete table inet tetherd 2>/dev/null; true");
  }

  void start_standin() {
    const std::string dir = tmp_.file("standin-" + std::to_string(++standins_));
    std::filesystem::create_directories(dir);
    standin_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{"/usr/sbin/ip", "netns", "exec", topo_->a, kPython,
                                 TETHERD_SOURCE_DIR "/test/support/standins/konnectivity_server.py",
                                 "--proto-dir", TETHERD_SOURCE_DIR "/agent/tunnel/proto",
                                 "--listen", "192.0.2.2", "--cert", tmp_.file("server.crt"),
                                 "--key", tmp_.file("server.key"), "--client-ca",
                                 tmp_.file("ca.crt"), "--agent-port", std::to_string(agent_port_)},
        dir);
    ASSERT_TRUE(standin_->out_shows("listening", 30s)) << standin_->err();
    ASSERT_EQ(std::sscanf(standin_->out().c_str(), "listening agent=%hu frontend=%hu control=%hu",
                          &agent_port_, &frontend_port_, &control_port_),
              3)
        << standin_->out();
  }

  // tetherd in the node's namespace, the tunnel to the stand-in, 6443
  // closed while it holds.
  void start_daemon() {
    const auto agent = ca_.issue({.common_name = "tetherd:node-a", .server_auth = false});
    tmp_.write("agent.crt", agent.cert_pem);
    tmp_.write("agent.key", agent.key_pem);
    const auto admin = ca_.issue(
        {.common_name = "cloud-admin", .organizations = {"system:masters"}, .server_auth = false});
    tmp_.write("admin.crt", admin.cert_pem);
    tmp_.write("admin.key", admin.key_pem);
    tmp_.write("cloud.kubeconfig",
               "apiVersion: v1\nkind: Config\nclusters:\n- name: edge\n  cluster:\n"
               "    server: https://127.0.0.1:6443\n    certificate-authority: " +
                   tmp_.file("ca.crt") +
                   "\n    proxy-url: http://192.0.2.2:" + std::to_string(frontend_port_) +
                   "\nusers:\n- name: admin\n  user:\n    client-certificate: " +
                   tmp_.file("admin.crt") + "\n    client-key: " + tmp_.file("admin.key") +
                   "\ncontexts:\n- name: edge\n  context: {cluster: edge, user: admin}\n"
                   "current-context: edge\n");
    tmp_.write("tunnel.kubeconfig",
               render_kubeconfig({.server = "https://192.0.2.2:" + std::to_string(agent_port_),
                                  .ca_pem = ca_.cert_pem(),
                                  .client_certificate = tmp_.file("agent.crt"),
                                  .client_key = tmp_.file("agent.key"),
                                  .user = "tetherd:node-a"}));
    std::filesystem::create_directories(tmp_.file("run"));
    tmp_.write("tetherd.yaml",
               "node: {name: node-a}\n"
               "firewall:\n  backend: nftables\n  verdict: reject\n  allow: [192.0.2.0/24]\n"
               "  closeWhenTunnelled: true\n"
               "metrics: {listen: \"\"}\nstate: {dir: " +
                   tmp_.file("state") +
                   "}\ntunnel:\n  server: https://192.0.2.2:" + std::to_string(agent_port_) +
                   "\n  kubeconfig: " + tmp_.file("tunnel.kubeconfig") + "\n");
    std::filesystem::create_directories(tmp_.file("daemon"));
    daemon_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{"/usr/sbin/ip", "netns", "exec", topo_->node, TETHERD_BINARY,
                                 "--config", tmp_.file("tetherd.yaml")},
        tmp_.file("daemon"), test::ChildOptions{.env = {{"RUNTIME_DIRECTORY", tmp_.file("run")}}});
  }

  // The cloud, directly: connect from its namespace to the node's 6443.
  test::Outcome cloud_connects(std::uint16_t port) {
    return topo_->connect_from(topo_->a, "192.0.2.1", port);
  }

  // kubectl in the cloud's namespace: k3s's API at 127.0.0.1:6443, as the
  // node sees it, through the konnectivity server's frontend.
  std::pair<int, std::string> kubectl_through_tunnel(const std::string& path) {
    const std::string out = tmp_.file("kubectl-" + std::to_string(++runs_));
    std::filesystem::create_directories(out);
    test::ChildProcess child({"/usr/sbin/ip", "netns", "exec", topo_->a, kubectl_path(),
                              "--kubeconfig", tmp_.file("cloud.kubeconfig"), "--cache-dir",
                              out + "/cache", "--request-timeout", "10s", "get", "--raw", path},
                             out, test::ChildOptions{.env = {{"HOME", out}}});
    const int code = child.wait(60s);
    return {code, child.out() + child.err()};
  }

  test::TestCa ca_;
  test::TempDir tmp_;
  std::unique_ptr<test::Topology> topo_;
  std::unique_ptr<test::ApiServer> k3s_;
  std::unique_ptr<test::ChildProcess> standin_, daemon_;
  std::uint16_t agent_port_ = 0, frontend_port_ = 0, control_port_ = 0;
  int standins_ = 0, runs_ = 0;
};

TEST_F(TunnelFirewall, WhileTheTunnelHoldsItsServer6443IsClosedToTheCloud) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-closed", 30s)) << daemon_->err();
  EXPECT_EQ(test::to_string(cloud_connects(6443)), test::to_string(test::Outcome::kRefused));
  EXPECT_EQ(test::to_string(cloud_connects(4143)), test::to_string(test::Outcome::kConnected))
      << "mesh traffic stays allowlisted";
  const auto [code, out] = kubectl_through_tunnel("/api");
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\"kind\":\"APIVersions\""), std::string::npos) << out;

  // tetherctl sees the closed port as tetherd's, not as drift.
  std::filesystem::create_directories(tmp_.file("show"));
  test::ChildProcess show({"/usr/sbin/ip", "netns", "exec", topo_->node, TETHERCTL_BINARY,
                           "firewall", "show", "--config", tmp_.file("tetherd.yaml")},
                          tmp_.file("show"));
  EXPECT_EQ(show.wait(30s), 0) << show.err();
  EXPECT_NE(show.out().find("closed    6443 to all but loopback"), std::string::npos) << show.out();
  EXPECT_NE(show.out().find("in sync"), std::string::npos) << show.out();

  // The server goes: the tunnel is down, and 6443 opens to the cloud again.
  standin_->signal(SIGTERM);
  EXPECT_EQ(standin_->wait(10s), 0) << standin_->err();
  ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-opened", 30s)) << daemon_->err();
  EXPECT_EQ(test::to_string(cloud_connects(6443)), test::to_string(test::Outcome::kConnected));

  // It is back: closed again.
  ASSERT_NO_FATAL_FAILURE(start_standin());
  ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-closed", 90s, 2)) << daemon_->err();
  EXPECT_EQ(test::to_string(cloud_connects(6443)), test::to_string(test::Outcome::kRefused));

  // tetherd stops (onStop: keep): the rules stay, 6443 open to the cloud.
  daemon_->signal(SIGTERM);
  EXPECT_EQ(daemon_->wait(30s), 0) << daemon_->err();
  EXPECT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-opened", 1s, 2)) << daemon_->err();
  daemon_.reset();
  EXPECT_EQ(test::to_string(cloud_connects(6443)), test::to_string(test::Outcome::kConnected));
  EXPECT_EQ(test::to_string(topo_->connect_from(topo_->b, "198.51.100.1", 6443)),
            test::to_string(test::Outcome::kRefused))
      << "the rules stay in force for strangers";
}

// A server that keeps being lost is damped (app/tunnel_gate.h): after the
// third loss in quick succession 6443 stays open to the cloud, though the
// tunnel is found again, rather than close and open with every flap.
TEST_F(TunnelFirewall, AServerLostAgainAndAgainLeaves6443OpenWhileItIsDamped) {
  ASSERT_NO_FATAL_FAILURE(start_daemon());
  for (int loss = 1; loss <= 3; ++loss) {
    ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=tunnel-connected", 90s, loss)) << daemon_->err();
    ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-closed", 30s, loss))
        << daemon_->err();
    EXPECT_EQ(test::to_string(cloud_connects(6443)), test::to_string(test::Outcome::kRefused))
        << "closed while held, after " << loss - 1 << " losses";
    standin_->signal(SIGTERM);
    EXPECT_EQ(standin_->wait(10s), 0) << standin_->err();
    ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-opened", 30s, loss))
        << daemon_->err();
    ASSERT_NO_FATAL_FAILURE(start_standin());
  }
  EXPECT_TRUE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-damped", 1s)) << daemon_->err();
  // The tunnel is back, and 6443 stays open: damped for about half an hour.
  ASSERT_TRUE(daemon_->err_shows("TETHERD_EVENT=tunnel-connected", 90s, 4)) << daemon_->err();
  // A close would be applied by the firewall's worker and then said: the
  // wait is bounded, what it looks for must not come.
  EXPECT_FALSE(daemon_->err_shows("TETHERD_EVENT=firewall-tunnel-closed", 5s, 4)) << daemon_->err();
  EXPECT_EQ(test::to_string(cloud_connects(6443)), test::to_string(test::Outcome::kConnected));
  // A stop while damped is a stop (the damping's timer holds nothing).
  daemon_->signal(SIGTERM);
  EXPECT_EQ(daemon_->wait(20s), 0) << daemon_->err();
  daemon_.reset();
}

}  // namespace
}  // namespace tetherd::tunnel
