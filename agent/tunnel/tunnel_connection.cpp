#include "agent/tunnel/tunnel_connection.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <nghttp2/nghttp2.h>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/url/pct_string_view.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "agent/core/duration.h"
#include "agent/core/timer.h"
#include "agent/tunnel/buffered_socket.h"
#include "agent/tunnel/grpc_framing.h"
#include "agent/tunnel/write_watch.h"

namespace tetherd::tunnel {

namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kPath = "/AgentService/Connect";
constexpr unsigned char kAlpn[] = {2, 'h', '2'};

nghttp2_nv header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

// grpc-message is percent-encoded (PROTOCOL-HTTP2.md); as sent when it
// is not valid percent-encoding.
std::string percent_decoded(std::string_view s) {
  auto pct = boost::urls::make_pct_string_view(s);
  return pct ? pct->decode() : std::string(s);
}

class Http2Connection final : public TunnelConnection {
 public:
  Http2Connection(asio::any_io_executor executor, const Clock& clock,
                  std::shared_ptr<asio::ssl::context> tls, ConnectionLimits limits)
      : executor_(executor),
        clock_(clock),
        tls_(std::move(tls)),
        stream_(executor, *tls_),
        limits_(limits),
        reader_(limits.max_message),
        kick_(executor),
        ping_(executor, clock) {}

  ~Http2Connection() override {
    if (session_ != nullptr) nghttp2_session_del(session_);
  }

  awaitable<Result<ServerHello>> open(kube::ServerAddress address, AgentIdentity identity,
                                      Handlers handlers) override {
    handlers_ = std::move(handlers);
    auto self = std::static_pointer_cast<Http2Connection>(shared_from_this());
    const std::string where = address.host + ":" + std::to_string(address.port);
    auto& tcp = socket();
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(address.host, ec);
    // The name's lookup too, though one under way cannot be stopped
    // (getaddrinfo): it is judged when it ends.
    arm(limits_.connect_timeout);
    if (!ec) {
      auto [cec] = co_await tcp.async_connect(tcp::endpoint(ip, address.port), nothrow);
      if (cec) co_return failed("connecting to " + where + ": " + io_error(cec));
    } else {
      auto [rec, found] =
          co_await resolver_.async_resolve(address.host, std::to_string(address.port), nothrow);
      if (closed_) co_return failed(why_);
      if (timed_out_) co_return failed("resolving " + address.host + ": timed out");
      if (rec) co_return failed("resolving " + address.host + ": " + io_error(rec));
      auto [cec, endpoint] = co_await asio::async_connect(tcp, found, nothrow);
      if (cec) co_return failed("connecting to " + where + ": " + io_error(cec));
    }
    if (closed_) co_return failed(why_);
    tcp.set_option(tcp::no_delay(true), ec);

    SSL* ssl = stream_.native_handle();
    if (auto named = kube::expect_server_name(ssl, address); !named)
      co_return failed(named.error().message);
    SSL_set_alpn_protos(ssl, kAlpn, sizeof kAlpn);
    // A renegotiation (TLS 1.2) would have the engine write a handshake
    // from inside a read while the writes are corked, and wait for its
    // answer: it is refused (konnectivity's Go server never asks).
    SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
    arm(limits_.handshake_timeout);
    auto [hec] = co_await stream_.async_handshake(asio::ssl::stream_base::client, nothrow);
    if (hec) co_return failed("TLS handshake with " + where + ": " + io_error(hec));
    const unsigned char* proto = nullptr;
    unsigned proto_length = 0;
    SSL_get0_alpn_selected(ssl, &proto, &proto_length);
    if (std::string_view(reinterpret_cast<const char*>(proto), proto_length) != "h2")
      co_return failed(where +
                       " does not speak HTTP/2 (ALPN h2): not a konnectivity server's "
                       "agent port");
    disarm();

    if (auto made = start_session(address, identity); !made) co_return failed(made.error().message);
    asio::co_spawn(executor_, write_loop(self), asio::detached);
    // The call's answer: its headers (with the server's ID and count), or
    // a Trailers-Only error, within the handshake's time.
    Timer deadline(executor_, clock_);
    deadline.expires_after(limits_.handshake_timeout);
    asio::co_spawn(executor_, read_loop(self), asio::detached);
    deadline.async_wait([weak = std::weak_ptr<Http2Connection>(self)](boost::system::error_code e) {
      if (auto c = weak.lock(); c && !e && !c->hello_)
        c->close("no answer to the call within the handshake's time");
    });
    while (!hello_ && !closed_) {
      opened_.expires_at(asio::steady_timer::time_point::max());
      co_await opened_.async_wait(nothrow);
    }
    deadline.cancel();
    if (!hello_) co_return make_error(why_);
    start_pings();
    co_return *hello_;
  }

