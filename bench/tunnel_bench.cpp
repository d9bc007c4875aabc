// The tunnel's cost (issue 24): bytes and round trips through tetherd's
// konnectivity agent against the same over a direct loopback connection,
// and what an open stream costs the agent.
//
// The agent is tetherd's TunnelAgent as the daemon runs it, in a process of
// its own (forked before any thread starts) so that the memory and CPU read
// from /proc are its alone. It dials a konnectivity server's agent port made
// here: TLS 1.3 with client certificates (made by the bench), HTTP/2 by
// nghttp2 and the one gRPC call, AgentService.Connect, as upstream's server
// answers it. The server is C++ so that it is not what is measured (the
// tests' Python stand-in moves a few MiB/s). The destinations (an echo, a
// sink and a source, plain and behind TLS) run on a thread of their own, as
// k3s would.
//
//   bench/tunnel [MiB]     (default 256; no root needed; the release build)
//
// Throughput is one transfer of MiB each way: to the destination (the
// cloud's request bodies) and from it (the API's answers), through the
// tunnel, over a plain loopback connection, and over TLS on loopback (what
// a cloud client's connection to k3s on an open 6443 is), and the client's
// TLS to a TLS destination inside the tunnel (as proxy-url carries it; the
// server's frontend socket hop is not in it). Latency is the
// median of 2000 round trips of 64 bytes to the echo. Memory per stream is
// the agent's RSS with 100 streams open (each carried one round trip)
// against none. Numbers go in the README with this command.

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nghttp2/nghttp2.h>
#include <sstream>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>

#include "agent/adapters/system_clock.h"
#include "agent/kube/https_client.h"
#include "agent/tunnel/grpc_framing.h"
#include "agent/tunnel/tunnel_agent.h"
#include "test/support/test_pki.h"

namespace {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;
using namespace tetherd;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kChunk = 32 << 10;  // upstream's server reads its frontends in 32 KiB
constexpr int kRoundTrips = 2000;
constexpr int kStreams = 100;

[[noreturn]] void die(const std::string& why) {
  std::cerr << "tunnel_bench: " << why << "\n";
  std::exit(1);
}

// A listening socket on 127.0.0.1, made before the fork: its port is known
// to both processes.
int listen_socket(std::uint16_t& port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd, 256) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    die(std::string("listening: ") + std::strerror(errno));
  port = ntohs(a.sin_port);
  return fd;
}

std::string header8(std::uint64_t n) {
  return std::string(reinterpret_cast<char*>(&n), 8);
}

// --- the agent's process ----------------------------------------------------

class StderrLog final : public Log {
 public:
  void write(Priority priority, std::string_view event, std::string_view message,
             std::initializer_list<LogField>) override {
    if (priority <= Priority::kWarning) std::cerr << "agent: " << event << ": " << message << "\n";
  }
};

[[noreturn]] void run_agent(std::uint16_t server_port, const Kubeconfig& credentials,
                            const std::vector<std::string>& destinations) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  asio::io_context io;
  SystemClock clock;
  StderrLog log;
  tunnel::TunnelSettings settings;
  settings.server_url = "https://127.0.0.1:" + std::to_string(server_port);
  settings.server = *kube::parse_server_address(settings.server_url, "");
  settings.identity = {"bench-node", "host=127.0.0.1"};
  for (const auto& d : destinations)
    settings.destinations.push_back(*parse_destination(d));
  auto tls = kube::client_context(credentials);
  if (!tls) die("the agent's TLS context: " + tls.error().message);
  tunnel::TunnelAgent agent(io.get_executor(), clock, log, settings, *tls);
  agent.start();
  io.run();
  std::exit(0);
}

struct ProcessCost {
  long rss_kib = 0;
  double cpu_seconds = 0;
};

ProcessCost cost_of(pid_t pid) {
  ProcessCost c;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("VmRSS:")) c.rss_kib = std::stol(line.substr(6));
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string all((std::istreambuf_iterator<char>(stat)), {});
  std::istringstream rest(all.substr(all.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  c.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  return c;
}

// --- the destinations (k3s's place), on their own thread --------------------

awaitable<void> serve(tcp::acceptor& acceptor, awaitable<void> (*handler)(tcp::socket)) {
  for (;;) {
    auto [ec, s] = co_await acceptor.async_accept(nothrow);
    if (ec) co_return;
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), handler(std::move(s)), asio::detached);
  }
}

