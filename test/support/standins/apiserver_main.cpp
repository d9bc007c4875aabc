// test-apiserver: the test Kubernetes API server (test/support/api_server)
// as a program, for scripts/demo: a stand-in for the cloud's API server and
// for the local k3s. mTLS with the given files; users in group
// system:masters may do everything, others what the --rbac manifests grant
// and what RBAC objects applied through the API grant (`kubectl apply -f
// packaging/kubernetes/` works against it: discovery, Tables, TokenRequest
// and SelfSubjectAccessReview are served; see api_server.h).
//
//   test-apiserver --listen ADDRESS --port PORT --cert FILE --key FILE
//                  --client-ca FILE [--rbac FILE]... [--client-ca-key FILE]
//                  [--token USER=FILE]... [--anonymous-auth true|false]
//                  [--cluster-signing-duration SECONDS]
//
// --client-ca-key turns the kube-apiserver-client signer on (approved
// CertificateSigningRequests are signed by the client CA, as
// kube-controller-manager's --cluster-signing-*-file do); --token: the
// token in FILE authenticates as USER (a ServiceAccount's:
// system:serviceaccount:NS:NAME); --anonymous-auth as kube-apiserver's;
// --cluster-signing-duration as kube-controller-manager's: the longest
// life the signer gives (the demo's short-lived certificates).
//
// Prints "serving https://ADDRESS:PORT" when it accepts connections, and
// serves until SIGTERM or SIGINT. SIGUSR1: the server process goes down
// (connections reset, new ones refused) while its store lives on, as etcd
// does behind a real one; SIGUSR2: it comes back on the same port.

#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "test/support/api_server/api_server.h"
#include "test/support/rbac_manifest.h"
#include "test/support/standins/flags.h"

namespace {

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "test-apiserver: %s\nusage: test-apiserver --listen ADDRESS --port PORT --cert FILE "
               "--key FILE --client-ca FILE [--rbac FILE]... [--client-ca-key FILE] "
               "[--token USER=FILE]... [--anonymous-auth true|false] "
               "[--cluster-signing-duration SECONDS]\n",
               why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  using tetherd::test::ApiServer;
  tetherd::test::ApiServerOptions options;
  std::string cert, key, client_ca;
  std::vector<std::string> rbac;
  std::string client_ca_key;
  std::vector<std::pair<std::string, std::string>> tokens;  // user, file
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(("no value after " + flag).c_str());
    const std::string value = argv[++i];
    if (flag == "--listen") {
      options.listen_address = value;
    } else if (flag == "--port") {
      try {
        options.listen_port = tetherd::test::port_flag(value);
      } catch (const std::exception& e) {
        usage(e.what());
      }
    } else if (flag == "--cert") {
      cert = value;
    } else if (flag == "--key") {
      key = value;
    } else if (flag == "--client-ca") {
      client_ca = value;
    } else if (flag == "--rbac") {
      rbac.push_back(value);
    } else if (flag == "--client-ca-key") {
      client_ca_key = value;
    } else if (flag == "--token") {
      const auto at = value.find('=');
      if (at == std::string::npos) usage("--token wants USER=FILE");
      tokens.emplace_back(value.substr(0, at), value.substr(at + 1));
    } else if (flag == "--cluster-signing-duration") {
      try {
        const long seconds = std::stol(value);
        if (seconds < 1) throw std::invalid_argument("not positive");
        options.csr_max_duration = std::chrono::seconds(seconds);
      } catch (const std::exception&) {
        usage("--cluster-signing-duration wants a number of seconds");
      }
    } else if (flag == "--anonymous-auth") {
      if (value != "true" && value != "false") usage("--anonymous-auth wants true or false");
      options.anonymous = value == "true";
    } else {
      usage(("unknown flag " + flag).c_str());
    }
  }
  if (cert.empty() || key.empty() || client_ca.empty())
    usage("--cert, --key and --client-ca are needed");

  // Signals are taken by sigwait below; the server's thread, made after
  // this, inherits the mask and never sees them.
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2})
    sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    using tetherd::test::file_flag;
    options.identity = {file_flag(cert), file_flag(key)};
    options.client_ca_pem = file_flag(client_ca);
    if (!client_ca_key.empty())
      options.csr_signer =
          tetherd::test::TestCa::from_pem(options.client_ca_pem, file_flag(client_ca_key));
    for (const auto& [user, file] : tokens) {
      std::string token = file_flag(file);
      while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
        token.pop_back();
      options.tokens[token] = user;
    }
    ApiServer server(options);
    for (const auto& path : rbac)
      for (auto& rule : tetherd::test::rules_from_rbac_manifest(file_flag(path)))
        server.allow(std::move(rule));
    std::printf("serving %s\n", server.url().c_str());
    std::fflush(stdout);
    bool down = false;  // a second SIGUSR1 or SIGUSR2 in a row changes nothing
    for (;;) {
      int received = 0;
      sigwait(&signals, &received);
      if (received == SIGUSR1 && !down) {
        server.go_down();
        down = true;
        std::printf("down: connections reset, new ones refused\n");
      } else if (received == SIGUSR2 && down) {
        server.come_back();
        down = false;
        std::printf("serving %s again\n", server.url().c_str());
      } else if (received == SIGTERM || received == SIGINT) {
        return 0;
      }
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test-apiserver: %s\n", e.what());
    return 1;
  }
}
