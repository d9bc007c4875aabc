// Fuzz target: linkerd's objects as the local k3s sends them (the issuer
// Secret, the trust roots ConfigMap, an Event) and the times in them.
// Decoded or refused, never a crash; a decoded Secret written back with a
// new issuer decodes again to exactly that issuer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>

#include "agent/core/kube_time.h"
#include "agent/core/linkerd_objects.h"
#include "agent/kube/api_error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tetherd;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto t = parse_kube_time(text)) {
    // What parses formats back to a time that parses to the same instant
    // (up to the microseconds MicroTime keeps).
    auto again = parse_kube_time(format_kube_micro_time(*t));
    if (!again || std::chrono::abs(*again - *t) >= std::chrono::microseconds(1)) std::abort();
  }

  boost::system::error_code ec;
  const boost::json::value value =
      boost::json::parse(text, ec, boost::json::storage_ptr(), kube::api_json_options());
  if (ec || !value.is_object()) return 0;
  const auto& object = value.get_object();
  (void)decode_trust_roots(object);
  (void)issuer_updated_since(object, WallTime{});
  (void)restarted_since(object, WallTime{}, WallTime::max());
  auto secret = decode_issuer_secret(object);
  if (!secret) return 0;
  if (secret->cert_pem.size() > kMaxPemValueBytes || secret->key_pem.size() > kMaxPemValueBytes)
    std::abort();
  auto updated =
      decode_issuer_secret(issuer_secret_update(object, secret->layout, "CERT", "KEY", "ANCHOR"));
  if (!updated || updated->cert_pem != "CERT" || updated->key_pem != "KEY" ||
      updated->layout != secret->layout || updated->resource_version != secret->resource_version)
    std::abort();
  return 0;
}
