// test-gateway: a stand-in for linkerd's multicluster gateway, for
// scripts/demo: the proxy's readiness endpoint (plain HTTP, 200 "ready") and
// the gateway's data port, listening where linkerd's do.
//
//   test-gateway [--listen ADDRESS] [--admin-port 4191] [--gateway-port 4143]
//
// Prints "serving" when it accepts connections; serves until SIGTERM or SIGINT.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "test/support/fake_gateway.h"
#include "test/support/standins/flags.h"

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    std::string address = "0.0.0.0";
    std::uint16_t admin_port = 4191, gateway_port = 4143;
    using tetherd::test::port_flag;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--listen") {
        address = argv[i + 1];
      } else if (flag == "--admin-port") {
        admin_port = port_flag(argv[i + 1]);
      } else if (flag == "--gateway-port") {
        gateway_port = port_flag(argv[i + 1]);
      } else {
        throw std::invalid_argument("unknown flag " + flag);
      }
    }
    tetherd::test::FakeGateway gateway(address, admin_port, gateway_port);
    std::printf("serving %s and port %u\n", gateway.url().c_str(), gateway.gateway_port());
    std::fflush(stdout);
    int received = 0;
    sigwait(&signals, &received);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test-gateway: %s\n", e.what());
    return 1;
  }
}
