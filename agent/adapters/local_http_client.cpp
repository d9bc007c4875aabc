#include "agent/adapters/local_http_client.h"

#include <algorithm>
#include <string_view>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "agent/core/duration.h"

namespace tetherd {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;

constexpr std::size_t kMaxHeaderBytes = 16 << 10;
constexpr std::size_t kQuotedBodyBytes = 200;

// The start of an error body, on one line: enough to say what went wrong,
// not enough to flood the terminal, and nothing that steers it (control
// characters, C0 and C1, become spaces).
std::string quoted_body(std::string_view body) {
  std::string out;
  const std::size_t end = std::min(body.size(), kQuotedBodyBytes);
  for (std::size_t i = 0; i < end; ++i) {
    const auto c = static_cast<unsigned char>(body[i]);
    const auto next = i + 1 < end ? static_cast<unsigned char>(body[i + 1]) : 0;
    const bool c1 = c == 0xc2 && next >= 0x80 && next < 0xa0;
    if (c < 0x20 || c == 0x7f || c1) {
      out += ' ';
      i += c1 ? 1 : 0;
    } else {
      out += static_cast<char>(c);
    }
  }
  while (!out.empty() && out.back() == ' ')
    out.pop_back();
  if (body.size() > kQuotedBodyBytes) out += "...";
  return out;
}

// One exchange, its steps chained by completion handlers on a private
// io_context. basic_stream keeps a single expiry for every step started
// after expires_after, so the deadline covers the exchange as a whole.
struct Exchange {
  explicit Exchange(asio::io_context& io) : stream(io) {}

  beast::basic_stream<Local> stream;
  http::request<http::empty_body> request;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  enum class Step { kConnect, kSend, kReceive } failed_at = Step::kConnect;
  beast::error_code error;
};

Error connect_error(const std::string& path, const beast::error_code& ec) {
  namespace errc = boost::system::errc;
  if (ec == errc::no_such_file_or_directory)
    return make_error("tetherd is not running (no " + path + ")");
  if (ec == errc::connection_refused)
    return make_error("tetherd is not running (nothing listens on " + path + ")");
  if (ec == errc::permission_denied || ec == errc::operation_not_permitted) {
    return make_error("cannot connect to " + path +
                      ": permission denied (tetherd's socket is root's: run tetherctl with sudo)");
  }
  return make_error("cannot connect to " + path + ": " + ec.message());
}

}  // namespace

Result<std::string> http_get_unix(const std::string& socket_path, const std::string& target,
                                  Duration timeout, std::size_t max_body) {
  // Asio throws for a path that does not fit sun_path; say it instead.
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un::sun_path))
    return make_error("not a usable socket path: \"" + socket_path + "\"");

  asio::io_context io(1);
  Exchange x(io);
  x.request.method(http::verb::get);
  x.request.target(target);
  x.request.version(11);
  x.request.set(http::field::host, "localhost");
  x.request.set(http::field::user_agent, "tetherctl/" TETHERD_VERSION);
  x.request.set(http::field::accept, "application/json");
  x.request.set(http::field::connection, "close");
  x.parser.header_limit(kMaxHeaderBytes);
  x.parser.body_limit(max_body);

  x.stream.expires_after(timeout);
  x.stream.async_connect(Local::endpoint(socket_path), [&x](beast::error_code ec) {
    if (ec) return void(x.error = ec);
    x.failed_at = Exchange::Step::kSend;
    http::async_write(x.stream, x.request, [&x](beast::error_code ec, std::size_t) {
      if (ec) return void(x.error = ec);
      x.failed_at = Exchange::Step::kReceive;
      http::async_read(x.stream, x.buffer, x.parser,
                       [&x](beast::error_code ec, std::size_t) { x.error = ec; });
    });
  });
  io.run();
  beast::error_code ignored;
  x.stream.socket().close(ignored);

  const beast::error_code& ec = x.error;
  if (ec == beast::error::timeout) {
    return make_error("tetherd did not answer within " + format_duration(timeout) + " (" +
                      socket_path + ")");
  }
  if (ec && x.failed_at == Exchange::Step::kConnect) return connect_error(socket_path, ec);
  if (ec == http::error::body_limit)
    return make_error("tetherd's answer is larger than " + std::to_string(max_body) + " bytes");
  if (ec == http::error::header_limit)
    return make_error("tetherd's answer has headers larger than " +
                      std::to_string(kMaxHeaderBytes) + " bytes");
  if (ec == http::error::end_of_stream || ec == asio::error::eof)
    return make_error("tetherd closed the connection without an answer (" + socket_path + ")");
  if (ec && ec.category() == http::make_error_code(http::error::bad_version).category()) {
    return make_error("tetherd's answer is not HTTP/1.1 (" + ec.message() + ")");
  }
  if (ec) return make_error("cannot talk to tetherd at " + socket_path + ": " + ec.message());

  auto& response = x.parser.get();
  if (response.result() != http::status::ok) {
    std::string message = "tetherd answered " + std::to_string(response.result_int()) + " " +
                          std::string(response.reason());
    const std::string body = quoted_body(response.body());
    if (!body.empty()) message += ": " + body;
    return make_error(message);
  }
  return Result<std::string>(boost::system::in_place_value, std::move(response.body()));
}

}  // namespace tetherd
