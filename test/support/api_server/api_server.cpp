#include "test/support/api_server/api_server.h"

#include <cstdio>
#include <functional>
#include <future>
#include <stdexcept>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "test/support/api_server/connection.h"
#include "test/support/api_server/rbac_objects.h"
#include "test/support/api_server/server_core.h"

namespace tetherd::test {
namespace asio = boost::asio;
namespace json = boost::json;
using apiserver::Connection;
using apiserver::PathKind;
using apiserver::ResourcePath;

namespace {

constexpr unsigned char kSessionIdContext[] = "tetherd-test-apiserver";

std::unique_ptr<asio::ssl::context> make_tls(const IssuedCert& identity,
                                             const ApiServerOptions& options) {
  auto tls = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* native = tls->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  tls->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::single_dh_use);
  // Exactly the chain given, as Go's TLS sends it: OpenSSL would otherwise
  // add the CA from the client CA store by itself.
  SSL_CTX_set_mode(native, SSL_MODE_NO_AUTO_CHAIN);
  const std::string chain = identity.cert_pem + options.extra_chain_pem;
  tls->use_certificate_chain(asio::buffer(chain));
  tls->use_private_key(asio::buffer(identity.key_pem), asio::ssl::context::pem);
  if (!options.client_ca_pem.empty()) {
    tls->add_certificate_authority(asio::buffer(options.client_ca_pem));
    // Tell clients which CA to pick a certificate for (CertificateRequest).
    BIO* bio = BIO_new_mem_buf(options.client_ca_pem.data(),
                               static_cast<int>(options.client_ca_pem.size()));
    X509* ca = bio != nullptr ? PEM_read_bio_X509(bio, nullptr, nullptr, nullptr) : nullptr;
    if (ca != nullptr) SSL_CTX_add_client_CA(native, ca);
    X509_free(ca);
    BIO_free(bio);
  }
  // Certificates stay optional when bearer tokens may stand in for them.
  int mode = asio::ssl::verify_peer;
  if (options.tokens.empty() && !options.anonymous) mode |= asio::ssl::verify_fail_if_no_peer_cert;
  tls->set_verify_mode(mode);
  // Session resumption with client verification needs an id context.
  SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof kSessionIdContext - 1);
  return tls;
}

// The resource an object or collection path names; throws when none.
ResourcePath resource_path(const std::string& path, bool collection) {
  ResourcePath parsed = apiserver::parse_path(path);
  bool ok = collection ? parsed.kind == PathKind::kCollection && !parsed.all_namespaces
                       : parsed.kind == PathKind::kObject || parsed.kind == PathKind::kStatus;
  if (!ok)
    throw std::runtime_error("not " + std::string(collection ? "a collection" : "an object") +
                             " path the test API server serves: " + path);
  return parsed;
}

template <typename T>
T value_or_throw(apiserver::Expected<T> result) {
  if (!result.ok())
    throw std::runtime_error(std::string(apiserver::status_message(result.error())));
  return std::move(result.value());
}

}  // namespace

struct ApiServer::Impl {
  explicit Impl(ApiServerOptions options) : core(std::move(options)) {}

  void listen(const asio::ip::tcp::endpoint& endpoint) {
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen();
    port = acceptor.local_endpoint().port();
    accept();
  }

  void close_everything() {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    std::vector<std::shared_ptr<Connection>> live;
    for (auto& [id, weak] : core.connections)
      if (auto connection = weak.lock()) live.push_back(std::move(connection));
    for (auto& connection : live)
      connection->close_abruptly();
  }