awaitable<void> echo(tcp::socket s) {
  std::array<char, 16 << 10> buf{};
  for (;;) {
    auto [rec, n] = co_await s.async_read_some(asio::buffer(buf), nothrow);
    if (rec) co_return;
    auto [wec, w] = co_await asio::async_write(s, asio::buffer(buf.data(), n), nothrow);
    if (wec) co_return;
  }
}

// Reads 8 bytes (a count), then that many; says "k" when they are all in.
template <class Stream>
awaitable<void> sink(Stream s) {
  std::uint64_t want = 0;
  auto [hec, h] = co_await asio::async_read(s, asio::buffer(&want, 8), nothrow);
  if (hec) co_return;
  std::vector<char> buf(64 << 10);
  for (std::uint64_t got = 0; got < want;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), nothrow);
    if (ec) co_return;
    got += n;
  }
  co_await asio::async_write(s, asio::buffer("k", 1), nothrow);
  co_await s.async_read_some(asio::buffer(buf), nothrow);  // until closed
}

// Reads 8 bytes (a count), then writes that many.
template <class Stream>
awaitable<void> source(Stream s) {
  std::uint64_t want = 0;
  auto [hec, h] = co_await asio::async_read(s, asio::buffer(&want, 8), nothrow);
  if (hec) co_return;
  const std::vector<char> buf(64 << 10, 'x');
  for (std::uint64_t sent = 0; sent < want;) {
    const auto n = std::min<std::uint64_t>(buf.size(), want - sent);
    auto [ec, w] = co_await asio::async_write(s, asio::buffer(buf.data(), n), nothrow);
    if (ec) co_return;
    sent += w;
  }
  std::array<char, 16> rest{};
  co_await s.async_read_some(asio::buffer(rest), nothrow);  // until closed
}

// k3s as a cloud client reaches it without the tunnel: behind TLS.
using TlsStream = asio::ssl::stream<tcp::socket>;
awaitable<void> serve_tls(tcp::acceptor& acceptor, asio::ssl::context& tls,
                          awaitable<void> (*handler)(TlsStream)) {
  for (;;) {
    auto [ec, s] = co_await acceptor.async_accept(nothrow);
    if (ec) co_return;
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(
        acceptor.get_executor(),
        [](TlsStream t, awaitable<void> (*handler)(TlsStream)) -> awaitable<void> {
          auto [hec] = co_await t.async_handshake(asio::ssl::stream_base::server, nothrow);
          if (!hec) co_await handler(std::move(t));
        }(TlsStream(std::move(s), tls), handler),
        asio::detached);
  }
}

// --- the konnectivity server's agent port -----------------------------------

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

class AgentPort {
 public:
  struct Stream {
    std::int64_t id = 0;
    std::string received;   // kept only while `keep`
    std::size_t taken = 0;  // of `received`, read by a TunnelStream
    std::uint64_t bytes = 0;
    bool keep = true;
    bool closed = false;
  };

  // Made before the stream: an SSL object takes its certificate from the
  // context when it is made. Client certificates required, as upstream's
  // agent port (and k3s) ask.
  static asio::ssl::context server_context(const test::TestCa& ca, const test::IssuedCert& cert);
  const std::string& cipher() const { return cipher_; }

