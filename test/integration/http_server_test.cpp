// The local HTTP server over real sockets (TCP on 127.0.0.1 port 0, a unix
// socket in a temp dir), the process metrics from the real /proc, and the
// page they make checked by Prometheus's own promtool.
//
// The server runs on its own thread, as on the daemon's loop; the test
// thread is the client, with blocking sockets whose every wait is bounded
// (kSafety), so a server that fails to close a connection fails the test
// instead of hanging it.
#include "agent/adapters/http_server.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <future>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <gtest/gtest.h>

#include "agent/adapters/process_stats.h"
#include "agent/adapters/subprocess.h"
#include "agent/core/prometheus_text.h"
#include "test/support/temp_dir.h"

namespace tetherd::test {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using std::chrono::milliseconds;
using Reply = http::response<http::string_body>;

constexpr int kSafetyMs = 10'000;

// A blocking client socket as a Beast SyncStream: each wait for bytes is
// bounded by kSafetyMs and then fails with timed_out.
class Client {
 public:
  static Client tcp(std::uint16_t port) {
    Client c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c.connected_ = ::connect(c.fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    return c;
  }
  static Client unix_socket(const std::string& path) {
    Client c(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    path.copy(a.sun_path, sizeof a.sun_path - 1);
    c.connected_ = ::connect(c.fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    return c;
  }
  Client(Client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), connected_(o.connected_) {}
  ~Client() { close(); }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

  bool connected() const { return connected_; }

  void send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  // One response; nullopt when the connection ended (or kSafety passed)
  // before a whole one came.
  std::optional<Reply> reply(bool head = false) {
    http::response_parser<http::string_body> parser;
    parser.skip(head);  // a HEAD response has a Content-Length but no body
    boost::system::error_code ec;
    http::read(*this, buffer_, parser, ec);
    if (ec) return std::nullopt;
    return parser.release();
  }
  std::optional<Reply> get(const std::string& target, const std::string& method = "GET") {
    send(method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n\r\n");
    return reply(method == "HEAD");
  }

  // Whether the server closed the connection (EOF or reset) with nothing
  // more sent, before kSafety.
  bool closed_by_server() {
    char c;
    boost::system::error_code ec;
    read_some(asio::buffer(&c, 1), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

  // Beast's SyncReadStream and SyncWriteStream.
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers, boost::system::error_code& ec) {
    const asio::mutable_buffer b = *asio::buffer_sequence_begin(buffers);
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kSafetyMs) != 1) {
      ec = asio::error::timed_out;
      return 0;
    }
    const ssize_t n = ::recv(fd_, b.data(), b.size(), 0);
    if (n == 0) ec = asio::error::eof;
    if (n < 0) ec = boost::system::error_code(errno, boost::system::system_category());
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  template <class Buffers>
  std::size_t read_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers, boost::system::error_code& ec) {
    const asio::const_buffer b = *asio::buffer_sequence_begin(buffers);
    const ssize_t n = ::send(fd_, b.data(), b.size(), MSG_NOSIGNAL);
    if (n < 0) ec = boost::system::error_code(errno, boost::system::system_category());
    return n > 0 ? static_cast<std::size_t>(n) : 0;
  }
  template <class Buffers>
  std::size_t write_some(const Buffers& buffers) {
    boost::system::error_code ec;
    const std::size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  explicit Client(int fd) : fd_(fd) {}
  int fd_;
  bool connected_ = false;
  boost::beast::flat_buffer buffer_;
};

HttpServerLimits short_limits() {
  HttpServerLimits l;
  l.read_timeout = milliseconds(100);
  l.idle_timeout = milliseconds(100);
  l.write_timeout = milliseconds(1000);
  return l;
}

HttpServerLimits long_limits() {
  // Longer than kSafety: a connection closed within it was closed on purpose.
  HttpServerLimits l;
  l.read_timeout = std::chrono::seconds(60);
  l.idle_timeout = std::chrono::seconds(60);
  return l;
}

class HttpServerTest : public testing::Test {
 protected:
  ~HttpServerTest() override {
    if (runner_.joinable()) stop_and_wait();
  }

  HttpServer::Handler handler() {
    return [this](const HttpServer::Request& r) {
      ++calls_;
      return HttpServer::Response{200, "text/plain; charset=utf-8", r.method + " " + r.target};
    };
  }

  void start_tcp(HttpServerLimits limits) {
    auto s = listen_tcp(io_, "127.0.0.1:0", handler(), limits);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    run();
  }
  void start_unix(const std::string& path, HttpServerLimits limits) {
    auto s = listen_unix(io_, path, 0600, handler(), limits);
    ASSERT_TRUE(s) << s.error().message;
    server_ = std::move(*s);
    run();
  }
  void run() {
    runner_ = std::thread([this] {
      io_.run();
      returned_.set_value();
    });
  }

  // stop() on the loop's thread; then io.run() must return by itself.
  bool stop_and_wait() {
    asio::post(io_, [this] { server_->stop(); });
    const bool returned =
        returned_.get_future().wait_for(milliseconds(kSafetyMs)) == std::future_status::ready;
    if (!returned) io_.stop();
    runner_.join();
    return returned;
  }

  // Waits for the loop to have seen connections end: asks it, on the loop,
  // until it says so (no sleeping), for at most kSafety.
  bool wait_for_open_connections(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + milliseconds(kSafetyMs);
    while (std::chrono::steady_clock::now() < deadline) {
      std::promise<std::size_t> open;
      asio::post(io_, [&] { open.set_value(server_->open_connections()); });
      if (open.get_future().get() == n) return true;
    }
    return false;
  }

  asio::io_context io_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<int> calls_ = 0;
  std::thread runner_;
  std::promise<void> returned_;
};

TEST_F(HttpServerTest, GetOverTcp) {
  start_tcp(long_limits());
  EXPECT_EQ(server_->address(), "127.0.0.1:" + std::to_string(server_->port()));
  Client c = Client::tcp(server_->port());
  auto r = c.get("/metrics?x=1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 200u);
  EXPECT_EQ(r->body(), "GET /metrics?x=1");
  EXPECT_EQ((*r)[http::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ((*r)[http::field::content_length], "16");
}

TEST_F(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnection) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  auto first = c.get("/a");
  auto second = c.get("/b");
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->body(), "GET /a");
  EXPECT_EQ(second->body(), "GET /b");
  ASSERT_TRUE(stop_and_wait());
  EXPECT_EQ(server_->stats().connections, 1u);
  EXPECT_EQ(server_->stats().requests, 2u);
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  auto a = c.reply();
  auto b = c.reply();
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->body(), "GET /a");
  EXPECT_EQ(b->body(), "GET /b");
}

TEST_F(HttpServerTest, HeadHasGetsHeadersAndNoBody) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  auto head = c.get("/status", "HEAD");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->result_int(), 200u);
  EXPECT_EQ((*head)[http::field::content_length], "12") << "the size of \"HEAD /status\"";
  EXPECT_TRUE(head->body().empty());
  // Had a body been sent, this would read it as the next response.
  auto next = c.get("/next");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body(), "GET /next");
}

TEST_F(HttpServerTest, OtherMethodsGet405WithAllow) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  auto r = c.get("/status", "POST");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 405u);
  EXPECT_EQ((*r)[http::field::allow], "GET, HEAD");
  ASSERT_TRUE(stop_and_wait());
  EXPECT_EQ(calls_, 0);
  EXPECT_EQ(server_->stats().rejected, 1u);
}

