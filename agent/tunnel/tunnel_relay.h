#pragma once
// What the agent does with one server's packets: it dials the destinations
// the configuration allows (no other: the server is told why), and copies
// bytes between each dialled connection and the server.
//
// Bounded: dials and connections per server; what a connection has to
// write is held only as long as the server's window, which comes back as
// the bytes reach the destination (a slow destination holds the server
// back, not memory); reads from a destination stop while the server's
// queue is over its high water (a slow server holds the destination
// back); a connection that carries nothing for idle_timeout is closed.
//
// The protocol as upstream's agent speaks it (pkg/agent/client.go): a
// connectID for each successful dial, from one counter across the servers;
// DIAL_RSP echoes the request's `random`; a destination's end of stream is
// a CLOSE_RSP; a packet for an unknown connectID gets a CLOSE_RSP with an
// error; DIAL_CLS cancels a dial still under way.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/core/clock.h"
#include "agent/core/destination.h"
#include "agent/core/timer.h"
#include "agent/tunnel/tunnel_connection.h"

namespace tetherd::tunnel {

struct RelayLimits {
  Duration dial_timeout = std::chrono::seconds(5);
  std::size_t max_connections = 128;  // open and being dialled, per server
  Duration idle_timeout = std::chrono::hours(1);
  Duration write_timeout = std::chrono::seconds(30);  // a destination that reads nothing
  std::size_t read_chunk = 32 << 10;  // a read from a destination (one buffer per server)
};

using tetherd::Destination;

struct RelayStats {
  std::size_t connections = 0;  // open now
  std::uint64_t dials = 0;      // served
  std::uint64_t dials_refused = 0;
  std::uint64_t dials_failed = 0;
  std::uint64_t bytes_to_destinations = 0;
  std::uint64_t bytes_to_server = 0;
  std::size_t bytes_waiting = 0;  // from the server, not yet taken by their destinations
  friend bool operator==(const RelayStats&, const RelayStats&) = default;
};

// Held by a shared_ptr: its connections' coroutines hold it too, so it
// lives until the last of them has ended (close_all() ends them).
class TunnelRelay : public std::enable_shared_from_this<TunnelRelay> {
 public:
  TunnelRelay(boost::asio::any_io_executor executor, const Clock& clock,
              std::shared_ptr<TunnelConnection> connection, std::vector<Destination> allowed,
              std::shared_ptr<std::int64_t> next_connect_id, RelayLimits limits = {});
  ~TunnelRelay();
  TunnelRelay(const TunnelRelay&) = delete;
  TunnelRelay& operator=(const TunnelRelay&) = delete;

  // For TunnelConnection::Handlers.
  void on_packet(Packet packet, std::size_t wire);
  void on_writable();

  // Tells the server that this agent is about to stop (DRAIN); serving
  // goes on until the connection ends.
  void drain();
  // The connection ended: every dialled connection is closed.
  void close_all();

  RelayStats stats() const;
  // Called with the reason of each dial refused (for the journal).
  void on_refused(std::function<void(const std::string& why)> listener) {
    on_refused_ = std::move(listener);
  }

  struct Endpoint;

 private:
  void dial(const DialRequest& request);
  void data(Data& d, std::size_t wire);  // takes its bytes
  void close_request(std::int64_t id);
  void cancel_dial(std::int64_t random);
  // Why a destination's connection closed when a write to it was stuck.
  std::string stuck(const Endpoint& e) const;
  void close_response(std::int64_t id, std::string error);
  void idle_round();
  void arm_idle();
  boost::asio::awaitable<void> read_from(std::shared_ptr<Endpoint> e);

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  std::shared_ptr<TunnelConnection> connection_;
  std::vector<Destination> allowed_;
  std::shared_ptr<std::int64_t> next_id_;
  RelayLimits limits_;
  std::string read_buffer_;  // every destination's reads (read_from)
  std::map<std::int64_t, std::shared_ptr<Endpoint>> endpoints_;  // by connectID
  std::map<std::int64_t, std::shared_ptr<Endpoint>> dialling_;   // by the request's random
  Timer idle_;
  bool idle_armed_ = false;
  bool closed_ = false;
  RelayStats stats_;
  std::function<void(const std::string&)> on_refused_;
};

}  // namespace tetherd::tunnel
