// test-proxy: a stand-in for a meshed pod's linkerd2-proxy admin port, for
// scripts/demo: GET /metrics answers the identity lines of a proxy whose
// certificate expires at the time it is given (seconds since the epoch).
//
//   test-proxy [--listen ADDRESS] --port PORT --expires SECONDS
//
// Prints "serving" when it accepts connections; serves until SIGTERM or SIGINT.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "test/support/fake_proxy.h"
#include "test/support/standins/flags.h"

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  try {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;
    long long expires = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--listen") {
        address = argv[i + 1];
      } else if (flag == "--port") {
        port = tetherd::test::port_flag(argv[i + 1]);
      } else if (flag == "--expires") {
        expires = std::stoll(argv[i + 1]);
      } else {
        throw std::invalid_argument("unknown flag " + flag);
      }
    }
    if (port == 0 || expires < 0) throw std::invalid_argument("--port and --expires are needed");
    tetherd::test::FakeProxy proxy(address, port);
    proxy.serve(tetherd::test::FakeProxy::page(
        std::chrono::system_clock::time_point(std::chrono::seconds(expires))));
    std::printf("serving /metrics on %s:%u, certificate expiring at %lld\n", address.c_str(),
                proxy.port(), expires);
    std::fflush(stdout);
    int signal = 0;
    sigwait(&signals, &signal);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test-proxy: %s\n", e.what());
    return 2;
  }
}