  void accept() {
    acceptor.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket socket) {
      if (!acceptor.is_open()) return;
      if (!ec) on_accept(std::move(socket));
      accept();
    });
  }

  void on_accept(asio::ip::tcp::socket socket) {
    core.observations.connection_accepted();
    // As Go's net package: no Nagle, so each watch event leaves at once.
    boost::system::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    asio::ssl::context* chosen = normal_tls.get();
    if (std::optional<MisbehaviourSpec> spec = core.misbehaviour.take_for_connection())
      chosen =
          spec->what == Misbehaviour::kWrongHostCert ? wrong_host_tls.get() : expired_tls.get();
    auto connection = std::make_shared<Connection>(core, std::move(socket), *chosen, ++last_id);
    core.connections[last_id] = connection;
    connection->start();
  }

  // Runs `action` on the server's thread and waits for it.
  // Runs `action` on the server's thread and waits for it; what it throws
  // (come_back()'s bind, say) is thrown here.
  void run_on_server(const std::function<void()>& action) {
    std::promise<void> done;
    asio::post(io, [&] {
      try {
        action();
        done.set_value();
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    });
    done.get_future().get();
  }

  void for_each_connection(const std::function<void(Connection&)>& action) {
    run_on_server([&] {
      std::vector<std::shared_ptr<Connection>> live;
      for (auto& [id, weak] : core.connections)
        if (auto connection = weak.lock()) live.push_back(std::move(connection));
      for (auto& connection : live)
        action(*connection);
    });
  }

  apiserver::ServerCore core;
  std::unique_ptr<asio::ssl::context> normal_tls, wrong_host_tls, expired_tls;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  asio::ip::tcp::acceptor acceptor{io};
  std::uint64_t last_id = 0;
  std::uint16_t port = 0;
  std::thread thread;
};

ApiServer::ApiServer(ApiServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  const ApiServerOptions& config = impl_->core.options;
  impl_->normal_tls = make_tls(config.identity, config);
  if (config.wrong_host) impl_->wrong_host_tls = make_tls(*config.wrong_host, config);
  if (config.expired) impl_->expired_tls = make_tls(*config.expired, config);

  impl_->listen(
      asio::ip::tcp::endpoint(asio::ip::make_address(config.listen_address), config.listen_port));
  impl_->thread = std::thread([impl = impl_.get()] {
    // A handler that throws is a bug in this server; say so and keep serving.
    while (true) {
      try {
        impl->io.run();
        return;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "test API server: unexpected exception: %s\n", e.what());
      }
    }
  });
}

ApiServer::~ApiServer() {
  asio::post(impl_->io, [impl = impl_.get()] {
    impl->close_everything();
    impl->io.stop();
  });
  impl_->thread.join();
}

std::uint16_t ApiServer::port() const {
  return impl_->port;
}

std::string ApiServer::url() const {
  const auto address = asio::ip::make_address(impl_->core.options.listen_address);
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return "https://" + host + ":" + std::to_string(port());
}

void ApiServer::go_down() {
  impl_->run_on_server([impl = impl_.get()] { impl->close_everything(); });
}

void ApiServer::come_back() {
  // On the server's thread, which lives in the network namespace the
  // server was made in.
  asio::ip::tcp::endpoint endpoint(asio::ip::make_address(impl_->core.options.listen_address),
                                   impl_->port);
  impl_->run_on_server([impl = impl_.get(), endpoint] { impl->listen(endpoint); });
}

void ApiServer::allow(AccessRule rule) {
  impl_->core.authorizer.allow(std::move(rule));
}

void ApiServer::misbehave(MisbehaviourSpec spec) {
  if ((spec.what == Misbehaviour::kWrongHostCert && !impl_->wrong_host_tls) ||
      (spec.what == Misbehaviour::kExpiredCert && !impl_->expired_tls))
    throw std::invalid_argument("TLS misbehaviour armed without its identity in ApiServerOptions");
  impl_->core.misbehaviour.arm(std::move(spec));
}

void ApiServer::release_stalls() {
  impl_->for_each_connection([](Connection& c) { c.release_stall(); });
}
void ApiServer::bookmark_now() {
  impl_->for_each_connection([](Connection& c) { c.bookmark_now(); });
}
void ApiServer::end_watches() {
  impl_->for_each_connection([](Connection& c) { c.end_watch(); });
}
void ApiServer::drop_connections() {
  impl_->for_each_connection([](Connection& c) { c.close_abruptly(); });
}
void ApiServer::compact() {
  impl_->core.store.compact();
}

