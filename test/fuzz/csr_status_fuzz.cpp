// Fuzz target: a CertificateSigningRequest from the API server, through the
// status decoder. Refused or decoded, never a crash; what is kept stays
// within its bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json/parse.hpp>

#include "agent/core/csr_status.h"
#include "agent/kube/api_error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tetherd;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  boost::system::error_code ec;
  const boost::json::value value =
      boost::json::parse(text, ec, boost::json::storage_ptr(), kube::api_json_options());
  if (ec || !value.is_object()) return 0;
  const auto status = decode_csr_status(value.get_object());
  if (!status) return 0;
  if (status->certificate_pem.size() > kMaxCsrCertificateBytes) std::abort();
  if (status->reason.size() > kMaxCsrText || status->message.size() > kMaxCsrText) std::abort();
  if ((status->state == CsrStatus::State::kIssued) == status->certificate_pem.empty()) std::abort();
  return 0;
}
