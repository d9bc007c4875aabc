#pragma once
// A stand-in for a linkerd2-proxy's admin port: GET /metrics answers the
// page it is given (the identity lines core/proxy_metrics.h reads, among
// filler), with the status it is given, or nothing at all (hang), on a
// thread of its own, on 127.0.0.1 and a free port.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

namespace tetherd::test {

class FakeProxy {
 public:
  // On 127.0.0.1 and a free port by default; the demo's stand-in
  // (test/support/standins) listens where a pod's admin port would be.
  explicit FakeProxy(const std::string& address = "127.0.0.1", std::uint16_t port = 0)
      : acceptor_(io_, {boost::asio::ip::make_address(address), port}) {
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeProxy() {
    io_.stop();
    thread_.join();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // The page of a current proxy whose certificate expires at `expires`,
  // after `filler` bytes of other families.
  static std::string page(std::chrono::system_clock::time_point expires, std::uint64_t ok = 1,
                          std::uint64_t errors = 0, std::size_t filler = 0) {
    std::string out;
    while (out.size() < filler)
      out += "inbound_http_route_requests_total{route=\"r" + std::to_string(out.size()) + "\"} 1\n";
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count();
    out +=
        "# TYPE control_identity_cert_expiration_timestamp_seconds gauge\n"
        "control_identity_cert_expiration_timestamp_seconds " +
        std::to_string(seconds) +
        "\n# TYPE control_identity_cert_refreshes counter\n"
        "control_identity_cert_refreshes_total{result=\"ok\"} " +
        std::to_string(ok) + "\ncontrol_identity_cert_refreshes_total{result=\"error\"} " +
        std::to_string(errors) + "\n# HELP process_start_time_seconds Start.\n";
    return out;
  }

  void serve(std::string page, int status = 200) {
    std::lock_guard lock(mutex_);
    page_ = std::move(page);
    status_ = status;
    hang_ = false;
  }
  // Accepts, reads the request, and answers nothing.
  void hang() {
    std::lock_guard lock(mutex_);
    hang_ = true;
  }
  std::size_t requests() const { return requests_; }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, boost::asio::ip::tcp::socket s) {
      if (ec) return;
      auto socket = std::make_shared<boost::asio::ip::tcp::socket>(std::move(s));
      auto buffer = std::make_shared<std::array<char, 2048>>();
      socket->async_read_some(boost::asio::buffer(*buffer), [this, socket, buffer](auto ec, auto) {
        if (ec) return;
        ++requests_;
        std::string page;
        int status = 200;
        {
          std::lock_guard lock(mutex_);
          if (hang_) {
            held_.push_back(socket);  // open, silent, until the proxy goes
            return;
          }
          page = page_;
          status = status_;
        }
        auto reply = std::make_shared<std::string>(
            "HTTP/1.1 " + std::to_string(status) + (status == 200 ? " OK" : " Refused") +
            "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
            std::to_string(page.size()) + "\r\nConnection: close\r\n\r\n" + page);
        boost::asio::async_write(*socket, boost::asio::buffer(*reply),
                                 [socket, reply](auto, auto) {});
      });
      accept();
    });
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::mutex mutex_;
  std::string page_;
  int status_ = 200;
  bool hang_ = false;
  std::vector<std::shared_ptr<boost::asio::ip::tcp::socket>> held_;  // the io thread's
  std::atomic<std::size_t> requests_{0};
  std::thread thread_;
};

}  // namespace tetherd::test
