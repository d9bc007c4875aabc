#pragma once
// The node's CertificateSigningRequest (issue 21), what `tetherctl enroll`
// and the renewal send: which node, when, for how long, and nothing the
// node is not (a client certificate for the Kubernetes user tetherd:NODE,
// signer kubernetes.io/kube-apiserver-client). Pure.

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

inline constexpr std::string_view kClientSignerName = "kubernetes.io/kube-apiserver-client";
// The group every node's certificate names (its O): what the RBAC binds.
inline constexpr std::string_view kNodesGroup = "tetherd:nodes";
inline constexpr char kCsrCollection[] = "/apis/certificates.k8s.io/v1/certificatesigningrequests";

// The Kubernetes user a node's certificate names (its CN): "tetherd:NODE".
std::string node_user(std::string_view node);

// "tetherd-NODE-YYYYMMDD-HHMMSS" (UTC): which node asked, and when. A
// DNS-1123 subdomain whenever `node` is one; a node name too long for it is
// cut (the name stays unique by its time, and the CSR's spec names the
// user in full).
std::string csr_name(std::string_view node, WallTime now);

// The CSR object: `csr_pem` base64 in spec.request, usages digital
// signature and client auth, spec.expirationSeconds when `life` is set (at
// least 600, the API's minimum: a shorter life is raised to it), and
// labels naming the node and tetherd as their maker.
boost::json::object csr_object(std::string_view node, std::string_view name,
                               std::string_view csr_pem, std::optional<Duration> life);

// What the admin runs, printed by enroll: "kubectl certificate approve NAME".
std::string approve_command(std::string_view name);

// kubeadm's --discovery-token-ca-cert-hash form: "sha256:" and the 64 hex
// digits of the SHA-256 of the CA certificate's SubjectPublicKeyInfo.
// Returns the digits in lower case; an error says what is wrong.
Result<std::string> parse_ca_pin(std::string_view text);

}  // namespace tetherd
