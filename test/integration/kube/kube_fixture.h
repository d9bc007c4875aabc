#pragma once
// tetherd's Kubernetes client against the test API server, over real mTLS
// with certificates made here. The client runs on its own io_context on a
// thread of the test; the test's thread drives the server and waits on
// conditions (never on a sleep), with a deadline so nothing hangs.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "agent/kube/kube_client.h"
#include "agent/kube/reflector.h"
#include "test/support/api_server/api_server.h"
#include "test/support/rbac_manifest.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace tetherd::test {

inline constexpr const char* kNamespace = "tetherd-system";
inline constexpr auto kDeadline = std::chrono::seconds(20);

inline boost::json::object edge_node(const std::string& name, boost::json::array sources) {
  return boost::json::object{{"apiVersion", "tetherd.io/v1alpha1"},
                             {"kind", "EdgeNode"},
                             {"metadata", {{"name", name}, {"namespace", kNamespace}}},
                             {"spec", {{"firewall", {{"allowedSources", std::move(sources)}}}}}};
}

inline std::string rv_of(const boost::json::object& o) {
  return std::string(o.at("metadata").at("resourceVersion").as_string());
}

// Things the client's thread tells the test's thread.
class Mailbox {
 public:
  void push(std::string note) {
    std::lock_guard lock(mutex_);
    notes_.push_back(std::move(note));
    cv_.notify_all();
  }
  // Waits until a note satisfies `match`; returns it (or "" on timeout).
  std::string wait_for(const std::function<bool(const std::string&)>& match,
                       std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock lock(mutex_);
    std::string found;
    cv_.wait_for(lock, timeout, [&] {
      for (const auto& n : notes_)
        if (match(n)) return found = n, true;
      return false;
    });
    return found;
  }
  std::string wait_for_prefix(const std::string& prefix,
                              std::chrono::milliseconds timeout = kDeadline) {
    return wait_for([&](const std::string& n) { return n.rfind(prefix, 0) == 0; }, timeout);
  }
  // Waits until `n` notes start with `prefix`.
  bool wait_for_count(const std::string& prefix, std::size_t n,
                      std::chrono::milliseconds timeout = kDeadline) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] {
      return static_cast<std::size_t>(std::count_if(notes_.begin(), notes_.end(), [&](auto& x) {
               return x.rfind(prefix, 0) == 0;
             })) >= n;
    });
  }
  std::vector<std::string> notes() const {
    std::lock_guard lock(mutex_);
    return notes_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> notes_;
};

class KubeTest : public testing::Test {
 protected:
  // `customize`: a test's own server options (a signer, tokens), after the
  // defaults.
  explicit KubeTest(const std::function<void(ApiServerOptions&, const TestCa&)>& customize = {}) {
    ApiServerOptions options;
    options.identity = ca_.issue({.common_name = "kube-apiserver",
                                  .dns_names = {"localhost"},
                                  .ip_addresses = {"127.0.0.1"},
                                  .client_auth = false});
    options.client_ca_pem = ca_.cert_pem();
    options.wrong_host = ca_.issue({.common_name = "cloud.example",
                                    .dns_names = {"cloud.example"},
                                    .ip_addresses = {"198.51.100.7"},
                                    .client_auth = false});
    options.expired = ca_.issue({.common_name = "kube-apiserver",
                                 .ip_addresses = {"127.0.0.1"},
                                 .not_before_offset = std::chrono::hours(-72),
                                 .lifetime = std::chrono::hours(24),
                                 .client_auth = false});
    if (customize) customize(options, ca_);
    server_ = std::make_unique<ApiServer>(std::move(options));
    // Exactly what an admin applies for node-a (packaging/kubernetes).
    for (auto& rule : shipped_rules())
      server_->allow(std::move(rule));
  }

  // A cluster admin's (system:admin in system:masters): what k3s.yaml holds.
  Kubeconfig admin_kubeconfig() const {
    Kubeconfig k = kubeconfig();
    const auto admin = ca_.issue(
        {.common_name = "system:admin", .organizations = {"system:masters"}, .server_auth = false});
    k.client_cert_pem = admin.cert_pem;
    k.client_key_pem = admin.key_pem;
    return k;
  }