  awaitable<std::string> serve() override {
    while (!closed_) {
      ended_.expires_at(asio::steady_timer::time_point::max());
      co_await ended_.async_wait(nothrow);
    }
    co_return why_;
  }

  void send(const Packet& packet) override {
    if (closed_ || finishing_) return;  // after END_STREAM nothing more goes
    if (!append_framed(outgoing_, packet)) {
      close("a packet of " + std::to_string(packet.ByteSizeLong()) + " bytes cannot be sent");
      return;
    }
    if (queued() > limits_.max_queued) {
      close("the server has taken nothing of " + std::to_string(queued()) + " bytes queued for it");
      return;
    }
    if (deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(session_, stream_id_);
    }
    kick();
  }
  std::size_t queued() const override { return outgoing_.size() - sent_; }
  bool over_high_water() const override { return queued() > limits_.high_water; }
  void consume(std::size_t wire) override {
    if (closed_ || wire == 0) return;
    nghttp2_session_consume(session_, stream_id_, wire);
    kick();
  }
  void close(std::string why) override {
    if (closed_) return;
    closed_ = true;
    why_ = std::move(why);
    // The writer says goodbye (GOAWAY, at most a second) and closes the
    // socket; before it runs, the socket is closed here.
    resolver_.cancel();
    write_watch_.stop();
    if (writing_) {
      nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      // A write under way (to a server that reads nothing) ends within
      // the last words' second.
      arm(std::chrono::seconds(1));
    } else {
      disarm();
      boost::system::error_code ignored;
      socket().close(ignored);
    }
    ping_.cancel();
    kick_.cancel();
    opened_.cancel();
    ended_.cancel();
  }
  bool closed() const override { return closed_; }
  void finish() override {
    if (closed_ || finishing_) return;
    finishing_ = true;
    if (deferred_) {
      deferred_ = false;
      nghttp2_session_resume_data(session_, stream_id_);
    }
    kick();
  }

 private:
  Error failed(std::string why) {
    close(why);
    return make_error(std::move(why));
  }

  static std::string describe(const boost::system::error_code& ec) {
    if (ec.category() == asio::error::get_ssl_category()) {
      const char* reason = ERR_reason_error_string(static_cast<unsigned long>(ec.value()));
      return reason != nullptr ? reason : ec.message();
    }
    return ec.message();
  }

  Result<void> start_session(const kube::ServerAddress& address, const AgentIdentity& identity) {
    nghttp2_session_callbacks* callbacks = nullptr;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &Http2Connection::on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Http2Connection::on_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Http2Connection::on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks,
                                                           &Http2Connection::on_stream_close);
    nghttp2_option* option = nullptr;
    nghttp2_option_new(&option);
    nghttp2_option_set_no_auto_window_update(option, 1);
    const int made = nghttp2_session_client_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (made != 0) return make_error(std::string("HTTP/2: ") + nghttp2_strerror(made));

