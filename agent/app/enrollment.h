#pragma once
// `tetherctl enroll` (issue 21): the node gets its own client certificate
// from the cloud's API server, with a bootstrap token an admin handed over
// and the cloud's CA given as a file or pinned by the SHA-256 of its public
// key (kubeadm's --discovery-token-ca-cert-hash).
//
// 1. Already enrolled (a kubeconfig for this server and CA, a certificate
//    for this node in force, its key matching): nothing is written, no
//    server is asked; the control plane is switched on if it was not.
// 2. The CA: from --ca-file, or found by the pin among what the server
//    shows without being trusted (its TLS chain, kube-public/cluster-info
//    read anonymously). The token is sent only over a connection verified
//    against that CA, server name included.
// 3. A P-256 key made on the node (node.key.next, 0600) and a CSR
//    (tetherd-NODE-YYYYMMDD-HHMMSS, signer kube-apiserver-client, CN
//    tetherd:NODE, O tetherd:nodes) whose name is kept (node.csr.next), so
//    that an enroll interrupted or timed out resumes the same request.
// 4. Once approved and issued, and checked (the CN, the key, the life), the
//    key, the certificate and the kubeconfig are written atomically, and
//    controlPlane.kubeconfig is added to tetherd.yaml when missing: a
//    running tetherd takes both without a restart.

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "agent/app/node_credentials.h"
#include "agent/config/config.h"
#include "agent/core/clock.h"

namespace tetherd {

struct EnrollOptions {
  std::string config_path;                   // tetherd.yaml: node.name, controlPlane.kubeconfig
  std::string server;                        // https://host[:port] of the cloud's API server
  std::string token_file;                    // the bootstrap token, readable by its owner alone
  std::string ca_file;                       // the cloud's CA (PEM), or
  std::string ca_cert_hash;                  // "sha256:<64 hex>" of its public key
  std::optional<Duration> expiration;        // the life asked for (spec.expirationSeconds)
  Duration wait = std::chrono::minutes(15);  // for an admin's approval
  Duration poll = std::chrono::seconds(1);
  bool force = false;  // replace a kubeconfig enroll did not write
};

// The exit codes, as tetherctl returns them and the README lists them.
enum class EnrollExit : int {
  kEnrolled = 0,         // enrolled now, or was already
  kError = 2,            // the server unreachable, a file unwritable, ...
  kUntrustedServer = 3,  // the CA does not match the pin, or the server does not verify
  kTokenRefused = 4,     // 401 (expired or not this cluster's) or 403 (not allowed)
  kRefused = 5,          // the CSR denied, failed or deleted, or a wrong certificate issued
  kTimedOut = 6,         // not approved in time; run again to keep waiting
  kBadNodeName = 7,      // node.name (or the host name) is not a DNS-1123 subdomain
  kUsage = 64,           // a bad flag, token file or CA file; a kubeconfig not enroll's (--force)
  kConfig = 78,
};

struct EnrollOutcome {
  EnrollExit exit = EnrollExit::kError;
  std::string message;  // the last line: what happened, or what is wrong and what to do
};

// `say` gets the progress lines (the CSR's name, the approve command).
boost::asio::awaitable<EnrollOutcome> enroll(boost::asio::any_io_executor executor,
                                             const EnrollOptions& options, const Config& config,
                                             const Clock& clock,
                                             std::function<void(const std::string&)> say);

}  // namespace tetherd
