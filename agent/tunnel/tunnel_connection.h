#pragma once
// One connection to one konnectivity server: TLS (the kubeconfig's CA and
// client certificate, the server's name always checked, ALPN h2), HTTP/2 by
// nghttp2 on the event loop, and on it the one gRPC call the agent makes,
// AgentService.Connect: a stream of Packets each way.
//
// Bounded: the server's messages by max_message and its headers by
// max_header_bytes; what it may send ahead by the HTTP/2 window, which is
// given back only as the caller says a packet is dealt with (consume), so
// a slow endpoint holds the server back rather than growing memory; what
// tetherd sends is queued and the caller asked to wait above high_water.
// Alive: a PING when nothing came for ping_interval (the server allows one
// every 30 s at most), dead after ping_timeout more without a frame.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "agent/core/clock.h"
#include "agent/core/result.h"
#include "agent/kube/https_client.h"
#include "agent/tunnel/proto/client.pb.h"

namespace tetherd::tunnel {

struct ConnectionLimits {
  Duration connect_timeout = std::chrono::seconds(10);
  Duration handshake_timeout = std::chrono::seconds(10);  // TLS, then the call's answer
  Duration write_timeout = std::chrono::seconds(30);
  Duration ping_interval = std::chrono::seconds(60);
  Duration ping_timeout = std::chrono::seconds(20);
  std::size_t max_message = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  // What the server may send ahead: more than a whole message, or one
  // could never complete (make() raises it to max_message + 64 KiB).
  std::size_t window = 2 << 20;
  std::size_t high_water = 1 << 20;  // queued for the server: the caller waits above it
  // Queued for a server that takes nothing (no WINDOW_UPDATE) while asking
  // for answers: past this the connection is closed.
  std::size_t max_queued = 8 << 20;
};

// The call's request metadata (gRPC's custom headers).
struct AgentIdentity {
  std::string agent_id;
  std::string identifiers;  // url-encoded, e.g. "host=127.0.0.1"
};

// What the server said when it took the call.
struct ServerHello {
  std::string server_id;
  int server_count = 1;
};

class TunnelConnection : public std::enable_shared_from_this<TunnelConnection> {
 public:
  struct Handlers {
    // A packet from the server, with its size on the wire; the window
    // comes back by consume(wire) once it is dealt with.
    std::function<void(Packet, std::size_t wire)> packet;
    // The queue fell below high_water again.
    std::function<void()> writable;
  };

  static std::shared_ptr<TunnelConnection> make(boost::asio::any_io_executor executor,
                                                const Clock& clock,
                                                std::shared_ptr<boost::asio::ssl::context> tls,
                                                ConnectionLimits limits = {});
  virtual ~TunnelConnection() = default;

  // Connects, shakes hands and makes the call; the server's hello, or why
  // not (a refused TCP connection, a certificate, a server that is not a
  // konnectivity server's agent port, a gRPC error status).
  virtual boost::asio::awaitable<Result<ServerHello>> open(kube::ServerAddress address,
                                                           AgentIdentity identity,
                                                           Handlers handlers) = 0;
  // After open: runs until the connection ends; why it ended.
  virtual boost::asio::awaitable<std::string> serve() = 0;

  virtual void send(const Packet& packet) = 0;
  virtual std::size_t queued() const = 0;
  virtual bool over_high_water() const = 0;
  virtual void consume(std::size_t wire) = 0;
  // Ends the call and the connection (GOAWAY); serve() returns `why`.
  virtual void close(std::string why) = 0;
  // Ends tetherd's half of the call once what is queued has gone (a DRAIN
  // sent just before goes out); the server then ends its half.
  virtual void finish() = 0;
  virtual bool closed() const = 0;
};

}  // namespace tetherd::tunnel
