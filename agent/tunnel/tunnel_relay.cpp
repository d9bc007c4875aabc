#include "agent/tunnel/tunnel_relay.h"

#include <algorithm>
#include <charconv>
#include <deque>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "agent/core/duration.h"
#include "agent/tunnel/write_watch.h"

namespace tetherd::tunnel {

namespace asio = boost::asio;
namespace beast = boost::beast;
using asio::awaitable;
using tcp = asio::ip::tcp;

namespace {
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
}

struct TunnelRelay::Endpoint {
  Endpoint(const asio::any_io_executor& executor, const Clock& clock, Duration write_timeout)
      : stream(executor), wake(executor), watch(executor, clock, write_timeout, [this] {
          // As tcp_stream's own deadline did: the socket closed, the write
          // ends with an error.
          write_stuck = true;
          stream.close();
        }) {}
  std::int64_t id = 0;
  std::int64_t random = 0;
  std::string address;
  beast::tcp_stream stream;
  std::deque<std::pair<std::string, std::size_t>> to_write;  // bytes, and their wire size
  bool writing = false;
  bool closing = false;  // the server's CLOSE_REQ: closed once what it sent is written
  bool closed = false;
  bool cancelled = false;     // DIAL_CLS while dialling
  std::size_t in_flight = 0;  // bytes being written
  MonoTime last_active{};
  asio::steady_timer wake;  // the reader waits here while the server's queue is full
  bool write_stuck = false;
  WriteWatch watch;  // the writes' deadline (write_timeout)
};

TunnelRelay::TunnelRelay(asio::any_io_executor executor, const Clock& clock,
                         std::shared_ptr<TunnelConnection> connection,
                         std::vector<Destination> allowed,
                         std::shared_ptr<std::int64_t> next_connect_id, RelayLimits limits)
    : executor_(std::move(executor)),
      clock_(clock),
      connection_(std::move(connection)),
      allowed_(std::move(allowed)),
      next_id_(std::move(next_connect_id)),
      limits_(limits),
      idle_(executor_, clock) {}

TunnelRelay::~TunnelRelay() {
  idle_.cancel();
}

void TunnelRelay::idle_round() {
  const MonoTime now = clock_.monotonic();
  std::vector<std::int64_t> idle;
  for (const auto& [id, e] : endpoints_)
    if (!e->writing && now - e->last_active >= limits_.idle_timeout) idle.push_back(id);
  for (const auto id : idle)
    close_response(id, "");
  arm_idle();
}

// Held weakly: the relay may be gone (its connection ended) when a round
// already due runs.
void TunnelRelay::arm_idle() {
  if (closed_) return;
  idle_.expires_after(limits_.idle_timeout / 4);
  idle_.async_wait([weak = weak_from_this()](boost::system::error_code e) {
    if (auto self = weak.lock(); self && !e) self->idle_round();
  });
}

RelayStats TunnelRelay::stats() const {
  RelayStats s = stats_;
  s.connections = endpoints_.size();
  for (const auto& [id, e] : endpoints_) {
    s.bytes_waiting += e->in_flight;
    for (const auto& [bytes, wire] : e->to_write)
      s.bytes_waiting += bytes.size();
  }
  return s;
}

void TunnelRelay::on_packet(Packet packet, std::size_t wire) {
  switch (packet.type()) {
    case DIAL_REQ:
      dial(packet.dialrequest());
      break;
    case DATA:
      data(*packet.mutable_data(), wire);
      return;  // its window comes back once written
    case CLOSE_REQ:
      close_request(packet.closerequest().connectid());
      break;
    case DIAL_CLS:
      cancel_dial(packet.closedial().random());
      break;
    default:
      break;
  }
  connection_->consume(wire);
}

void TunnelRelay::on_writable() {
  for (auto& [id, e] : endpoints_)
    e->wake.cancel();
}

void TunnelRelay::drain() {
  Packet p;
  p.set_type(DRAIN);
  p.mutable_drain();
  connection_->send(p);
}

void TunnelRelay::close_all() {
  closed_ = true;
  idle_.cancel();
  for (auto* m : {&endpoints_, &dialling_})
    for (auto& [key, e] : *m) {
      e->closed = true;
      e->stream.close();
      e->wake.cancel();
    }
  endpoints_.clear();
  dialling_.clear();
}

void TunnelRelay::dial(const DialRequest& request) {
  Packet answer;
  answer.set_type(DIAL_RSP);
  auto& rsp = *answer.mutable_dialresponse();
  rsp.set_random(request.random());
  auto refuse = [&](const std::string& why) {
    ++stats_.dials_refused;
    rsp.set_error("tetherd: " + why);
    connection_->send(answer);
    if (on_refused_) on_refused_(why);
  };
  if (closed_) return;
  if (!idle_armed_) {
    idle_armed_ = true;
    arm_idle();
  }
  // What is echoed of the request is bounded.
  if (request.address().size() > 300)
    return refuse("an address of " + std::to_string(request.address().size()) +
                  " bytes is no destination of this node's");
  auto destination = parse_destination(request.address());
  if (!destination) return refuse(destination.error().message);
  if (request.protocol() != "tcp" && !request.protocol().empty())
    return refuse("only tcp is served, not " + request.protocol());
  if (std::find(allowed_.begin(), allowed_.end(), *destination) == allowed_.end())
    return refuse(to_string(*destination) + " is not among this node's tunnel.destinations");
  if (endpoints_.size() + dialling_.size() >= limits_.max_connections)
    return refuse(std::to_string(limits_.max_connections) +
                  " connections are open through this server already");
  if (dialling_.contains(request.random())) return refuse("a dial with this random is under way");

  auto e = std::make_shared<Endpoint>(executor_, clock_, limits_.write_timeout);
  e->random = request.random();
  e->address = to_string(*destination);
  dialling_[e->random] = e;
  ++stats_.dials;
  asio::co_spawn(
      executor_,
      [](std::shared_ptr<TunnelRelay> self, std::shared_ptr<Endpoint> e,
         Destination d) -> awaitable<void> {
        boost::system::error_code ec;
        const auto ip = asio::ip::make_address(d.host, ec);
        e->stream.expires_after(self->limits_.dial_timeout);
        if (!ec) {
          std::tie(ec) = co_await e->stream.async_connect(tcp::endpoint(ip, d.port), nothrow);
        } else {
          tcp::resolver resolver(self->executor_);
          auto [rec, found] =
              co_await resolver.async_resolve(d.host, std::to_string(d.port), nothrow);
          ec = rec;
          if (!ec) std::tie(ec, std::ignore) = co_await e->stream.async_connect(found, nothrow);
        }
        e->stream.expires_never();
        if (e->closed) co_return;  // the server's stream ended meanwhile
        if (auto it = self->dialling_.find(e->random);
            it != self->dialling_.end() && it->second == e)
          self->dialling_.erase(it);
        if (e->cancelled) {
          e->stream.close();
          co_return;
        }
        Packet answer;
        answer.set_type(DIAL_RSP);
        auto& rsp = *answer.mutable_dialresponse();
        rsp.set_random(e->random);
        if (ec) {
          ++self->stats_.dials_failed;
          rsp.set_error("tetherd: dialling " + e->address + ": " +
                        (ec == beast::error::timeout
                             ? "no answer within " + format_duration(self->limits_.dial_timeout)
                             : ec.message()));
          self->connection_->send(answer);
          co_return;
        }
        e->stream.socket().set_option(tcp::no_delay(true), ec);
        e->id = ++*self->next_id_;
        e->last_active = self->clock_.monotonic();
        rsp.set_connectid(e->id);
        self->connection_->send(answer);
        self->endpoints_[e->id] = e;
        co_await self->read_from(e);
      }(shared_from_this(), e, *destination),
      asio::detached);
}

awaitable<void> TunnelRelay::read_from(std::shared_ptr<Endpoint> e) {
  auto self = shared_from_this();
  // A stream holds no read buffer of its own while it waits (a watch
  // through the tunnel is quiet for minutes): it waits until its socket is
  // readable, then reads at once, without waiting, into the relay's one
  // buffer, whose bytes are copied into the packet before anything else
  // runs on the loop.
  boost::system::error_code ec;
  if (e->stream.socket().non_blocking(true, ec); ec) {
    close_response(e->id, ec.message());
    co_return;
  }
  while (!e->closed) {
    while (connection_->over_high_water() && !e->closed) {
      e->wake.expires_at(asio::steady_timer::time_point::max());
      co_await e->wake.async_wait(nothrow);
    }
    if (e->closed) break;
    read_buffer_.resize(limits_.read_chunk);
    const std::size_t n = e->stream.socket().read_some(asio::buffer(read_buffer_), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      // No deadline on reading (a quiet watch is fine); the writes' is the
      // watch's, not the stream's.
      std::tie(ec) = co_await e->stream.socket().async_wait(tcp::socket::wait_read, nothrow);
      if (e->closed) break;
      if (!ec) continue;
    }
    if (n > 0) {
      e->last_active = clock_.monotonic();
      Packet p;
      p.set_type(DATA);
      auto& d = *p.mutable_data();
      d.set_connectid(e->id);
      d.set_data(read_buffer_.data(), n);
      connection_->send(p);
      stats_.bytes_to_server += n;
      // The loop's other work runs before the next read (as after an
      // asynchronous one).
      co_await asio::post(executor_, asio::use_awaitable);
      if (e->closed) break;
    }
    if (ec) {
      // The destination's end: the server hears CLOSE_RSP (as upstream's
      // agent says it), once what it had to write is written.
      // A stuck write closed the socket: its reason, not the read's
      // "Operation canceled" (the read hears of it first).
      close_response(e->id, e->write_stuck           ? stuck(*e)
                            : ec == asio::error::eof ? ""
                                                     : ec.message());
      break;
    }
  }
}

void TunnelRelay::data(Data& d, std::size_t wire) {
  const auto it = endpoints_.find(d.connectid());
  if (it == endpoints_.end()) {
    connection_->consume(wire);
    Packet p;
    p.set_type(CLOSE_RSP);
    p.mutable_closeresponse()->set_connectid(d.connectid());
    p.mutable_closeresponse()->set_error("tetherd: unrecognized connectID " +
                                         std::to_string(d.connectid()));
    connection_->send(p);
    return;
  }
  auto e = it->second;
  e->last_active = clock_.monotonic();
  e->to_write.emplace_back(std::move(*d.mutable_data()), wire);
  if (e->writing) return;
  e->writing = true;
  asio::co_spawn(
      executor_,
      [](std::shared_ptr<TunnelRelay> self, std::shared_ptr<Endpoint> e) -> awaitable<void> {
        while (!e->to_write.empty() && !e->closed) {
          auto [bytes, wire] = std::move(e->to_write.front());
          e->to_write.pop_front();
          e->in_flight = bytes.size();
          // A destination that stops reading holds the server's window
          // (every connection through that server waits): not for long.
          e->watch.begin();
          auto [ec, n] = co_await asio::async_write(e->stream, asio::buffer(bytes), nothrow);
          e->watch.end();
          e->in_flight = 0;
          self->connection_->consume(wire);  // written or not, the server may send again
          if (e->closed) break;
          self->stats_.bytes_to_destinations += n;
          e->last_active = self->clock_.monotonic();
          if (ec) {
            self->close_response(
                e->id, e->write_stuck ? self->stuck(*e)
                                      : "tetherd: writing to " + e->address + ": " + ec.message());
            break;
          }
        }
        e->writing = false;
        if (e->closing && !e->closed) self->close_response(e->id, "");
      }(shared_from_this(), e),
      asio::detached);
}

void TunnelRelay::close_request(std::int64_t id) {
  const auto it = endpoints_.find(id);
  if (it == endpoints_.end()) {
    Packet p;
    p.set_type(CLOSE_RSP);
    p.mutable_closeresponse()->set_connectid(id);
    p.mutable_closeresponse()->set_error("tetherd: unknown connectID " + std::to_string(id));
    connection_->send(p);
    return;
  }
  it->second->closing = true;
  if (!it->second->writing) close_response(id, "");
}

void TunnelRelay::cancel_dial(std::int64_t random) {
  const auto it = dialling_.find(random);
  if (it == dialling_.end()) return;
  // Counted until the dial has ended (a DIAL_REQ, DIAL_CLS loop cannot
  // pile dials up past max_connections).
  it->second->cancelled = true;
  it->second->stream.cancel();
}

std::string TunnelRelay::stuck(const Endpoint& e) const {
  return "tetherd: writing to " + e.address + ": it read nothing for " +
         format_duration(limits_.write_timeout);
}

// Closes the connection `id` and tells the server.
void TunnelRelay::close_response(std::int64_t id, std::string error) {
  const auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return;
  auto e = it->second;
  endpoints_.erase(it);
  e->closed = true;
  // Windows held for bytes that will not be written are given back.
  for (const auto& [bytes, wire] : e->to_write)
    connection_->consume(wire);
  e->to_write.clear();
  e->watch.stop();
  boost::system::error_code ignored;
  e->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  e->stream.close();
  e->wake.cancel();
  Packet p;
  p.set_type(CLOSE_RSP);
  p.mutable_closeresponse()->set_connectid(id);
  if (!error.empty()) p.mutable_closeresponse()->set_error(std::move(error));
  connection_->send(p);
}

}  // namespace tetherd::tunnel