  AgentPort(asio::io_context& io, int fd, const test::TestCa& ca, const test::IssuedCert& cert)
      : io_(io),
        acceptor_(io, tcp::v4(), fd),
        tls_(server_context(ca, cert)),
        stream_(io, tls_),
        changed_(io),
        kick_(io),
        reader_(2 << 20) {}
  ~AgentPort() {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  // Takes the agent's connection and answers its call.
  awaitable<void> accept() {
    asio::steady_timer deadline(io_, std::chrono::seconds(30));
    deadline.async_wait([this](boost::system::error_code e) {
      if (!e) acceptor_.close();
    });
    auto [ec] = co_await acceptor_.async_accept(stream_.next_layer(), nothrow);
    deadline.cancel();
    if (ec) die("no connection from the agent within 30 s: " + ec.message());
    stream_.next_layer().set_option(tcp::no_delay(true));
    auto [hec] = co_await stream_.async_handshake(asio::ssl::stream_base::server, nothrow);
    if (hec) die("TLS with the agent: " + hec.message());
    cipher_ = SSL_get_cipher_name(stream_.native_handle());
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &AgentPort::on_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &AgentPort::on_data);
    nghttp2_session_server_new(&session_, callbacks, this);
    nghttp2_session_callbacks_del(callbacks);
    // As gRPC-Go grows its windows (BDP estimation) to 16 MiB at most.
    const std::array<nghttp2_settings_entry, 2> settings{{
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20},
    }};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    asio::co_spawn(io_, read_loop(), asio::detached);
    asio::co_spawn(io_, write_loop(), asio::detached);
    co_await until([this] { return call_ > 0; });
  }

  awaitable<std::int64_t> dial(const std::string& address) {
    const std::int64_t random = ++random_;
    Packet p;
    p.set_type(DIAL_REQ);
    p.mutable_dialrequest()->set_protocol("tcp");
    p.mutable_dialrequest()->set_address(address);
    p.mutable_dialrequest()->set_random(random);
    send(p);
    co_await until([&] { return dialled_.contains(random); });
    const auto id = dialled_[random];
    if (id <= 0) die("the agent refused a dial to " + address);
    streams_[id].id = id;
    co_return id;
  }
  void data(std::int64_t id, std::string_view bytes) {
    Packet p;
    p.set_type(DATA);
    p.mutable_data()->set_connectid(id);
    p.mutable_data()->set_data(std::string(bytes));
    send(p);
  }
  void close(std::int64_t id) {
    Packet p;
    p.set_type(CLOSE_REQ);
    p.mutable_closerequest()->set_connectid(id);
    send(p);
  }
  Stream& stream(std::int64_t id) { return streams_[id]; }
  asio::io_context& context() { return io_; }
  std::size_t queued() const { return out_.size() - sent_; }

  // Waits for `p`, looked at again whenever a packet comes or the queue
  // goes down; a minute without it ends the bench (a stream the agent
  // closed, an agent that died), as does the connection's end.
  template <class P>
  awaitable<void> until(P p) {
    const auto give_up = Clock::now() + std::chrono::minutes(1);
    while (!p()) {
      if (failed_) die("the agent's connection: " + why_);
      if (Clock::now() > give_up) die("no progress through the tunnel for a minute");
      changed_.expires_at(give_up);
      co_await changed_.async_wait(nothrow);
    }
  }

 private:
  void send(const Packet& p) {
    out_ += tunnel::frame_message(p.SerializeAsString());
    if (deferred_ && call_ > 0) {
      deferred_ = false;
      nghttp2_session_resume_data(session_, call_);
    }
    kick_.cancel();
  }
  void fail(std::string why) {
    failed_ = true;
    why_ = std::move(why);
    changed_.cancel();
  }

  awaitable<void> read_loop() {
    std::vector<char> buf(64 << 10);
    for (;;) {
      auto [ec, n] = co_await stream_.async_read_some(asio::buffer(buf), nothrow);
      if (ec) co_return fail("reading: " + ec.message());
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(buf.data()), n) < 0)
        co_return fail("HTTP/2 from the agent");
      kick_.cancel();
      changed_.cancel();
    }
  }
  awaitable<void> write_loop() {
    std::string out;
    for (;;) {
      out.clear();
      const uint8_t* data = nullptr;
      for (ssize_t n;
           out.size() < (256 << 10) && (n = nghttp2_session_mem_send(session_, &data)) > 0;)
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      if (sent_ > (1 << 20)) {
        out_.erase(0, sent_);
        sent_ = 0;
      }
      if (out.empty()) {
        kick_.expires_at(asio::steady_timer::time_point::max());
        co_await kick_.async_wait(nothrow);
        continue;
      }
      auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(out), nothrow);
      if (ec) co_return fail("writing: " + ec.message());
      changed_.cancel();  // the queue went down
    }
  }

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t*,
                           nghttp2_data_source*, void* user) {
    auto& s = *static_cast<AgentPort*>(user);
    const std::size_t n = std::min(length, s.queued());
    if (n == 0) {
      s.deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    std::memcpy(buf, s.out_.data() + s.sent_, n);
    s.sent_ += n;
    return static_cast<ssize_t>(n);
  }

  static int on_frame(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
    auto& s = *static_cast<AgentPort*>(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    s.call_ = frame->hd.stream_id;
    const std::array<nghttp2_nv, 4> headers{{
        header(":status", "200"),
        header("content-type", "application/grpc"),
        header("serverid", "bench-server"),
        header("servercount", "1"),
    }};
    nghttp2_data_provider body{};
    body.read_callback = &AgentPort::read_body;
    nghttp2_submit_response(session, s.call_, headers.data(), headers.size(), &body);
    return 0;
  }

  static int on_data(nghttp2_session*, uint8_t, int32_t, const uint8_t* data, size_t len,
                     void* user) {
    auto& s = *static_cast<AgentPort*>(user);
    if (!s.reader_.feed(std::string_view(reinterpret_cast<const char*>(data), len)))
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    while (s.reader_.has_message()) {
      Packet p;
      if (!p.ParseFromString(s.reader_.next())) return NGHTTP2_ERR_CALLBACK_FAILURE;
      switch (p.type()) {
        case DIAL_RSP:
          s.dialled_[p.dialresponse().random()] =
              p.dialresponse().error().empty() ? p.dialresponse().connectid() : -1;
          break;
        case DATA: {
          auto& st = s.streams_[p.data().connectid()];
          st.bytes += p.data().data().size();
          if (st.keep) st.received += p.data().data();
          break;
        }
        case CLOSE_RSP:
          s.streams_[p.closeresponse().connectid()].closed = true;
          break;
        default:
          break;
      }
    }
    return 0;
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  asio::ssl::context tls_;
  asio::ssl::stream<tcp::socket> stream_;
  std::string cipher_;  // the tunnel's TLS hop's, once the agent is in
  asio::steady_timer changed_;
  asio::steady_timer kick_;
  nghttp2_session* session_ = nullptr;
  std::int32_t call_ = 0;
  tunnel::MessageReader reader_;
  std::string out_;
  std::size_t sent_ = 0;
  bool deferred_ = false;
  std::int64_t random_ = 0;
  std::map<std::int64_t, std::int64_t> dialled_;
  std::map<std::int64_t, Stream> streams_;
  bool failed_ = false;
  std::string why_;
};

asio::ssl::context AgentPort::server_context(const test::TestCa& ca, const test::IssuedCert& cert) {
  asio::ssl::context tls(asio::ssl::context::tls_server);
  tls.use_certificate_chain(asio::buffer(cert.cert_pem));
  tls.use_private_key(asio::buffer(cert.key_pem), asio::ssl::context::pem);
  tls.add_certificate_authority(asio::buffer(ca.cert_pem()));
  tls.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  // The TLS 1.3 cipher as the real servers choose it: the konnectivity
  // server and k3s are Go, whose crypto/tls takes AES-128-GCM first on a
  // machine with AES instructions whatever the client's order (OpenSSL's,
  // tetherd's, lists AES-256-GCM first, which OpenSSL's own server would
  // take).
  SSL_CTX_set_ciphersuites(tls.native_handle(),
                           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                           "TLS_CHACHA20_POLY1305_SHA256");
  SSL_CTX_set_options(tls.native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_alpn_select_cb(
      tls.native_handle(),
      [](SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
         unsigned inlen, void*) {
        static const unsigned char h2[] = {2, 'h', '2'};
        unsigned char* chosen = nullptr;
        if (SSL_select_next_proto(&chosen, outlen, h2, sizeof h2, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
          return SSL_TLSEXT_ERR_ALERT_FATAL;
        *out = chosen;
        return SSL_TLSEXT_ERR_OK;
      },
      nullptr);
  return tls;
}

// --- the measurements -------------------------------------------------------

// With TUNNEL_BENCH_SAY_PID, each tunnel phase's start on CLOCK_MONOTONIC,
// for `perf record -k CLOCK_MONOTONIC -p <agent>` and `perf report --time`.
void mark(const char* phase) {
  if (std::getenv("TUNNEL_BENCH_SAY_PID") == nullptr) return;
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  std::fprintf(stderr, "phase %s %ld.%06ld\n", phase, static_cast<long>(now.tv_sec),
               now.tv_nsec / 1000);
}

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Ports {
  std::uint16_t agent = 0, echo = 0, sink = 0, source = 0, tls_sink = 0, tls_source = 0;
};

struct Results {
  double up_direct = 0, up_tunnel = 0, down_direct = 0, down_tunnel = 0;          // MiB/s
  double up_tls = 0, down_tls = 0;                                                // MiB/s
  double up_tls_tunnel = 0, down_tls_tunnel = 0;                                  // MiB/s
  double rtt_direct = 0, rtt_tunnel = 0, rtt_direct_p99 = 0, rtt_tunnel_p99 = 0;  // µs
  double agent_cpu_per_gib = 0, agent_cpu_up = 0, agent_cpu_down = 0;             // s
  // Every process's CPU per GiB (both directions) and the cores it kept
  // busy: direct TLS (client and destination, this process) and the
  // tunnel (server and destination here, and the agent).
  double all_cpu_tls = 0, all_cpu_tunnel = 0, cores_tls = 0, cores_tunnel = 0;
  long rss_idle = 0, rss_streams = 0, rss_closed = 0;  // KiB
};

// This process's CPU (every thread: the server's port, the clients and the
// destinations), in seconds.
double own_cpu() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto s = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return s(u.ru_utime) + s(u.ru_stime);
}

double median_us(std::vector<double>& v, double q = 0.5) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))] * 1e6;
}

