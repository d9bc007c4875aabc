#include "test/support/api_server/test_client.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace tetherd::test {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

std::string HttpResponse::header(const std::string& lower_case_name) const {
  auto found = headers.find(lower_case_name);
  return found == headers.end() ? std::string{} : found->second;
}

boost::json::value HttpResponse::json() const {
  error_code ec;
  boost::json::value value = boost::json::parse(body, ec);
  return ec ? boost::json::value{} : value;
}

struct TestClient::Impl {
  Impl(std::uint16_t server_port, TlsClientOptions client_options)
      : port(server_port), options(std::move(client_options)) {
    on_chunk = [this](std::uint64_t remain, beast::string_view body, error_code& ec) {
      if (remain == body.size()) ec = http::error::end_of_chunk;
      chunk.append(body.data(), body.size());
      return body.size();
    };
  }

  // Runs one asynchronous operation to completion; the tcp_stream's
  // deadline bounds it.
  template <typename Start>
  error_code run(Start start) {
    error_code result = asio::error::would_block;
    start([&result](error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run();
    return result;
  }

  void arm() { beast::get_lowest_layer(*stream).expires_after(options.deadline); }

  error_code connect() {
    tls.set_verify_mode(asio::ssl::verify_peer);
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    error_code ec;
    tls.add_certificate_authority(asio::buffer(options.ca_pem), ec);
    if (ec) return ec;
    if (options.certificate) {
      tls.use_certificate_chain(asio::buffer(options.certificate->cert_pem), ec);
      if (!ec)
        tls.use_private_key(asio::buffer(options.certificate->key_pem), asio::ssl::context::pem,
                            ec);
      if (ec) return ec;
    }
    stream.emplace(io, tls);
    SSL* ssl = stream->native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    asio::ip::make_address(options.verify_name, ec);
    if (!ec) {
      X509_VERIFY_PARAM_set1_ip_asc(param, options.verify_name.c_str());
    } else {
      X509_VERIFY_PARAM_set1_host(param, options.verify_name.c_str(), 0);
      SSL_set_tlsext_host_name(ssl, options.verify_name.c_str());
    }
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    arm();
    ec = run(
        [&](auto handler) { beast::get_lowest_layer(*stream).async_connect(endpoint, handler); });
    if (ec) return ec;
    arm();
    return run(
        [&](auto handler) { stream->async_handshake(asio::ssl::stream_base::client, handler); });
  }

  error_code send(const std::string& method, const std::string& target, const std::string& body,
                  const std::string& content_type,
                  const std::vector<std::pair<std::string, std::string>>& headers) {
    if (!stream) {
      if (error_code ec = connect()) return ec;
    }
    http::request<http::string_body> request{http::string_to_verb(method), target, 11};
    request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    request.set(http::field::user_agent, "tetherd-apiserver-test");
    request.set(http::field::accept, "application/json");
    if (!content_type.empty()) request.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers)
      request.set(name, value);
    request.body() = body;
    request.prepare_payload();
    arm();
    return run([&](auto handler) { http::async_write(*stream, request, handler); });
  }

  template <typename Message>
  static void copy_head(const Message& message, HttpResponse& out) {
    out.status = message.result_int();
    for (const auto& field : message) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      out.headers[name] = std::string(field.value());
    }
  }

  std::uint16_t port;
  TlsClientOptions options;
  asio::io_context io;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::optional<asio::ssl::stream<beast::tcp_stream>> stream;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> watch_parser;
  std::function<std::size_t(std::uint64_t, beast::string_view, error_code&)> on_chunk;
  std::string chunk;
};

TestClient::TestClient(std::uint16_t port, TlsClientOptions options)
    : impl_(std::make_unique<Impl>(port, std::move(options))) {}

TestClient::~TestClient() = default;

void TestClient::set_deadline(std::chrono::milliseconds deadline) {
  impl_->options.deadline = deadline;
}

error_code TestClient::connect() {
  return impl_->connect();
}

