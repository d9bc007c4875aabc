#pragma once
// A node's request for its own client certificate (issue 21): a fresh
// ECDSA P-256 key that never leaves the node, and a PKCS#10 request for
// it, which the node sends as a Kubernetes CertificateSigningRequest
// (signer kubernetes.io/kube-apiserver-client). The request carries the
// subject only, CN=<the Kubernetes user> and one O= per group; the
// certificate's usages are the CSR object's spec.usages, as Kubernetes'
// signers take them from there, not from the request's extensions.

#include <string>
#include <string_view>
#include <vector>

#include "agent/adapters/x509.h"
#include "agent/core/result.h"

namespace tetherd {

struct ClientRequest {
  x509::PrivateKey key;  // the new key
  std::string csr_pem;   // "CERTIFICATE REQUEST", signed with `key`
};

// Refuses an empty common name or one (or a group) over 64 bytes, X.509's
// upper bound for CN and O.
Result<ClientRequest> make_client_request(std::string_view common_name,
                                          const std::vector<std::string>& groups = {});

}  // namespace tetherd