TEST_F(HttpServerTest, ARequestBodyIsRefusedAndTheConnectionClosed) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  auto r = c.reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 413u);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpServerTest, AHugeHeaderIsRefusedAndTheConnectionClosed) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16 << 10, 'a') + "\r\n\r\n");
  auto r = c.reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 431u);
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_EQ(calls_, 0);
}

TEST_F(HttpServerTest, GarbageGets400) {
  start_tcp(long_limits());
  Client c = Client::tcp(server_->port());
  c.send("\x01\x02 nonsense\r\n\r\n");
  auto r = c.reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->result_int(), 400u);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpServerTest, AClientThatStallsMidRequestIsClosedAtTheReadDeadline) {
  start_tcp(short_limits());
  Client c = Client::tcp(server_->port());
  const auto start = std::chrono::steady_clock::now();
  c.send("GET /metrics HTTP/1.1\r\nHost: x\r\n");  // and never the blank line
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
  ASSERT_TRUE(stop_and_wait());
  EXPECT_EQ(server_->stats().timeouts, 1u);
  EXPECT_EQ(calls_, 0);
}

TEST_F(HttpServerTest, AnIdleKeptAliveConnectionIsClosedAtTheIdleDeadline) {
  start_tcp(short_limits());
  Client c = Client::tcp(server_->port());
  // Before the request: the server's idle deadline starts after its answer,
  // which the client reads a moment later.
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.get("/"));
  EXPECT_TRUE(c.closed_by_server());
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
}