HttpResponse TestClient::call(const std::string& method, const std::string& target,
                              const std::string& body, const std::string& content_type,
                              const std::vector<std::pair<std::string, std::string>>& headers) {
  HttpResponse out;
  out.error = impl_->send(method, target, body, content_type, headers);
  if (out.error) return out;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 << 20);
  impl_->arm();
  out.error = impl_->run(
      [&](auto handler) { http::async_read(*impl_->stream, impl_->buffer, parser, handler); });
  if (out.error) return out;
  Impl::copy_head(parser.get(), out);
  out.body = std::move(parser.get().body());
  return out;
}

HttpResponse TestClient::start_watch(const std::string& target) {
  HttpResponse out;
  out.error = impl_->send("GET", target, {}, {}, {});
  if (out.error) return out;
  impl_->watch_parser.emplace();
  impl_->watch_parser->body_limit(boost::none);
  impl_->watch_parser->on_chunk_body(impl_->on_chunk);
  impl_->arm();
  out.error = impl_->run([&](auto handler) {
    http::async_read_header(*impl_->stream, impl_->buffer, *impl_->watch_parser, handler);
  });
  if (!out.error) Impl::copy_head(impl_->watch_parser->get(), out);
  return out;
}

WatchChunk TestClient::next_chunk() {
  auto& parser = *impl_->watch_parser;
  impl_->chunk.clear();
  if (parser.is_done()) return WatchChunk{WatchChunk::Kind::kEnd, {}, {}, false};
  impl_->arm();
  error_code ec = impl_->run(
      [&](auto handler) { http::async_read(*impl_->stream, impl_->buffer, parser, handler); });
  if (ec == http::error::end_of_chunk)
    return WatchChunk{WatchChunk::Kind::kChunk, impl_->chunk, {}, false};
  if (ec)
    return WatchChunk{WatchChunk::Kind::kError, impl_->chunk, ec, ec == beast::error::timeout};
  // A body that is not chunked (an error answer): all of it as one piece.
  if (!parser.chunked() && !parser.get().body().empty())
    return WatchChunk{WatchChunk::Kind::kChunk, std::move(parser.get().body()), {}, false};
  return WatchChunk{WatchChunk::Kind::kEnd, {}, {}, false};
}

error_code TestClient::write_raw(std::string_view bytes) {
  if (!impl_->stream) {
    if (error_code ec = impl_->connect()) return ec;
  }
  impl_->arm();
  return impl_->run(
      [&](auto handler) { asio::async_write(*impl_->stream, asio::buffer(bytes), handler); });
}

std::string TestClient::read_until_closed(error_code& how) {
  std::string received(static_cast<const char*>(impl_->buffer.data().data()), impl_->buffer.size());
  impl_->buffer.consume(impl_->buffer.size());
  char block[4096];
  while (true) {
    std::size_t got = 0;
    impl_->arm();
    how = impl_->run([&](auto handler) {
      impl_->stream->async_read_some(asio::buffer(block),
                                     [&got, handler](error_code ec, std::size_t n) mutable {
                                       got = n;
                                       handler(ec, n);
                                     });
    });
    received.append(block, got);
    if (how) return received;
  }
}

error_code plain_tcp_exchange(std::uint16_t port, std::string_view bytes,
                              std::chrono::milliseconds deadline) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  error_code result = asio::error::would_block;
  stream.expires_after(deadline);
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  char sink[4096];
  std::function<void(error_code, std::size_t)> on_read = [&](error_code ec, std::size_t) {
    if (ec) {
      result = ec;
      return;
    }
    stream.async_read_some(asio::buffer(sink), on_read);
  };
  stream.async_connect(endpoint, [&](error_code ec) {
    if (ec) {
      result = ec;
      return;
    }
    asio::async_write(stream, asio::buffer(bytes), [&](error_code ec, std::size_t) {
      if (ec) {
        result = ec;
        return;
      }
      stream.async_read_some(asio::buffer(sink), on_read);
    });
  });
  io.run();
  return result;
}

}  // namespace tetherd::test
