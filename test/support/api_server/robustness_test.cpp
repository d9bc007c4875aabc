// Clients that misbehave towards the server: garbage, huge headers and
// bodies, no TLS, leaving mid-request. The server answers what it can and
// goes on serving.

#include "test/support/api_server/fixture.h"

namespace tetherd::test {
namespace {

constexpr char kJson[] = "application/json";

std::string edge_node(const std::string& name, const std::string& extra = "") {
  return R"({"metadata":{"name":")" + name + R"("},"spec":{})" + extra + "}";
}

class RobustnessTest : public ApiServerTest {};

TEST_F(RobustnessTest, GarbageGets400AndTheServerGoesOn) {
  start();
  auto vandal = admin();
  ASSERT_FALSE(vandal->write_raw("\x01\x02 not HTTP at all\r\n\r\n"));
  boost::system::error_code how;
  std::string answer = vandal->read_until_closed(how);
  EXPECT_EQ(answer.rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << answer;
  EXPECT_EQ(admin()->call("GET", "/readyz").status, 200u);
}

TEST_F(RobustnessTest, HugeHeadersGet431) {
  start();
  auto vandal = admin();
  std::string request =
      "GET /readyz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(70 << 10, 'a') + "\r\n\r\n";
  (void)vandal->write_raw(request);  // the server may close before it has read it all
  boost::system::error_code how;
  std::string answer = vandal->read_until_closed(how);
  EXPECT_EQ(answer.rfind("HTTP/1.1 431 ", 0), 0u) << answer.substr(0, 80);
  EXPECT_EQ(admin()->call("GET", "/readyz").status, 200u);
}

TEST_F(RobustnessTest, LargeBodiesGet413) {
  ApiServerOptions options = default_options();
  options.max_request_body = 1024;
  start(options);
  auto kubectl = admin();
  HttpResponse too_large = kubectl->call(
      "POST", kEdgeNodes, edge_node("a", R"(,"pad":")" + std::string(2000, 'x') + "\""), kJson);
  EXPECT_EQ(too_large.status, 413u);
  EXPECT_EQ(str(too_large.json(), {"reason"}), "RequestEntityTooLarge");
  EXPECT_EQ(str(too_large.json(), {"message"}), "Request entity too large: limit is 1024");
  EXPECT_EQ(admin()->call("POST", kEdgeNodes, edge_node("a"), kJson).status, 201u);
}

TEST_F(RobustnessTest, ClientsThatLeaveEarlyOrSpeakNoTls) {
  start();
  EXPECT_TRUE(plain_tcp_exchange(server().port(), "GET /readyz HTTP/1.1\r\n\r\n", kWait));
  {
    auto quitter = admin();
    ASSERT_FALSE(
        quitter->write_raw("POST /apis/tetherd.io/v1alpha1/namespaces/x/edgenodes HTTP/1.1\r\n"
                           "Content-Length: 100\r\n\r\n{\"meta"));
  }  // gone mid-body
  EXPECT_EQ(admin()->call("GET", "/readyz").status, 200u);
  EXPECT_EQ(server().connections_accepted(), 3u);
}

}  // namespace
}  // namespace tetherd::test
