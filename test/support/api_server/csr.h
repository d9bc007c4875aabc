#pragma once
// CertificateSigningRequests (certificates.k8s.io/v1) as kube-apiserver
// admits them and as its kubernetes.io/kube-apiserver-client signer (in
// kube-controller-manager) answers them, reduced to what a node enrolling
// and renewing its client certificate meets:
// - create: spec.username, uid, groups and extra are the requester's,
//   whatever the body says; spec.request (a PEM CERTIFICATE REQUEST, base64
//   in JSON), spec.signerName and spec.usages are required;
//   spec.expirationSeconds, when given, at least 600;
// - PUT .../approval: the body's status.conditions replace the old ones,
//   status.certificate is kept; Approved and Denied are mutually exclusive
//   and neither can be taken back once given;
// - the signer: an Approved CSR for kubernetes.io/kube-apiserver-client
//   without a certificate gets one, from the client CA, with the request's
//   subject and key, valid for expirationSeconds (or the maximum, a year by
//   default, whichever is shorter); usages other than digital signature,
//   key encipherment and client auth (or no client auth) get a Failed
//   condition (SignerValidationFailure) instead, as does a request that
//   does not parse or whose signature is wrong.
// What it leaves out: the "approve" verb on signers (RBAC for /approval is
// the update verb on certificatesigningrequests/approval here), the other
// signers, PATCH on /approval, and garbage collection of old CSRs.

#include <chrono>
#include <functional>
#include <optional>

#include <boost/json/object.hpp>

#include "test/support/api_server/authorization.h"
#include "test/support/api_server/resources.h"
#include "test/support/api_server/status.h"
#include "test/support/test_pki.h"

namespace tetherd::test::apiserver {

inline constexpr char kKubeApiserverClientSigner[] = "kubernetes.io/kube-apiserver-client";

struct CsrSigner {
  const TestCa* ca = nullptr;  // null: no signer runs (approved CSRs stay unsigned)
  std::chrono::seconds max_duration{std::chrono::hours(24 * 365)};
  // The signer's clock (a simulation's); empty: the real one.
  std::function<std::chrono::system_clock::time_point()> now;
};

// The body of a create, admitted: the requester's identity set, the spec checked.
Expected<boost::json::object> admit_csr(const ResourceType& type, const Identity& who,
                                        boost::json::object object);

// `current` with the approval `body` applied (its metadata.resourceVersion
// kept as the write's precondition), or the 422 that refuses it.
Expected<boost::json::object> approve_csr(const ResourceType& type,
                                          const boost::json::object& current,
                                          const boost::json::object& body);

// The status the signer writes for `csr` as it stands (a certificate, or a
// Failed condition), or nothing when it has nothing to do.
std::optional<boost::json::object> sign_csr(const boost::json::object& csr,
                                            const CsrSigner& signer);

}  // namespace tetherd::test::apiserver