    const std::array<nghttp2_settings_entry, 4> settings{{
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits_.window)},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits_.max_header_bytes)},
    }};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(limits_.window));

    authority_ = address.host_header;
    const std::array<nghttp2_nv, 9> headers{{
        header(":method", "POST"),
        header(":scheme", "https"),
        header(":path", kPath),
        header(":authority", authority_),
        header("te", "trailers"),
        header("content-type", "application/grpc"),
        header("user-agent", "tetherd/" TETHERD_VERSION),
        header("agentid", identity.agent_id),
        header("agentidentifiers", identity.identifiers),
    }};
    nghttp2_data_provider body{};
    body.read_callback = &Http2Connection::read_body;
    stream_id_ =
        nghttp2_submit_request(session_, nullptr, headers.data(), headers.size(), &body, this);
    if (stream_id_ < 0) return make_error(std::string("HTTP/2: ") + nghttp2_strerror(stream_id_));
    return {};
  }

  void kick() { kick_.cancel(); }

  static awaitable<void> write_loop(std::shared_ptr<Http2Connection> self) {
    self->writing_ = true;
    co_await self->write_frames();
    self->writing_ = false;
    if (!self->closed_) self->close("the call ended");
    // Last words (the GOAWAY), then the socket goes.
    const uint8_t* data = nullptr;
    std::string out;
    for (ssize_t n; (n = nghttp2_session_mem_send(self->session_, &data)) > 0;)
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    if (!out.empty() && self->socket().is_open()) {
      self->arm(std::chrono::seconds(1));
      co_await self->write_out(out);
      self->disarm();
    }
    boost::system::error_code ignored;
    self->socket().close(ignored);
  }

  awaitable<void> write_frames() {
    auto* self = this;
    std::string out;
    while (!self->closed_) {
      out.clear();
      while (out.size() < (64 << 10)) {
        const uint8_t* data = nullptr;
        const auto n = nghttp2_session_mem_send(self->session_, &data);
        if (n < 0) {
          self->close(std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n)));
          co_return;
        }
        if (n == 0) break;
        out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
      self->compact();
      if (out.empty()) {
        if (!nghttp2_session_want_read(self->session_) &&
            !nghttp2_session_want_write(self->session_)) {
          self->close(self->ending());
          co_return;
        }
        self->kick_.expires_at(asio::steady_timer::time_point::max());
        co_await self->kick_.async_wait(nothrow);
        continue;
      }
      self->write_watch_.begin();
      const auto ec = co_await self->write_out(out);
      self->write_watch_.end();
      if (self->closed_) co_return;
      if (ec) {
        self->close("writing to the server: " + describe(ec));
        co_return;
      }
    }
  }

  // Through TLS in as few socket writes as the records fit in (the
  // engine writes each of them on its own).
  awaitable<boost::system::error_code> write_out(std::string_view bytes) {
    auto& socket = stream_.next_layer();
    // (TLS 1.3 adds 22 bytes to each record of up to 16 KiB.)
    socket.cork(bytes.size() + bytes.size() / 512 + 256);
    auto [ec, n] = co_await asio::async_write(stream_, asio::buffer(bytes), nothrow);
    auto [flushed] = co_await socket.async_flush(nothrow);  // uncorks, after an error too
    co_return ec ? ec : flushed;
  }

  static awaitable<void> read_loop(std::shared_ptr<Http2Connection> self) {
    std::array<char, 16 << 10> buffer{};
    while (!self->closed_) {
      auto [ec, n] = co_await self->stream_.async_read_some(asio::buffer(buffer), nothrow);
      if (self->closed_) co_return;
      if (ec) {
        self->close(ec == asio::error::eof || ec == asio::ssl::error::stream_truncated
                        ? "the server closed the connection" + self->ending_detail()
                        : "reading from the server: " + describe(ec));
        co_return;
      }
      self->last_heard_ = self->clock_.monotonic();
      const auto used = nghttp2_session_mem_recv(
          self->session_, reinterpret_cast<const uint8_t*>(buffer.data()), n);
      if (used < 0) {
        self->close(self->why_.empty()
                        ? std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(used))
                        : self->why_);
        co_return;
      }
      // Handed over after nghttp2 is done with the bytes: a handler may
      // send, consume or close.
      auto packets = std::move(self->received_);
      self->received_.clear();
      for (auto& [packet, wire] : packets) {
        if (self->closed_) break;
        if (self->handlers_.packet) self->handlers_.packet(std::move(packet), wire);
      }
      self->kick();
    }
  }

  tcp::socket& socket() { return stream_.next_layer().socket(); }

  // Closes the socket unless what runs now (connecting, the handshake, the
  // last words) is done within `limit`; the error then says "timed out".
  void arm(Duration limit) {
    timed_out_ = false;
    deadline_.expires_after(limit);
    deadline_.async_wait([weak = weak_from_this(), armed = ++armed_](boost::system::error_code e) {
      auto c = weak.lock();
      if (!c || e) return;
      auto& self = static_cast<Http2Connection&>(*c);
      // An expiry already queued when it was disarmed (or armed again)
      // is not this one's.
      if (armed != self.armed_) return;
      self.timed_out_ = true;
      self.resolver_.cancel();
      boost::system::error_code ignored;
      self.socket().close(ignored);
    });
  }
  void disarm() {
    ++armed_;
    deadline_.cancel();
  }
  std::string io_error(const boost::system::error_code& ec) const {
    return timed_out_ ? "timed out" : describe(ec);
  }

  void start_pings() {
    last_heard_ = clock_.monotonic();
    ping_.expires_after(limits_.ping_interval);
    wait_ping();
  }
  void wait_ping() {
    ping_.async_wait([weak = weak_from_this()](boost::system::error_code e) {
      if (auto c = weak.lock()) static_cast<Http2Connection&>(*c).on_ping_timer(e);
    });
  }
  void on_ping_timer(boost::system::error_code e) {
    if (e || closed_) return;
    const Duration quiet = clock_.monotonic() - last_heard_;
    if (pinged_ && quiet >= limits_.ping_interval + limits_.ping_timeout) {
      close("the server did not answer a PING within " + format_duration(limits_.ping_timeout));
      return;
    }
    if (quiet >= limits_.ping_interval) {
      nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr);
      pinged_ = true;
      kick();
      ping_.expires_after(limits_.ping_timeout);
    } else {
      pinged_ = false;
      ping_.expires_after(limits_.ping_interval - quiet);
    }
    wait_ping();
  }

  // The bytes nghttp2 has taken from the queue are dropped now and then,
  // not at every read (an erase per frame would copy the rest each time).
  void compact() {
    if (sent_ > (64 << 10) && sent_ * 2 > outgoing_.size()) {
      outgoing_.erase(0, sent_);
      sent_ = 0;
    }
    if (was_over_ && !over_high_water()) {
      was_over_ = false;
      if (handlers_.writable) asio::post(executor_, handlers_.writable);
    }
  }

  std::string ending() const {
    return why_.empty() ? "the server ended the call" + ending_detail() : why_;
  }
  std::string ending_detail() const {
    std::string d;
    if (!grpc_status_.empty() && grpc_status_ != "0")
      d += " (gRPC status " + grpc_status_ + (grpc_message_.empty() ? "" : ": " + grpc_message_) +
           ")";
    if (goaway_) d += " (GOAWAY" + (goaway_debug_.empty() ? "" : ": " + goaway_debug_) + ")";
    return d;
  }

  // --- nghttp2 callbacks ----------------------------------------------------

  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source*, void* user) {
    auto& c = *static_cast<Http2Connection*>(user);
    const std::size_t n = std::min(length, c.queued());
    if (n == 0) {
      if (c.closed_ || c.finishing_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        return 0;
      }
      c.deferred_ = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (c.over_high_water()) c.was_over_ = true;
    std::memcpy(buf, c.outgoing_.data() + c.sent_, n);
    c.sent_ += n;
    return static_cast<ssize_t>(n);
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto& c = *static_cast<Http2Connection*>(user);
    if (frame->hd.stream_id != c.stream_id_) return 0;
    c.header_bytes_ += namelen + valuelen;
    if (c.header_bytes_ > c.limits_.max_header_bytes) {
      c.why_ = "the server's headers are larger than " +
               std::to_string(c.limits_.max_header_bytes) + " bytes";
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (n == ":status")
      c.status_ = v;
    else if (n == "content-type")
      c.content_type_ = v;
    else if (n == "serverid")
      c.server_id_ = v;
    else if (n == "servercount")
      c.server_count_ = v;
    else if (n == "grpc-status")
      c.grpc_status_ = v;
    else if (n == "grpc-message")
      c.grpc_message_ = percent_decoded(v);
    return 0;
  }

  static int on_frame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = *static_cast<Http2Connection*>(user);
    if (frame->hd.type == NGHTTP2_GOAWAY) {
      c.goaway_ = true;
      c.goaway_debug_.assign(reinterpret_cast<const char*>(frame->goaway.opaque_data),
                             std::min<std::size_t>(frame->goaway.opaque_data_len, 200));
      return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != c.stream_id_ || c.hello_)
      return 0;
    const bool ends = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (c.status_ != "200") {
      c.why_ = "the server answered the call with HTTP " + c.status_ +
               ": not a konnectivity server's agent port?";
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (ends) return 0;  // Trailers-Only: an error, said when the stream closes
    if (!c.content_type_.starts_with("application/grpc")) {
      c.why_ = "the server answered with " + c.content_type_ + ", not gRPC";
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    ServerHello hello;
    hello.server_id = c.server_id_;
    int count = 0;
    const auto* first = c.server_count_.data();
    const auto [end, ec] = std::from_chars(first, first + c.server_count_.size(), count);
    if (c.server_id_.empty() || ec != std::errc() || end != first + c.server_count_.size() ||
        count < 1 || count > 64) {
      c.why_ = "the server's answer has no usable serverID and serverCount (\"" + c.server_id_ +
               "\", \"" + c.server_count_ + "\")";
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    hello.server_count = count;
    c.hello_ = std::move(hello);
    c.opened_.cancel();
    return 0;
  }

  static int on_data(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                     void* user) {
    auto& c = *static_cast<Http2Connection*>(user);
    if (stream_id != c.stream_id_) return 0;
    if (auto fed = c.reader_.feed(std::string_view(reinterpret_cast<const char*>(data), len));
        !fed) {
      c.why_ = "the server's stream: " + fed.error().message;
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    while (c.reader_.has_message()) {
      const std::string m = c.reader_.next();
      auto packet = decode_packet(m);
      if (!packet) {
        c.why_ = "the server sent " + packet.error().message;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
      }
      c.received_.emplace_back(std::move(*packet), kPrefixBytes + m.size());
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user) {
    auto& c = *static_cast<Http2Connection*>(user);
    if (stream_id != c.stream_id_ || !c.why_.empty()) return 0;
    c.why_ = "the server ended the call" + c.ending_detail();
    if (error_code != NGHTTP2_NO_ERROR)
      c.why_ += std::string(" (RST_STREAM ") + nghttp2_http2_strerror(error_code) + ")";
    return NGHTTP2_ERR_CALLBACK_FAILURE;  // one call per connection: it ends with it
  }

  asio::any_io_executor executor_;
  const Clock& clock_;
  std::shared_ptr<asio::ssl::context> tls_;
  asio::ssl::stream<BufferedSocket> stream_;
  tcp::resolver resolver_{executor_};
  asio::steady_timer deadline_{executor_};
  bool timed_out_ = false;
  std::uint64_t armed_ = 0;  // which arm() the deadline is
  ConnectionLimits limits_;
  Handlers handlers_;
  nghttp2_session* session_ = nullptr;
  int32_t stream_id_ = -1;
  std::string authority_;
  MessageReader reader_;
  std::vector<std::pair<Packet, std::size_t>> received_;
  std::string outgoing_;
  std::size_t sent_ = 0;
  bool deferred_ = false;
  bool finishing_ = false;  // END_STREAM once the queue is empty
  bool writing_ = false;    // the writer runs (and closes the socket at the end)
  bool was_over_ = false;
  asio::steady_timer kick_;
  asio::steady_timer opened_{executor_};
  asio::steady_timer ended_{executor_};
  Timer ping_;
  MonoTime last_heard_{};
  bool pinged_ = false;
  std::size_t header_bytes_ = 0;
  std::string status_, content_type_, server_id_, server_count_, grpc_status_, grpc_message_;
  bool goaway_ = false;
  std::string goaway_debug_;
  std::optional<ServerHello> hello_;
  bool closed_ = false;
  std::string why_;
  // After limits_, which it reads when made.
  WriteWatch write_watch_{
      executor_, clock_, limits_.write_timeout, [this] {
        close("writing to the server: timed out after " + format_duration(limits_.write_timeout));
      }};
};

}  // namespace

std::shared_ptr<TunnelConnection> TunnelConnection::make(asio::any_io_executor executor,
                                                         const Clock& clock,
                                                         std::shared_ptr<asio::ssl::context> tls,
                                                         ConnectionLimits limits) {
  limits.window = std::max(limits.window, limits.max_message + (64 << 10));
  return std::make_shared<Http2Connection>(std::move(executor), clock, std::move(tls), limits);
}

}  // namespace tetherd::tunnel