// A stream through the tunnel as a cloud client has it through the
// server's frontend (proxy-url): bytes written go out as DATA, DATA that
// comes back is read. With ssl::stream on top, the client's TLS to a TLS
// destination travels inside the tunnel, as a real request does.
class TunnelStream {
 public:
  using executor_type = asio::any_io_executor;
  using lowest_layer_type = TunnelStream;
  TunnelStream(AgentPort& port, std::int64_t id) : port_(&port), id_(id) {}
  TunnelStream(TunnelStream&& o) noexcept : port_(o.port_), id_(std::exchange(o.id_, 0)) {}
  ~TunnelStream() {
    if (id_ != 0) port_->close(id_);
  }
  executor_type get_executor() { return port_->context().get_executor(); }
  lowest_layer_type& lowest_layer() { return *this; }

  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, Buffers b) {
          asio::co_spawn(
              get_executor(),
              [this, b]() -> awaitable<std::pair<boost::system::error_code, std::size_t>> {
                auto& st = port_->stream(id_);
                if (asio::buffer_size(b) == 0) co_return std::pair{boost::system::error_code{}, 0};
                co_await port_->until([&] { return st.received.size() > st.taken || st.closed; });
                if (st.received.size() == st.taken)
                  co_return std::pair{boost::system::error_code(asio::error::eof), 0};
                const std::size_t n = asio::buffer_copy(
                    b, asio::buffer(st.received.data() + st.taken, st.received.size() - st.taken));
                st.taken += n;
                if (st.taken == st.received.size()) {
                  st.received.clear();
                  st.taken = 0;
                }
                co_return std::pair{boost::system::error_code{}, n};
              },
              [h = std::move(handler)](std::exception_ptr e, auto r) mutable {
                if (e) std::rethrow_exception(e);
                std::move(h)(r.first, r.second);
              });
        },
        token, buffers);
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, Buffers b) {
          asio::co_spawn(
              get_executor(),
              [this, b]() -> awaitable<std::size_t> {
                co_await port_->until([&] { return port_->queued() < (1 << 20); });
                std::string out(std::min<std::size_t>(asio::buffer_size(b), kChunk), '\0');
                asio::buffer_copy(asio::buffer(out), b);
                port_->data(id_, out);
                co_return out.size();
              },
              [h = std::move(handler)](std::exception_ptr e, std::size_t n) mutable {
                if (e) std::rethrow_exception(e);
                std::move(h)(boost::system::error_code{}, n);
              });
        },
        token, buffers);
  }

 private:
  AgentPort* port_;
  std::int64_t id_;
};
using TlsThroughTunnel = asio::ssl::stream<TunnelStream>;

