#include "test/support/api_server/connection.h"

#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "test/support/api_server/wire.h"

namespace tetherd::test::apiserver {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace {

constexpr std::size_t kHeaderLimit = 64 << 10;
constexpr std::chrono::seconds kHandshakeTimeout{10};
constexpr std::chrono::seconds kShutdownTimeout{2};

// The user is the subject's CN, the groups its O values, as kube-apiserver's
// x509 authenticator has it.
std::optional<Identity> certificate_identity(SSL* ssl) {
  X509* certificate = SSL_get0_peer_certificate(ssl);
  if (certificate == nullptr) return std::nullopt;
  Identity who;
  X509_NAME* subject = X509_get_subject_name(certificate);
  for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
    X509_NAME_ENTRY* entry = X509_NAME_get_entry(subject, i);
    unsigned char* utf8 = nullptr;
    int size = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (size < 0) continue;
    std::string value(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(size));
    OPENSSL_free(utf8);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    if (nid == NID_commonName) who.user = std::move(value);
    if (nid == NID_organizationName) who.groups.push_back(std::move(value));
  }
  who.groups.push_back("system:authenticated");
  if (BIGNUM* serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(certificate), nullptr)) {
    if (char* hex = BN_bn2hex(serial)) {
      who.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(serial);
  }
  return who;
}

}  // namespace

Connection::Connection(ServerCore& core, asio::ip::tcp::socket socket, asio::ssl::context& tls,
                       std::uint64_t id)
    : core_(core),
      stream_(beast::tcp_stream(std::move(socket)), tls),
      id_(id),
      drip_timer_(stream_.get_executor()),
      watch_timer_(stream_.get_executor()),
      bookmark_timer_(stream_.get_executor()) {}

Connection::~Connection() {
  teardown();
}

void Connection::start() {
  beast::get_lowest_layer(stream_).expires_after(kHandshakeTimeout);
  stream_.async_handshake(
      asio::ssl::stream_base::server,
      [self = shared_from_this()](boost::system::error_code ec) { self->on_handshake(ec); });
}

void Connection::on_handshake(boost::system::error_code ec) {
  // A client with a certificate from another CA, or none, ends here.
  if (ec) return teardown();
  beast::get_lowest_layer(stream_).expires_never();
  certificate_identity_ = certificate_identity(stream_.native_handle());
  read_request();
}

void Connection::read_request() {
  if (closed_) return;
  stalled_ = false;
  drip_ = std::chrono::milliseconds{0};
  parser_.emplace();
  parser_->header_limit(kHeaderLimit);
  parser_->body_limit(core_.options.max_request_body);
  http::async_read_header(stream_, buffer_, *parser_,
                          [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                            self->on_header(ec);
                          });
}

void Connection::on_header(boost::system::error_code ec) {
  if (ec) return on_read_error(ec);
  boost::optional<std::uint64_t> length = parser_->content_length();
  if (length && *length > core_.options.max_request_body)
    return on_read_error(http::error::body_limit);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                     self->on_request(ec);
                   });
}

void Connection::on_request(boost::system::error_code ec) {
  if (ec) return on_read_error(ec);
  dispatch(parser_->release());
}

void Connection::on_read_error(boost::system::error_code ec) {
  if (closed_) return;
  keep_alive_ = false;
  if (ec == http::error::body_limit) {
    // The headers were read: this is a request, and it gets kube-apiserver's Status.
    const auto& header = parser_->get();
    method_ = std::string(header.method_string());
    target_ = std::string(header.target());
    user_.clear();
    watch_request_ = false;
    respond(error_response(entity_too_large_error(core_.options.max_request_body)), std::nullopt);
  } else if (ec == http::error::header_limit) {
    enqueue(format_plain_error(431), After::kCloseGracefully);
  } else if (ec.category() == boost::system::error_code(http::error::bad_target).category() &&
             ec != http::error::end_of_stream && ec != http::error::partial_message) {
    enqueue(format_plain_error(400), After::kCloseGracefully);  // not HTTP
  } else {
    teardown();  // the client went away (eof, truncated, reset)
  }
}

void Connection::record(unsigned status) {
  core_.observations.request(RequestRecord{method_, target_, user_, status, watch_request_, serial_,
                                           std::chrono::steady_clock::now()});
}