json::object ApiServer::create(const std::string& collection_path, json::object object) {
  ResourcePath path = resource_path(collection_path, true);
  json::value& metadata = object["metadata"];
  if (!metadata.is_object()) metadata = json::object{};
  metadata.get_object()["namespace"] = path.namespace_;
  json::object created =
      value_or_throw(impl_->core.store.create(*path.type, path.namespace_, std::move(object)));
  if (apiserver::is_rbac_type(*path.type))
    apiserver::sync_rbac(impl_->core.store, impl_->core.authorizer);
  return created;
}

std::optional<json::object> ApiServer::get(const std::string& object_path) const {
  ResourcePath path = resource_path(object_path, false);
  apiserver::Expected<json::object> found =
      impl_->core.store.get(*path.type, path.namespace_, path.name);
  if (!found.ok()) return std::nullopt;
  return std::move(found.value());
}

json::object ApiServer::update(const std::string& object_path, json::object object) {
  ResourcePath path = resource_path(object_path, false);
  json::value& metadata = object["metadata"];
  if (!metadata.is_object()) metadata = json::object{};
  metadata.get_object().erase("resourceVersion");
  json::object updated = value_or_throw(impl_->core.store.update(
      *path.type, path.namespace_, path.name, std::move(object), apiserver::WriteScope::kObject));
  if (apiserver::is_rbac_type(*path.type))
    apiserver::sync_rbac(impl_->core.store, impl_->core.authorizer);
  return updated;
}

json::object ApiServer::patch_status(const std::string& object_path, json::object status) {
  ResourcePath path = resource_path(object_path, false);
  json::value patch = json::object{{"status", std::move(status)}};
  return value_or_throw(impl_->core.store.patch(*path.type, path.namespace_, path.name, patch,
                                                apiserver::WriteScope::kStatus));
}

void ApiServer::remove(const std::string& object_path) {
  ResourcePath path = resource_path(object_path, false);
  value_or_throw(impl_->core.store.remove(*path.type, path.namespace_, path.name, std::nullopt));
  if (apiserver::is_rbac_type(*path.type))
    apiserver::sync_rbac(impl_->core.store, impl_->core.authorizer);
}

std::uint64_t ApiServer::resource_version() const {
  return impl_->core.store.resource_version();
}

std::vector<RequestRecord> ApiServer::requests() const {
  return impl_->core.observations.requests();
}
std::vector<std::string> ApiServer::evictions() const {
  std::vector<std::string> evicted;
  for (const RequestRecord& record : requests()) {
    const ResourcePath path = apiserver::parse_path(apiserver::split_target(record.target).first);
    if (path.kind == PathKind::kEviction && record.method == "POST" && record.status == 201)
      evicted.push_back(path.namespace_ + "/" + path.name);
  }
  return evicted;
}
std::size_t ApiServer::connections_accepted() const {
  return impl_->core.observations.connections();
}
std::size_t ApiServer::open_watches() const {
  return impl_->core.observations.open_watches();
}
std::size_t ApiServer::watches_started() const {
  return impl_->core.observations.watches_started();
}

bool ApiServer::wait_for_watches(std::size_t n, std::chrono::milliseconds timeout) const {
  return impl_->core.observations.wait(
      timeout, [n](const apiserver::Observations& o) { return o.open_watches_locked() >= n; });
}
bool ApiServer::wait_for_watch_starts(std::size_t n, std::chrono::milliseconds timeout) const {
  return impl_->core.observations.wait(
      timeout, [n](const apiserver::Observations& o) { return o.watches_started_locked() >= n; });
}
bool ApiServer::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  return impl_->core.observations.wait(
      timeout, [n](const apiserver::Observations& o) { return o.request_count_locked() >= n; });
}
bool ApiServer::wait_for_no_watches(std::chrono::milliseconds timeout) const {
  return wait_for_watches_at_most(0, timeout);
}
bool ApiServer::wait_for_watches_at_most(std::size_t n, std::chrono::milliseconds timeout) const {
  return impl_->core.observations.wait(
      timeout, [n](const apiserver::Observations& o) { return o.open_watches_locked() <= n; });
}

}  // namespace tetherd::test
