#pragma once
// One client connection: TLS handshake, HTTP/1.1 requests (keep-alive, one
// at a time), answers, watch streams, and whatever misbehaviour is armed.
// Lives on the server's thread; owned by its pending operations, listed
// weakly in ServerCore::connections.

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "test/support/api_server/server_core.h"

namespace tetherd::test::apiserver {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ServerCore& core, boost::asio::ip::tcp::socket socket, boost::asio::ssl::context& tls,
             std::uint64_t id);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // On the server's thread.
  void close_abruptly();
  void release_stall();
  void bookmark_now();
  void end_watch();

 private:
  enum class After { kNothing, kReadNext, kCloseGracefully, kCloseAbruptly };
  struct Output {
    std::string bytes;
    After after = After::kNothing;
    std::chrono::milliseconds drip{0};  // > 0: one byte at a time
    std::size_t sent = 0;
  };
  struct Watch {
    WatchFilter filter;
    bool bookmarks = false;
    std::uint64_t store_id = 0;
    std::uint64_t start_version = 0;      // store events up to here are in the initial ones
    std::uint64_t delivered_version = 0;  // what a bookmark may claim
    int events_sent = 0;
    std::optional<MisbehaviourSpec> misbehaviour;
    bool stalled = false;
    bool ending = false;
  };

  void on_handshake(boost::system::error_code ec);
  void read_request();
  void on_header(boost::system::error_code ec);
  void on_request(boost::system::error_code ec);
  void on_read_error(boost::system::error_code ec);
  void dispatch(boost::beast::http::request<boost::beast::http::string_body> message);
  void respond(const Response& response, const std::optional<MisbehaviourSpec>& misbehaviour);
  void record(unsigned status);

  void start_watch(WatchRequest request, std::optional<MisbehaviourSpec> misbehaviour);
  void on_store_event(std::uint64_t watch_seq, const StoreEvent& event);
  void send_event(const std::string& line);
  void watch_misbehaviour_after_event();
  void arm_watch_timeout(std::chrono::seconds timeout);
  void arm_bookmark_timer();
  void finish_watch();

  void start_idle_read();
  void on_idle_read(boost::system::error_code ec, std::size_t bytes);

  void enqueue(std::string bytes, After after = After::kNothing);
  void pump();
  bool perform(After after);
  void close_gracefully();
  void teardown();

  ServerCore& core_;
  boost::asio::ssl::stream<boost::beast::tcp_stream> stream_;
  std::uint64_t id_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  boost::asio::steady_timer drip_timer_;
  boost::asio::steady_timer watch_timer_;
  boost::asio::steady_timer bookmark_timer_;
  std::optional<Identity> certificate_identity_;
  bool closed_ = false;

  std::deque<Output> out_;
  bool writing_ = false;
  std::chrono::milliseconds drip_{0};  // the current request's responses drip

  // A read while busy (watching, stalled) notices a client that goes away.
  bool idle_read_pending_ = false;
  bool request_wanted_ = false;  // read the next request when the idle read completes

  // The current request.
  std::string method_;
  std::string target_;
  std::string user_;
  std::string serial_;
  bool watch_request_ = false;
  bool keep_alive_ = true;
  bool stalled_ = false;

  std::optional<Watch> watch_;
  std::uint64_t watch_seq_ = 0;
};

}  // namespace tetherd::test::apiserver