TEST_F(HttpServerTest, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  HttpServerLimits limits = long_limits();
  limits.max_connections = 2;
  start_tcp(limits);
  Client a = Client::tcp(server_->port());
  Client b = Client::tcp(server_->port());
  // Accepted in order: a and b hold both places when c is accepted.
  Client c = Client::tcp(server_->port());
  ASSERT_TRUE(a.connected() && b.connected() && c.connected());
  EXPECT_TRUE(c.closed_by_server());
  auto r = a.get("/still-served");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), "GET /still-served");
  // A closed connection frees its place, once the server has seen it end.
  a.send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(a.reply());
  ASSERT_TRUE(a.closed_by_server());
  a.close();
  ASSERT_TRUE(wait_for_open_connections(1));
  Client d = Client::tcp(server_->port());
  auto served = d.get("/d");
  ASSERT_TRUE(served);
  EXPECT_EQ(served->body(), "GET /d");
  ASSERT_TRUE(stop_and_wait());
  EXPECT_EQ(server_->stats().connections_refused, 1u);
  EXPECT_EQ(server_->stats().connections, 3u);
}

TEST_F(HttpServerTest, StopClosesEveryConnectionAndRunReturns) {
  start_tcp(long_limits());
  Client idle = Client::tcp(server_->port());
  ASSERT_TRUE(idle.get("/"));
  Client half = Client::tcp(server_->port());
  half.send("GET / HTTP/1.1\r\n");
  Client silent = Client::tcp(server_->port());
  ASSERT_TRUE(stop_and_wait()) << "io.run() did not return after stop()";
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_TRUE(half.closed_by_server());
  EXPECT_TRUE(silent.closed_by_server());
  EXPECT_EQ(server_->open_connections(), 0u);
  EXPECT_FALSE(Client::tcp(server_->port()).connected()) << "the listening socket is closed";
}

TEST(HttpServerListenTest, BadAddressesAndBusyPortsAreClearErrors) {
  asio::io_context io;
  auto handler = [](const HttpServer::Request&) { return HttpServer::Response{}; };
  for (const char* bad : {"localhost:9477", "127.0.0.1", "::1:9477", "[::1:9477", "1.2.3.4:99999",
                          "127.0.0.1:", ":9477"}) {
    auto s = listen_tcp(io, bad, handler);
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message.find("expected ADDRESS:PORT"), std::string::npos)
        << s.error().message;
  }
  auto first = listen_tcp(io, "127.0.0.1:0", handler);
  ASSERT_TRUE(first) << first.error().message;
  const std::string taken = (*first)->address();
  auto second = listen_tcp(io, taken, handler);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message, "listen on " + taken + ": Address already in use");
  auto absent = listen_tcp(io, "192.0.2.1:0", handler);
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().message, "listen on 192.0.2.1:0: Cannot assign requested address");
}

TEST_F(HttpServerTest, GetOverTcpOnIpv6Loopback) {
  auto s = listen_tcp(io_, "[::1]:0", handler(), long_limits());
  if (!s && s.error().message.find("Cannot assign") != std::string::npos)
    GTEST_SKIP() << "no IPv6 loopback here: " << s.error().message;
  ASSERT_TRUE(s) << s.error().message;
  server_ = std::move(*s);
  EXPECT_EQ(server_->address(), "[::1]:" + std::to_string(server_->port()));
  run();
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(server_->port());
  a.sin6_addr = in6addr_loopback;
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
}

mode_t file_mode(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode;
}

// A socket file nobody listens on: what a crashed daemon leaves behind.
void make_stale_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  path.copy(a.sun_path, sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::close(fd);
}

