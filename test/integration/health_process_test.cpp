// Health through the real binaries: tetherd's metrics scraped over HTTP and
// checked by promtool, and `tetherctl status` reading tetherd's socket.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/stat.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "test/support/child_process.h"
#include "test/support/loopback_http.h"
#include "test/support/notify_socket.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

constexpr auto kDeadline = 10s;

using test::free_port;

http::response<http::string_body> get(std::uint16_t port, const std::string& target) {
  auto res = test::http_get(port, target);
  if (!res) throw std::runtime_error("nothing listens on 127.0.0.1:" + std::to_string(port));
  return std::move(*res);
}

class HealthProcess : public ::testing::Test {
 protected:
  HealthProcess() { std::filesystem::create_directories(tmp_.file("run")); }

  struct Run {
    int code;
    std::string out;
    std::string err;
  };
  Run run(std::vector<std::string> argv, std::map<std::string, std::string> env = {}) {
    const std::string dir = tmp_.file("run" + std::to_string(runs_++));
    std::filesystem::create_directories(dir);
    test::ChildProcess p(std::move(argv), dir, {.env = std::move(env)});
    const int code = p.wait(kDeadline);
    return {code, p.out(), p.err()};
  }

  test::TempDir tmp_;
  int runs_ = 0;
};

TEST_F(HealthProcess, MetricsPassPromtoolAndTetherctlStatusReadsTheSocket) {
  const std::uint16_t port = free_port();
  const std::string config = tmp_.file("tetherd.yaml");
  std::ofstream(config) << "node: {name: desk}\nfirewall: {backend: none}\n"
                        << "state: {dir: " << tmp_.file("state") << "}\n"
                        << "metrics: {listen: \"127.0.0.1:" << port << "\"}\n";
  test::NotifySocket notify(tmp_.file("notify"));
  test::ChildProcess daemon(
      {TETHERD_BINARY, "--config", config}, tmp_.path(),
      {.env = {{"NOTIFY_SOCKET", notify.path()}, {"RUNTIME_DIRECTORY", tmp_.file("run")}}});
  ASSERT_TRUE(notify.wait_for("READY=1", kDeadline)) << daemon.err();
  // The first round's verdict reaches STATUS= (and `systemctl status`).
  ASSERT_TRUE(notify.wait_for("; Ready=", kDeadline)) << daemon.err();

  // The socket is root's alone.
  const std::string socket = tmp_.file("run/tetherd.sock");
  struct stat st {};
  ASSERT_EQ(stat(socket.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto json = run({TETHERCTL_BINARY, "status", "-o", "json", "--socket", socket});
  ASSERT_NE(json.code, 2) << json.err;
  const auto doc = boost::json::parse(json.out);
  EXPECT_EQ(doc.at("nodeName"), "desk");
  EXPECT_EQ(doc.as_object().count("controlPlane"), 0u);  // standalone
  const auto& status = doc.at("status").as_object();
  std::string ready;
  bool firewall = false, clock = false;
  for (const auto& c : status.at("conditions").as_array()) {
    if (c.at("type") == "Ready") ready = c.at("status").as_string().c_str();
    if (c.at("type") == "FirewallInSync") {
      firewall = true;
      EXPECT_EQ(c.at("status"), "True");
      EXPECT_EQ(c.at("reason"), "StaticAllowlist");
    }
    clock = clock || c.at("type") == "ClockSynchronized";
  }
  EXPECT_TRUE(firewall && clock) << json.out;
  // Whether this machine's clock is synchronized is the machine's business;
  // the exit code must follow Ready either way.
  EXPECT_EQ(json.code, ready == "True" ? 0 : 1) << json.out;
  EXPECT_GT(status.at("node").at("uptimeSeconds").as_int64(), 0);

  // Piped: the table without colour, and the same exit code.
  auto table = run({TETHERCTL_BINARY, "status", "--socket", socket});
  EXPECT_EQ(table.code, json.code);
  EXPECT_NE(table.out.find("FirewallInSync"), std::string::npos) << table.out;
  EXPECT_EQ(table.out.find('\x1b'), std::string::npos) << table.out;

  // The scrape: Prometheus' content type, the documented families, and
  // promtool's lint finds nothing.
  auto scrape = get(port, "/metrics");
  EXPECT_EQ(scrape.result_int(), 200);
  EXPECT_EQ(scrape[http::field::content_type], "text/plain; version=0.0.4; charset=utf-8");
  const std::string& body = scrape.body();
  const std::string sources =
      "tetherd_firewall_sources " +
      std::to_string(status.at("firewall").at("sources").to_number<std::uint64_t>()) + "\n";
  for (const std::string& line :
       {std::string("tetherd_condition{type=\"FirewallInSync\",status=\"true\"} 1\n"), sources,
        std::string("tetherd_resumes_total 0\n"),
        std::string("# TYPE process_cpu_seconds_total counter\n")}) {
    EXPECT_NE(body.find(line), std::string::npos) << line << "\n" << body;
  }
  EXPECT_EQ(get(port, "/").result_int(), 404);
  const std::string scraped = tmp_.file("scrape.txt");
  std::ofstream(scraped) << body;
  if (std::system("command -v promtool >/dev/null") != 0) {
    if (std::getenv("CI") != nullptr) FAIL() << "promtool is missing (Debian package prometheus)";
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus)";
  }
  auto lint = run({"/bin/sh", "-c", "promtool check metrics < " + scraped});
  EXPECT_EQ(lint.code, 0) << lint.out << lint.err;
  EXPECT_EQ(lint.out + lint.err, "") << body;

  daemon.signal(SIGTERM);
  EXPECT_EQ(daemon.wait(kDeadline), 0) << daemon.err();
  EXPECT_FALSE(std::filesystem::exists(socket));  // removed on stop
  auto gone = run({TETHERCTL_BINARY, "status", "--socket", socket});
  EXPECT_EQ(gone.code, 2);
  EXPECT_NE(gone.err.find("not running"), std::string::npos) << gone.err;
}

}  // namespace
}  // namespace tetherd