  // k3s's kubeconfig in `dir` as k3s writes it (/etc/rancher/k3s/k3s.yaml):
  // the admin's, its CA and client certificate in files beside it.
  void write_k3s_yaml(const TempDir& dir) const {
    const auto admin = ca_.issue(
        {.common_name = "system:admin", .organizations = {"system:masters"}, .server_auth = false});
    dir.write("ca.crt", ca_.cert_pem());
    dir.write("admin.crt", admin.cert_pem);
    dir.write("admin.key", admin.key_pem);
    dir.write("k3s.yaml",
              "apiVersion: v1\nkind: Config\nclusters:\n- name: default\n  cluster:\n"
              "    certificate-authority: ca.crt\n    server: " +
                  server_->url() +
                  "\ncontexts:\n- name: default\n  context: {cluster: default, user: default}\n"
                  "current-context: default\nusers:\n- name: default\n  user:\n"
                  "    client-certificate: admin.crt\n    client-key: admin.key\n");
  }

  // A node's (in group tetherd:nodes, which the shipped RBAC binds) unless
  // `groups` says otherwise.
  Kubeconfig kubeconfig(const std::string& user = "tetherd:node-a", const TestCa* issuer = nullptr,
                        std::vector<std::string> groups = {"tetherd:nodes"}) const {
    Kubeconfig k;
    k.path = "test-kubeconfig";
    k.context = "default";
    k.server = server_->url();
    k.ca_pem = ca_.cert_pem();
    const auto cert =
        (issuer ? *issuer : ca_)
            .issue({.common_name = user, .organizations = std::move(groups), .server_auth = false});
    k.client_cert_pem = cert.cert_pem;
    k.client_key_pem = cert.key_pem;
    return k;
  }

  // Makes the client (on the client's thread's executor).
  std::unique_ptr<kube::HttpsClient> client(const Kubeconfig& k, kube::ClientLimits limits = {}) {
    auto c = kube::HttpsClient::create(io_.get_executor(), k, limits);
    if (!c) ADD_FAILURE() << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  // Runs `coroutine` on the client's io_context on a thread of its own and
  // waits for its result, at most kDeadline: a hang fails the test, and
  // stops the loop so the test can end.
  template <class T>
  T run(boost::asio::awaitable<T> coroutine) {
    auto result = start(std::move(coroutine));
    return finish(result);
  }

  template <class T>
  std::future<T> start(boost::asio::awaitable<T> coroutine) {
    auto promise = std::make_shared<std::promise<T>>();
    auto future = promise->get_future();
    boost::asio::co_spawn(io_, std::move(coroutine), [promise](std::exception_ptr e, T value) {
      if (e) {
        promise->set_exception(e);
      } else {
        promise->set_value(std::move(value));
      }
    });
    ensure_thread();
    return future;
  }

  template <class T>
  T finish(std::future<T>& future) {
    if (future.wait_for(kDeadline) != std::future_status::ready) {
      ADD_FAILURE() << "the client did not finish within the deadline (a hang)";
      io_.stop();
      join();
      throw std::runtime_error("hang");
    }
    return future.get();
  }

  // Runs `f` on the client's thread (where the client's objects live).
  void on_client_thread(std::function<void()> f) { boost::asio::post(io_, std::move(f)); }

  ~KubeTest() override {
    io_.stop();
    join();
  }

  void ensure_thread() {
    if (thread_.joinable()) return;
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  void join() {
    work_.reset();
    if (thread_.joinable()) thread_.join();
  }

  TestCa ca_{"cluster CA"};
  std::unique_ptr<ApiServer> server_;
  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

// A RetryContext that records each delay the policy chose and waits for
// none of them: time is not what these tests are about.
struct RecordedDelays {
  std::shared_ptr<std::vector<Duration>> delays = std::make_shared<std::vector<Duration>>();
  kube::RetryContext context(BackoffPolicy policy = {}) const {
    kube::RetryContext r;
    r.policy = policy;
    auto d = delays;
    r.sleep = [d](Duration delay) -> boost::asio::awaitable<void> {
      d->push_back(delay);
      co_return;
    };
    r.random = [] { return 0.5; };
    // Time passes as it would have, had the delays been waited out.
    r.now = [d] {
      Duration slept{};
      for (Duration delay : *d)
        slept += delay;
      return std::chrono::steady_clock::now().time_since_epoch() + slept;
    };
    return r;
  }
};

}  // namespace tetherd::test