TEST_F(HttpServerTest, GetOverAUnixSocketThatOnlyItsOwnerMayUse) {
  TempDir dir;
  const std::string path = dir.file("tetherd.sock");
  const mode_t umask_before = ::umask(0);  // the most permissive: the mode still holds
  start_unix(path, long_limits());
  EXPECT_EQ(::umask(umask_before), 0u) << "the umask is restored";
  EXPECT_TRUE(S_ISSOCK(file_mode(path)));
  EXPECT_EQ(file_mode(path) & 07777, 0600u);
  EXPECT_EQ(server_->address(), path);
  EXPECT_EQ(server_->port(), 0u);
  Client c = Client::unix_socket(path);
  auto r = c.get("/status");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body(), "GET /status");
  ASSERT_TRUE(stop_and_wait());
  EXPECT_FALSE(std::filesystem::exists(path)) << "removed on stop";
}

TEST_F(HttpServerTest, AStaleSocketFileIsReplaced) {
  TempDir dir;
  const std::string path = dir.file("tetherd.sock");
  make_stale_socket(path);
  ASSERT_TRUE(S_ISSOCK(file_mode(path)));
  start_unix(path, long_limits());
  Client c = Client::unix_socket(path);
  ASSERT_TRUE(c.get("/"));
}

TEST(HttpServerUnixTest, WhatIsNotAStaleSocketIsRefused) {
  TempDir dir;
  asio::io_context io;
  auto handler = [](const HttpServer::Request&) { return HttpServer::Response{}; };
  const std::string file = dir.file("not-a-socket");
  std::ofstream(file) << "precious";
  auto s = listen_unix(io, file, 0600, handler);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, "unix socket " + file +
                                   ": the path exists and is not a socket; refusing to replace it");
  std::ifstream in(file);
  std::string kept;
  in >> kept;
  EXPECT_EQ(kept, "precious");

  const std::string path = dir.file("tetherd.sock");
  auto live = listen_unix(io, path, 0600, handler);
  ASSERT_TRUE(live) << live.error().message;
  auto second = listen_unix(io, path, 0600, handler);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().message, "unix socket " + path + ": another process is listening on it");

  const std::string orphan = dir.path() + "/missing/tetherd.sock";
  auto missing = listen_unix(io, orphan, 0600, handler);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message, "unix socket " + orphan + ": directory " + dir.path() +
                                         "/missing: No such file or directory");

  auto relative = listen_unix(io, "tetherd.sock", 0600, handler);
  ASSERT_FALSE(relative);
  auto too_long = listen_unix(io, "/" + std::string(200, 'x'), 0600, handler);
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("longer than 107 bytes"), std::string::npos);
}

TEST_F(HttpServerTest, StopRemovesOnlyItsOwnSocketFile) {
  TempDir dir;
  const std::string path = dir.file("tetherd.sock");
  start_unix(path, long_limits());
  // Someone replaced the file meanwhile (a second daemon, an operator).
  ASSERT_EQ(::unlink(path.c_str()), 0);
  make_stale_socket(path);
  ASSERT_TRUE(stop_and_wait());
  EXPECT_TRUE(S_ISSOCK(file_mode(path))) << "not ours: left alone";
}

