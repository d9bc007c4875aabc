#pragma once
// What a CertificateSigningRequest's status says, as the API server sends
// it (a get or a watch event): still pending, approved and waiting for the
// signer, issued (with the certificate's PEM), denied or failed (with the
// reason and message an admin or a signer gave). Pure and bounded: the
// object comes from the network.
//
// As kube-apiserver and client-go read it: a condition counts when its
// status is "True" (or absent, for objects from before status was
// required); Denied and Failed win over Approved; status.certificate is
// base64 of PEM in JSON and counts only once Approved.

#include <cstddef>
#include <string>

#include <boost/json/object.hpp>

#include "agent/core/result.h"

namespace tetherd {

inline constexpr std::size_t kMaxCsrCertificateBytes = 64 << 10;  // PEM, decoded
inline constexpr std::size_t kMaxCsrConditions = 32;
inline constexpr std::size_t kMaxCsrText = 1024;  // a reason or message kept

struct CsrStatus {
  enum class State { kPending, kApproved, kIssued, kDenied, kFailed };
  State state = State::kPending;
  std::string reason;           // Denied or Failed: the condition's reason
  std::string message;          // ... and message, bounded to kMaxCsrText
  std::string certificate_pem;  // kIssued
};

// A malformed status (a wrong type, a certificate too large or not base64,
// too many conditions) is an error naming the field.
Result<CsrStatus> decode_csr_status(const boost::json::object& csr);

}  // namespace tetherd