// `bytes` to the sink and from the source over `Stream`, in MiB/s.
template <class Stream>
awaitable<std::pair<double, double>> direct(std::function<awaitable<Stream>(std::uint16_t)> open,
                                            std::uint16_t sink_port, std::uint16_t source_port,
                                            std::uint64_t bytes) {
  const std::string payload(kChunk, 'x');
  const double mib = static_cast<double>(bytes) / (1 << 20);
  std::pair<double, double> rates;
  {
    Stream s = co_await open(sink_port);
    const auto t0 = Clock::now();
    co_await asio::async_write(s, asio::buffer(header8(bytes)), asio::use_awaitable);
    for (std::uint64_t sent = 0; sent < bytes; sent += kChunk)
      co_await asio::async_write(
          s, asio::buffer(payload.data(), std::min<std::uint64_t>(kChunk, bytes - sent)),
          asio::use_awaitable);
    char k = 0;
    co_await asio::async_read(s, asio::buffer(&k, 1), asio::use_awaitable);
    rates.first = mib / seconds_since(t0);
  }
  {
    Stream s = co_await open(source_port);
    std::vector<char> buf(64 << 10);
    const auto t0 = Clock::now();
    co_await asio::async_write(s, asio::buffer(header8(bytes)), asio::use_awaitable);
    for (std::uint64_t got = 0; got < bytes;)
      got += co_await s.async_read_some(asio::buffer(buf), asio::use_awaitable);
    rates.second = mib / seconds_since(t0);
  }
  co_return rates;
}