void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(ProcessStatsTest, ReadsProcTheWayClientLibrariesDo) {
  TempDir proc;
  // The command name may hold spaces and ')'.
  write_file(proc.file("self/stat"),
             "4242 (tether d) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 "
             "250 150 0 0 20 0 3 0 1000 123456789 300 18446744073709551615 1 1 0 0 0 0 0\n");
  write_file(proc.file("stat"),
             "cpu  1 2 3 4\nintr 12345 1 2 3\nctxt 99\nbtime 1700000000\nprocesses 5\n");
  write_file(proc.file("self/limits"),
             "Limit                     Soft Limit           Hard Limit           Units     \n"
             "Max cpu time              unlimited            unlimited            seconds   \n"
             "Max open files            1024                 524288               files     \n");
  for (const char* fd : {"0", "1", "2", "5"})
    write_file(proc.file(std::string("self/fd/") + fd), "");

  auto stats = read_process_stats(proc.path());
  ASSERT_TRUE(stats) << stats.error().message;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(stats->cpu_seconds, 400 / ticks);
  EXPECT_EQ(stats->virtual_bytes, 123456789u);
  EXPECT_EQ(stats->resident_bytes, 300u * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(stats->start_time_seconds, 1700000000 + 1000 / ticks);
  EXPECT_EQ(stats->max_fds, 1024u);
  EXPECT_EQ(stats->open_fds, 4u);
}

TEST(ProcessStatsTest, AMalformedFileIsAClearError) {
  TempDir proc;
  write_file(proc.file("self/stat"), "4242 (tetherd) S 1 2\n");
  auto stats = read_process_stats(proc.path());
  ASSERT_FALSE(stats);
  EXPECT_EQ(stats.error().message, proc.file("self/stat") + ": unexpected format");
  auto absent = read_process_stats(proc.file("nowhere"));
  ASSERT_FALSE(absent);
  EXPECT_EQ(absent.error().message, proc.file("nowhere/self/stat") + ": No such file or directory");
}

TEST(ProcessStatsTest, ThisProcessFromTheRealProc) {
  auto stats = read_process_stats();
  ASSERT_TRUE(stats) << stats.error().message;
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GT(stats->start_time_seconds, now - 24 * 3600) << "started within the day";
  EXPECT_LE(stats->start_time_seconds, now + 1);
  EXPECT_GE(stats->open_fds, 3u);
  EXPECT_GT(stats->resident_bytes, 0u);
  EXPECT_GE(stats->virtual_bytes, stats->resident_bytes);
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  EXPECT_EQ(stats->max_fds, limit.rlim_cur);
}

// The page tetherd serves, as Prometheus itself judges it: the writer, the
// process metrics and a few of tetherd's own families, scraped over HTTP
// and checked (and linted) by promtool.
TEST_F(HttpServerTest, AScrapedPagePassesPromtool) {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    if (std::getenv("CI") != nullptr)
      FAIL() << promtool << " is missing (Debian package prometheus; scripts/install-deps)";
    GTEST_SKIP() << promtool << " is missing (Debian package prometheus)";
  }
  auto process = read_process_stats();
  ASSERT_TRUE(process) << process.error().message;
  MetricsPage page;
  append_process_metrics(page, *process);
  page.family("tetherd_condition", MetricType::kGauge,
              "Whether each EdgeNode condition has this status (1) or not (0).");
  for (const char* type : {"Ready", "Connected"}) {
    for (const char* status : {"True", "False", "Unknown"})
      page.sample("tetherd_condition", {{"type", type}, {"status", status}},
                  std::string_view(status) == "True" ? 1 : 0);
  }
  page.family("tetherd_certificate_expiry_timestamp_seconds", MetricType::kGauge,
              "When each certificate expires, in seconds since the Unix epoch.");
  page.sample("tetherd_certificate_expiry_timestamp_seconds", {{"name", "linkerd-issuer"}},
              1700000000);
  page.sample("tetherd_certificate_expiry_timestamp_seconds", {{"name", "odd \"name\"\\\n"}},
              1.7e9 + 0.5);
  page.family("tetherd_controlplane_reconnects_total", MetricType::kCounter,
              "Times the connection to the control plane was dialled again.");
  page.sample("tetherd_controlplane_reconnects_total", {}, 3);
  ASSERT_TRUE(page.problems().empty()) << page.problems().front();

  auto s = listen_tcp(
      io_, "127.0.0.1:0",
      [text = page.str()](const HttpServer::Request&) {
        return HttpServer::Response{200, std::string(kPrometheusContentType), text};
      },
      long_limits());
  ASSERT_TRUE(s) << s.error().message;
  server_ = std::move(*s);
  run();
  Client c = Client::tcp(server_->port());
  auto r = c.get("/metrics");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->result_int(), 200u);
  EXPECT_EQ((*r)[http::field::content_type], kPrometheusContentType);
  EXPECT_EQ(r->body(), page.str());

  TempDir dir;
  const std::string scraped = dir.file("metrics.txt");
  std::ofstream(scraped) << r->body();
  auto checked =
      run_command({"/bin/sh", "-c", "exec \"$0\" check metrics < \"$1\"", promtool, scraped});
  ASSERT_TRUE(checked) << checked.error().message;
  EXPECT_EQ(checked->exit_code, 0) << checked->out << checked->err << "\n" << r->body();
  EXPECT_EQ(checked->out + checked->err, "") << "promtool's lint has something to say";
}

}  // namespace
}  // namespace tetherd::test
