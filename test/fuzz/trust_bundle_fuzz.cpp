// Fuzz target: a trust bundle and an issuer as the cloud supplies them
// (a ConfigMap key and a Secret that anyone who can write them in the
// node's namespace fills) through the checks that decide whether they are
// written into the local k3s. Refused or taken, never a crash; what is
// taken is what the checks promise (CA certificates only, a SHA-256 of the
// text, an issuer named identity.linkerd.cluster.local with pathlen 0);
// errors are printable text; OpenSSL's error queue is left empty.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <openssl/err.h>

#include "agent/adapters/linkerd_supply.h"

namespace {

using namespace tetherd;

bool printable(std::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // A fixed instant: the corpus's certificates are judged the same on
  // every run.
  const WallTime now{std::chrono::seconds(1'800'000'000)};

  const auto bundle = parse_trust_bundle(text, now, "bundle");
  if (ERR_peek_error() != 0) std::abort();
  std::vector<x509::Certificate> roots;
  if (!bundle) {
    if (!printable(bundle.error().message)) std::abort();
  } else {
    if (bundle->roots.empty() || bundle->sha256.size() != 64 || bundle->pem != text) std::abort();
    if (bundle->sha256 != trust_bundle_sha256(text)) std::abort();
    for (const auto& info : bundle->described)
      if (!info.is_ca) std::abort();
    roots = bundle->roots;
  }

  // The same bytes as an issuer's certificate and key, under the roots.
  IssuerSecret secret;
  secret.cert_pem = std::string(text);
  secret.key_pem = std::string(text);
  const auto issuer = check_supplied_issuer(secret, roots, now, "issuer");
  if (ERR_peek_error() != 0) std::abort();
  if (!issuer) {
    if (!printable(issuer.error().message)) std::abort();
  } else if (issuer->info.subject_cn != kIssuerCommonName ||
             issuer->info.path_len.value_or(0) != 0 || issuer->root >= roots.size()) {
    std::abort();
  }
  return 0;
}