awaitable<void> measure(AgentPort& port, pid_t agent, Ports ports, asio::ssl::context& client_tls,
                        std::uint64_t bytes, Results& r) {
  auto ex = co_await asio::this_coro::executor;
  const auto loopback = asio::ip::make_address("127.0.0.1");
  const std::string payload(kChunk, 'x');
  const double mib = static_cast<double>(bytes) / (1 << 20);
  const auto echo_port = ports.echo, sink_port = ports.sink, source_port = ports.source;
  co_await port.accept();

  // Direct: the same bytes over one loopback connection, and over TLS (as
  // a cloud client reaches k3s when 6443 is open to it).
  std::tie(r.up_direct, r.down_direct) = co_await direct<tcp::socket>(
      [&](std::uint16_t to) -> awaitable<tcp::socket> {
        tcp::socket s(ex);
        co_await s.async_connect({loopback, to}, asio::use_awaitable);
        s.set_option(tcp::no_delay(true));
        co_return s;
      },
      sink_port, source_port, bytes);
  const double tls_cpu0 = own_cpu();
  const auto tls_t0 = Clock::now();
  std::tie(r.up_tls, r.down_tls) = co_await direct<TlsStream>(
      [&](std::uint16_t to) -> awaitable<TlsStream> {
        TlsStream s(ex, client_tls);
        s.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
        co_await s.next_layer().async_connect({loopback, to}, asio::use_awaitable);
        s.next_layer().set_option(tcp::no_delay(true));
        co_await s.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        co_return s;
      },
      ports.tls_sink, ports.tls_source, bytes);
  const double tls_cpu = own_cpu() - tls_cpu0;
  r.all_cpu_tls = tls_cpu / (2 * mib / 1024);
  r.cores_tls = tls_cpu / seconds_since(tls_t0);
  {
    tcp::socket s(ex);
    co_await s.async_connect({loopback, echo_port}, asio::use_awaitable);
    s.set_option(tcp::no_delay(true));
    std::vector<double> rtts;
    std::array<char, 64> buf{};
    for (int i = 0; i < kRoundTrips; ++i) {
      const auto t0 = Clock::now();
      co_await asio::async_write(s, asio::buffer(payload.data(), 64), asio::use_awaitable);
      co_await asio::async_read(s, asio::buffer(buf), asio::use_awaitable);
      rtts.push_back(seconds_since(t0));
    }
    r.rtt_direct = median_us(rtts);
    r.rtt_direct_p99 = median_us(rtts, 0.99);
  }

  // Through the tunnel.
  const auto cpu0 = cost_of(agent).cpu_seconds;
  const double tunnel_cpu0 = own_cpu();
  const auto tunnel_t0 = Clock::now();
  mark("to");
  {
    const auto id = co_await port.dial("127.0.0.1:" + std::to_string(sink_port));
    const auto t0 = Clock::now();
    port.data(id, header8(bytes));
    for (std::uint64_t sent = 0; sent < bytes; sent += kChunk) {
      co_await port.until([&] { return port.queued() < (1 << 20); });
      port.data(id,
                std::string_view(payload).substr(0, std::min<std::uint64_t>(kChunk, bytes - sent)));
    }
    co_await port.until([&] { return !port.stream(id).received.empty(); });
    r.up_tunnel = mib / seconds_since(t0);
    port.close(id);
  }
  const auto cpu1 = cost_of(agent).cpu_seconds;
  mark("from");
  {
    const auto id = co_await port.dial("127.0.0.1:" + std::to_string(source_port));
    port.stream(id).keep = false;
    const auto t0 = Clock::now();
    port.data(id, header8(bytes));
    co_await port.until([&] { return port.stream(id).bytes >= bytes; });
    r.down_tunnel = mib / seconds_since(t0);
    port.close(id);
  }
  r.agent_cpu_per_gib = (cost_of(agent).cpu_seconds - cpu0) / (2 * mib / 1024);
  r.agent_cpu_up = (cpu1 - cpu0) / (mib / 1024);
  r.agent_cpu_down = (cost_of(agent).cpu_seconds - cpu1) / (mib / 1024);
  const double tunnel_cpu = cost_of(agent).cpu_seconds - cpu0 + own_cpu() - tunnel_cpu0;
  r.all_cpu_tunnel = tunnel_cpu / (2 * mib / 1024);
  r.cores_tunnel = tunnel_cpu / seconds_since(tunnel_t0);
  mark("end");
  // The client's TLS to k3s's inside the tunnel (as through proxy-url).
  std::tie(r.up_tls_tunnel, r.down_tls_tunnel) = co_await direct<TlsThroughTunnel>(
      [&](std::uint16_t to) -> awaitable<TlsThroughTunnel> {
        const auto id = co_await port.dial("127.0.0.1:" + std::to_string(to));
        TlsThroughTunnel s(TunnelStream(port, id), client_tls);
        s.set_verify_callback(asio::ssl::host_name_verification("127.0.0.1"));
        co_await s.async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        co_return s;
      },
      ports.tls_sink, ports.tls_source, bytes);
  {
    const auto id = co_await port.dial("127.0.0.1:" + std::to_string(echo_port));
    std::vector<double> rtts;
    auto& st = port.stream(id);
    for (int i = 0; i < kRoundTrips; ++i) {
      st.received.clear();
      const auto t0 = Clock::now();
      port.data(id, std::string_view(payload).substr(0, 64));
      co_await port.until([&] { return st.received.size() >= 64; });
      rtts.push_back(seconds_since(t0));
    }
    r.rtt_tunnel = median_us(rtts);
    r.rtt_tunnel_p99 = median_us(rtts, 0.99);
    port.close(id);
    co_await port.until([&] { return port.stream(id).closed; });
  }

  // Memory per open stream: 100 dialled, each carrying one round trip.
  r.rss_idle = cost_of(agent).rss_kib;
  std::vector<std::int64_t> ids;
  for (int i = 0; i < kStreams; ++i) {
    const auto id = co_await port.dial("127.0.0.1:" + std::to_string(echo_port));
    port.data(id, std::string_view(payload).substr(0, 64));
    co_await port.until([&] { return port.stream(id).received.size() >= 64; });
    ids.push_back(id);
  }
  r.rss_streams = cost_of(agent).rss_kib;
  for (auto id : ids)
    port.close(id);
  co_await port.until([&] {
    return std::all_of(ids.begin(), ids.end(), [&](auto id) { return port.stream(id).closed; });
  });
  r.rss_closed = cost_of(agent).rss_kib;
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t bytes = (argc > 1 ? std::stoull(argv[1]) : 256) << 20;
  const test::TestCa ca;
  const auto server_cert = ca.issue(
      {.common_name = "konnectivity-server", .ip_addresses = {"127.0.0.1"}, .client_auth = false});
  const auto agent_cert = ca.issue({.common_name = "tetherd:bench-node", .server_auth = false});
  Ports ports;
  const int agent_fd = listen_socket(ports.agent);
  const int echo_fd = listen_socket(ports.echo);
  const int sink_fd = listen_socket(ports.sink);
  const int source_fd = listen_socket(ports.source);
  const int tls_sink_fd = listen_socket(ports.tls_sink);
  const int tls_source_fd = listen_socket(ports.tls_source);

  Kubeconfig credentials;
  credentials.path = "bench";
  credentials.ca_pem = ca.cert_pem();
  credentials.client_cert_pem = agent_cert.cert_pem;
  credentials.client_key_pem = agent_cert.key_pem;
  const pid_t agent = ::fork();
  if (agent < 0) die("fork");
  if (agent == 0) {
    for (int fd : {agent_fd, echo_fd, sink_fd, source_fd, tls_sink_fd, tls_source_fd})
      ::close(fd);
    run_agent(
        ports.agent, credentials,
        {"127.0.0.1:" + std::to_string(ports.echo), "127.0.0.1:" + std::to_string(ports.sink),
         "127.0.0.1:" + std::to_string(ports.source), "127.0.0.1:" + std::to_string(ports.tls_sink),
         "127.0.0.1:" + std::to_string(ports.tls_source)});
  }
  // For `perf record -p` of the agent alone.
  if (std::getenv("TUNNEL_BENCH_SAY_PID") != nullptr) std::cerr << "agent pid " << agent << "\n";

  asio::io_context destinations;
  tcp::acceptor echo_acceptor(destinations, tcp::v4(), echo_fd);
  tcp::acceptor sink_acceptor(destinations, tcp::v4(), sink_fd);
  tcp::acceptor source_acceptor(destinations, tcp::v4(), source_fd);
  asio::co_spawn(destinations, serve(echo_acceptor, echo), asio::detached);
  asio::co_spawn(destinations, serve(sink_acceptor, sink<tcp::socket>), asio::detached);
  asio::co_spawn(destinations, serve(source_acceptor, source<tcp::socket>), asio::detached);
  auto k3s_tls = AgentPort::server_context(ca, server_cert);
  tcp::acceptor tls_sink_acceptor(destinations, tcp::v4(), tls_sink_fd);
  tcp::acceptor tls_source_acceptor(destinations, tcp::v4(), tls_source_fd);
  asio::co_spawn(destinations, serve_tls(tls_sink_acceptor, k3s_tls, sink<TlsStream>),
                 asio::detached);
  asio::co_spawn(destinations, serve_tls(tls_source_acceptor, k3s_tls, source<TlsStream>),
                 asio::detached);
  std::thread k3s([&] { destinations.run(); });

  asio::io_context io;
  AgentPort port(io, agent_fd, ca, server_cert);
  Results r;
  bool done = false;
  auto client_tls = kube::client_context(credentials);
  if (!client_tls) die("the client's TLS context: " + client_tls.error().message);
  asio::co_spawn(io, measure(port, agent, ports, **client_tls, bytes, r),
                 [&](std::exception_ptr e) {
                   if (e) std::rethrow_exception(e);
                   done = true;
                   io.stop();
                 });
  io.run();
  ::kill(agent, SIGKILL);
  ::waitpid(agent, nullptr, 0);
  destinations.stop();
  k3s.join();
  if (!done) die("the measurements did not finish");

  const double mib = static_cast<double>(bytes >> 20);
  std::printf(
      "| through tetherd's tunnel (plain bytes in its one TLS hop; %.0f MiB each way, %d round "
      "trips, %d streams) | direct "
      "on loopback | tunnel | tunnel / direct | target |\n|---|---|---|---|---|\n",
      mib, kRoundTrips, kStreams);
  std::printf("| to the destination | %.0f MiB/s | %.0f MiB/s | %.2fx | >= 0.8x |\n", r.up_direct,
              r.up_tunnel, r.up_tunnel / r.up_direct);
  std::printf("| from the destination | %.0f MiB/s | %.0f MiB/s | %.2fx | >= 0.8x |\n",
              r.down_direct, r.down_tunnel, r.down_tunnel / r.down_direct);
  std::printf(
      "| to / from the destination, direct over TLS (a cloud client to k3s on an open 6443) | "
      "%.0f / %.0f MiB/s | | %.2fx / %.2fx | |\n",
      r.up_tls, r.down_tls, r.up_tunnel / r.up_tls, r.down_tunnel / r.down_tls);
  std::printf(
      "| to / from the destination, the client's TLS to k3s's inside the tunnel (proxy-url; "
      "the frontend's socket hop not included) | %.0f / %.0f MiB/s (direct TLS) | %.0f / %.0f "
      "MiB/s | %.2fx / %.2fx | >= 0.8x |\n",
      r.up_tls, r.down_tls, r.up_tls_tunnel, r.down_tls_tunnel, r.up_tls_tunnel / r.up_tls,
      r.down_tls_tunnel / r.down_tls);
  std::printf(
      "| round trip, 64 B (median; p99) | %.0f µs; %.0f µs | %.0f µs; %.0f µs | +%.0f µs "
      "added | < 200 µs added |\n",
      r.rtt_direct, r.rtt_direct_p99, r.rtt_tunnel, r.rtt_tunnel_p99, r.rtt_tunnel - r.rtt_direct);
  std::printf(
      "| the agent's CPU per GiB carried (to / from the destination) | | %.2f s (%.2f / %.2f) | | "
      "|\n",
      r.agent_cpu_per_gib, r.agent_cpu_up, r.agent_cpu_down);
  // On cores all kept busy, throughput goes as the inverse of the CPU a
  // byte costs every process on its path: the ratio of the two is the
  // most the tunnel can carry of direct TLS here.
  std::printf(
      "| every process's CPU per GiB, both ways (direct TLS: client and destination; tunnel: "
      "server, agent, destination), and the cores busy | %.2f s; %.2f cores | %.2f s; %.2f cores "
      "| %.2fx (the most the tunnel carries of direct TLS on busy cores) | |\n",
      r.all_cpu_tls, r.cores_tls, r.all_cpu_tunnel, r.cores_tunnel,
      r.all_cpu_tls / r.all_cpu_tunnel);
  std::printf(
      "| the agent's RSS: 0 / %d open streams / after they closed | | %.1f / %.1f / %.1f MiB "
      "| %.1f KiB per stream | |\n",
      kStreams, static_cast<double>(r.rss_idle) / 1024, static_cast<double>(r.rss_streams) / 1024,
      static_cast<double>(r.rss_closed) / 1024,
      static_cast<double>(r.rss_streams - r.rss_idle) / kStreams);
  std::printf("\nThe TLS hops' cipher: %s (the agent's, and the cloud client's to k3s).\n",
              port.cipher().c_str());
  return 0;
}
