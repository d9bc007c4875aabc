#pragma once
// Plain HTTP on loopback, for the tests that run the real binary: a free
// port to give it, and a GET of what it serves there (its metrics).

#include <cstdint>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace tetherd::test {

// A free port on loopback: bound, read, released. The daemon binds it next.
inline std::uint16_t free_port() {
  using boost::asio::ip::tcp;
  boost::asio::io_context io;
  tcp::acceptor a(io, tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// GET http://127.0.0.1:PORT/TARGET; nullopt when nothing listens there.
inline std::optional<boost::beast::http::response<boost::beast::http::string_body>> http_get(
    std::uint16_t port, const std::string& target) {
  namespace http = boost::beast::http;
  using boost::asio::ip::tcp;
  boost::asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return std::nullopt;
  http::request<http::empty_body> req(http::verb::get, target, 11);
  req.set(http::field::host, "127.0.0.1");
  http::write(socket, req);
  boost::beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(socket, buffer, res);
  return res;
}

}  // namespace tetherd::test
