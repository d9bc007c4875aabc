#pragma once
// A small synchronous HTTPS client for the API server's own tests: real TLS
// (the server's certificate verified against a CA and a name, a client
// certificate), HTTP/1.1 with keep-alive, and chunk-by-chunk watch reading.
// Every step has a deadline, so a test never hangs and never sleeps: it
// waits on the socket. Beast stays inside test_client.cpp.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include "test/support/test_pki.h"

namespace tetherd::test {

struct TlsClientOptions {
  std::string ca_pem;                        // trusted for the server's certificate
  std::optional<IssuedCert> certificate;     // the client certificate, if any
  std::string verify_name = "127.0.0.1";     // an IP or a DNS name the server must have
  std::chrono::milliseconds deadline{5000};  // for each step
};

struct HttpResponse {
  boost::system::error_code error;  // set when no complete response came
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  std::string header(const std::string& lower_case_name) const;
  boost::json::value json() const;  // null when the body is not JSON
};

struct WatchChunk {
  enum class Kind { kChunk, kEnd, kError };
  Kind kind;
  std::string data;                 // kChunk: one chunk's bytes
  boost::system::error_code error;  // kError
  bool timed_out = false;           // kError because the deadline passed
};

class TestClient {
 public:
  TestClient(std::uint16_t port, TlsClientOptions options);
  ~TestClient();
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  boost::system::error_code connect();  // TCP and the TLS handshake
  HttpResponse call(const std::string& method, const std::string& target,
                    const std::string& body = {}, const std::string& content_type = {},
                    const std::vector<std::pair<std::string, std::string>>& headers = {});

  // A watch: sends the GET and reads the head (status, headers).
  HttpResponse start_watch(const std::string& target);
  WatchChunk next_chunk();

  boost::system::error_code write_raw(std::string_view bytes);
  // Reads until the server closes (or the deadline): what arrived, and how it ended.
  std::string read_until_closed(boost::system::error_code& how);

  void set_deadline(std::chrono::milliseconds deadline);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Plain TCP: writes `bytes`, reads until the server closes; how it ended.
boost::system::error_code plain_tcp_exchange(std::uint16_t port, std::string_view bytes,
                                             std::chrono::milliseconds deadline);

}  // namespace tetherd::test
