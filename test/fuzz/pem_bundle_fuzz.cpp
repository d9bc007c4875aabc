// Fuzz target: the bytes of linkerd's trust bundle, issuer certificate and
// key (a ConfigMap and a Secret anyone with write access can fill) through
// the PEM parsers and everything done with what they accept. Refused or
// parsed, never a crash; what is parsed writes back to PEM that parses to
// the same certificate; errors and names are printable text (they end up in
// a log line and a condition); OpenSSL's error queue is always left empty.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <openssl/err.h>

#include "agent/adapters/x509.h"

namespace {

using namespace tetherd;

bool printable(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

void check_clean() {
  if (ERR_peek_error() != 0) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  const auto certs = x509::parse_certificates(text, "ca-bundle.crt");
  check_clean();
  if (!certs) {
    if (!printable(certs.error().message)) std::abort();
  } else {
    if (certs->empty() || certs->size() > x509::kMaxBundleCertificates) std::abort();
    for (const x509::Certificate& cert : *certs) {
      const CertificateInfo info = x509::describe(cert);
      if (!printable(info.subject) || !printable(info.issuer)) std::abort();
      const auto again = x509::parse_certificates(x509::to_pem(cert), "again");
      if (!again || again->size() != 1 || x509::describe((*again)[0]) != info) std::abort();
    }
    const auto chained = x509::verify_chain(certs->front(), {certs->back()}, *certs);
    if (!chained && !printable(chained.error().message)) std::abort();
    check_clean();
  }

  const auto key = x509::parse_private_key(text, "tls.key");
  check_clean();
  if (!key) {
    if (!printable(key.error().message)) std::abort();
    return 0;
  }
  const std::string type = x509::key_type(*key);
  if (certs) (void)x509::key_matches(certs->front(), *key);
  const auto again = x509::parse_private_key(x509::to_pem(*key), "again");
  if (!again || x509::key_type(*again) != type) std::abort();
  check_clean();
  return 0;
}