void Connection::dispatch(http::request<http::string_body> message) {
  Request request{std::string(message.method_string()),
                  std::string(message.target()),
                  std::string(message[http::field::content_type]),
                  std::move(message.body()),
                  std::string(message[http::field::accept]),
                  std::string(message[http::field::host])};
  method_ = request.method;
  target_ = request.target;
  keep_alive_ = message.keep_alive();
  watch_request_ = is_watch_request(request);

  std::optional<Identity> who = certificate_identity_;
  std::string_view authorization = message[http::field::authorization];
  if (!who && authorization.starts_with("Bearer ")) {
    if (std::optional<std::string> user =
            core_.tokens.user_of(std::string(authorization.substr(7))))
      who = token_identity(*user);
  } else if (!who && authorization.empty() && core_.options.anonymous) {
    who = Identity{"system:anonymous", {"system:unauthenticated"}, {}};
  }
  user_ = who ? who->user : std::string{};
  serial_ = who ? who->serial : std::string{};
  if (!who) return respond(error_response(unauthorized_error()), std::nullopt);

  std::optional<MisbehaviourSpec> misbehaviour =
      core_.misbehaviour.take_for_request(request.method, request.target, watch_request_);
  Misbehaviour what = misbehaviour ? misbehaviour->what : Misbehaviour::kNone;
  if (what == Misbehaviour::kDrip)
    drip_ = std::max(misbehaviour->drip_interval, std::chrono::milliseconds{1});
  switch (what) {
    case Misbehaviour::kStall:
      record(0);
      stalled_ = true;
      return start_idle_read();
    case Misbehaviour::kStatus500:
      if (std::optional<Response> failed = failed_health_check(request.target))
        return respond(*failed, misbehaviour);
      return respond(error_response(internal_error("etcdserver: request timed out")), misbehaviour);
    case Misbehaviour::kStatus503:
      return respond(error_response(service_unavailable_error(misbehaviour->retry_after_seconds)),
                     misbehaviour);
    case Misbehaviour::kStatus429:
      return respond(error_response(too_many_requests_error(misbehaviour->retry_after_seconds)),
                     misbehaviour);
    case Misbehaviour::kGoneHttp: {
      QueryParams query = parse_query(split_target(request.target).second);
      auto asked = query.find("resourceVersion");
      std::string from = asked == query.end() || asked->second.empty() ? "0" : asked->second;
      return respond(
          error_response(expired_error("too old resource version: " + from + " (" +
                                       std::to_string(core_.store.resource_version()) + ")")),
          misbehaviour);
    }
    case Misbehaviour::kOversizedBody:
      if (watch_request_) break;
      return respond(
          Response{200, "application/json", oversized_object(misbehaviour->oversize_bytes), {}},
          misbehaviour);
    case Misbehaviour::kMalformedJson:
      if (watch_request_) break;
      return respond(Response{200, "application/json", std::string(kNotJson), {}}, misbehaviour);
    default:
      break;
  }

  Outcome outcome = core_.rest.handle(*who, request, what == Misbehaviour::kIgnoreFieldSelector);
  if (auto* response = std::get_if<Response>(&outcome)) return respond(*response, misbehaviour);
  start_watch(std::move(std::get<WatchRequest>(outcome)), std::move(misbehaviour));
}

void Connection::respond(const Response& response,
                         const std::optional<MisbehaviourSpec>& misbehaviour) {
  record(response.status);
  std::string bytes = format_response_head(response, !keep_alive_, core_.options.clock_offset);
  if (misbehaviour && misbehaviour->what == Misbehaviour::kDropMidStream) {
    bytes.append(response.body, 0, response.body.size() / 2);
    return enqueue(std::move(bytes), After::kCloseAbruptly);
  }
  bytes += response.body;
  enqueue(std::move(bytes), keep_alive_ ? After::kReadNext : After::kCloseGracefully);
}

void Connection::release_stall() {
  if (stalled_ || (watch_ && watch_->stalled)) teardown();
}

void Connection::close_abruptly() {
  teardown();
}

void Connection::start_idle_read() {
  if (closed_ || idle_read_pending_) return;
  idle_read_pending_ = true;
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                            self->on_idle_read(ec, n);
                          });
}

void Connection::on_idle_read(boost::system::error_code ec, std::size_t bytes) {
  idle_read_pending_ = false;
  if (ec) return teardown();
  buffer_.commit(bytes);
  if (request_wanted_) {
    request_wanted_ = false;
    return read_request();
  }
  // A client that sends while a watch runs: keep it for later, a little.
  if (buffer_.size() < kHeaderLimit) start_idle_read();
}

void Connection::enqueue(std::string bytes, After after) {
  if (closed_) return;
  out_.push_back(Output{std::move(bytes), after, drip_, 0});
  pump();
}

void Connection::pump() {
  if (writing_ || closed_) return;
  while (!out_.empty() && out_.front().sent == out_.front().bytes.size()) {
    After after = out_.front().after;
    out_.pop_front();
    if (!perform(after)) return;
  }
  if (out_.empty()) return;
  writing_ = true;
  Output& front = out_.front();
  std::size_t size = front.drip.count() > 0 ? 1 : front.bytes.size() - front.sent;
  asio::async_write(stream_, asio::buffer(front.bytes.data() + front.sent, size),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t written) {
                      if (ec) {
                        self->writing_ = false;
                        return self->teardown();
                      }
                      Output& front = self->out_.front();
                      front.sent += written;
                      if (front.drip.count() == 0) {
                        self->writing_ = false;
                        return self->pump();
                      }
                      self->drip_timer_.expires_after(front.drip);
                      self->drip_timer_.async_wait([self](boost::system::error_code ec) {
                        self->writing_ = false;
                        if (ec) return self->teardown();
                        self->pump();
                      });
                    });
}

bool Connection::perform(After after) {
  switch (after) {
    case After::kNothing:
      return true;
    case After::kReadNext:
      if (idle_read_pending_)
        request_wanted_ = true;
      else
        read_request();
      return true;
    case After::kCloseGracefully:
      close_gracefully();
      return false;
    case After::kCloseAbruptly:
      teardown();
      return false;
  }
  return false;
}

void Connection::close_gracefully() {
  // A TLS shutdown reads the peer's close_notify; with a read already
  // pending there cannot be a second one, so close the socket instead (the
  // answer is complete either way).
  if (idle_read_pending_) return teardown();
  beast::get_lowest_layer(stream_).expires_after(kShutdownTimeout);
  stream_.async_shutdown(
      [self = shared_from_this()](boost::system::error_code) { self->teardown(); });
}

void Connection::teardown() {
  if (closed_) return;
  closed_ = true;
  finish_watch();
  drip_timer_.cancel();
  watch_timer_.cancel();
  bookmark_timer_.cancel();
  beast::get_lowest_layer(stream_).close();
  core_.connections.erase(id_);
}

}  // namespace tetherd::test::apiserver
