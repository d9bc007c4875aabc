#pragma once
// A stand-in for linkerd's gateway, for the health probes' tests and bench:
// the proxy's readiness endpoint (plain HTTP, answering `answer()`'s status)
// and the gateway's data port (a listening socket), served on a thread of
// their own.

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace tetherd::test {

class FakeGateway {
 public:
  // On 127.0.0.1 and free ports by default; the demo's stand-in gateway
  // (test/support/standins) listens where linkerd's does, 4191 and 4143.
  explicit FakeGateway(const std::string& address = "127.0.0.1", std::uint16_t admin_port = 0,
                       std::uint16_t gateway_port = 0)
      : admin_(io_, endpoint(address, admin_port)), gateway_(io_, endpoint(address, gateway_port)) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeGateway() {
    io_.stop();
    thread_.join();
  }
  std::string url() const {
    return "http://" + admin_.local_endpoint().address().to_string() + ":" +
           std::to_string(admin_.local_endpoint().port()) + "/ready";
  }
  std::uint16_t gateway_port() const { return gateway_.local_endpoint().port(); }
  void answer(int status) { status_ = status; }

 private:
  void accept() {
    admin_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      auto socket = std::make_shared<boost::asio::ip::tcp::socket>(std::move(s));
      auto buffer = std::make_shared<std::array<char, 1024>>();
      socket->async_read_some(boost::asio::buffer(*buffer), [this, socket, buffer](auto, auto) {
        const int status = status_;
        auto reply = std::make_shared<std::string>(
            "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Unavailable") +
            "\r\nContent-Length: 6\r\nConnection: close\r\n\r\n" +
            (status == 200 ? "ready\n" : "wait \n"));
        boost::asio::async_write(*socket, boost::asio::buffer(*reply),
                                 [socket, reply](auto, auto) {});
      });
      accept();
    });
  }

  static boost::asio::ip::tcp::endpoint endpoint(const std::string& address, std::uint16_t port) {
    return {boost::asio::ip::make_address(address), port};
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor admin_, gateway_;
  std::atomic<int> status_{200};
  std::thread thread_;
};

}  // namespace tetherd::test
