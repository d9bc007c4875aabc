#include "agent/adapters/linkerd_supply.h"

#include <openssl/evp.h>

#include "agent/core/kube_time.h"

namespace tetherd {

std::string trust_bundle_sha256(std::string_view pem) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(pem.data(), pem.size(), digest, &size, EVP_sha256(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 0xf];
  }
  return out;
}

Result<TrustBundle> parse_trust_bundle(std::string_view pem, WallTime now, std::string_view where) {
  const std::string who(where);
  if (pem.size() > kMaxPemValueBytes) return make_error(who + " is larger than 256 KiB");
  auto certs = x509::parse_certificates(pem, who);
  if (!certs) return certs.error();
  TrustBundle bundle;
  bool any_current = false;
  for (std::size_t i = 0; i < certs->size(); ++i) {
    CertificateInfo info = x509::describe((*certs)[i]);
    if (!info.is_ca) {
      return make_error(who + ": certificate " + std::to_string(i + 1) + " (" + info.subject +
                        ") is not a CA; a trust bundle holds roots only");
    }
    any_current = any_current || now <= info.not_after;
    bundle.described.push_back(std::move(info));
  }
  if (!any_current)
    return make_error(who + ": every certificate in it has expired; proxies would trust nothing");
  bundle.pem = std::string(pem);
  bundle.sha256 = trust_bundle_sha256(pem);
  bundle.roots = std::move(*certs);
  return bundle;
}

bool chains_to_any(std::string_view issuer_pem, const std::vector<x509::Certificate>& roots) {
  auto certs = x509::parse_certificates(issuer_pem, "issuer");
  if (!certs) return false;
  const std::vector<x509::Certificate> intermediates(certs->begin() + 1, certs->end());
  return static_cast<bool>(x509::verify_chain(certs->front(), roots, intermediates));
}

Result<SuppliedIssuer> check_supplied_issuer(IssuerSecret secret,
                                             const std::vector<x509::Certificate>& roots,
                                             WallTime now, std::string_view where) {
  const std::string who(where);
  if (secret.layout != IssuerLayout::kTls)
    return make_error(who + " is not a kubernetes.io/tls Secret (tls.crt, tls.key)");
  auto certs = x509::parse_certificates(secret.cert_pem, who + " tls.crt");
  if (!certs) return certs.error();
  auto key = x509::parse_private_key(secret.key_pem, who + " tls.key");
  if (!key) return key.error();
  const x509::Certificate& issuer = certs->front();
  SuppliedIssuer out;
  out.info = x509::describe(issuer);
  const CertificateInfo& info = out.info;
  const std::string it = who + " tls.crt (" + info.subject + ")";
  if (info.subject_cn != kIssuerCommonName)
    return make_error(it + " is not named CN=" + std::string(kIssuerCommonName));
  if (!info.is_ca) return make_error(it + " is not a CA");
  // pathlen 0, or none: cert-manager's CA issuer cannot set one
  // (cert-manager#2820), and linkerd's own cert-manager recipe has none.
  // A CA that may make further CAs is refused.
  if (info.path_len.value_or(0) != 0)
    return make_error(it + " has pathlen " + std::to_string(*info.path_len) +
                      ": an issuer must not be able to make further CAs (pathlen 0)");
  if (info.key_type != "ECDSA P-256")
    return make_error(it + " has a " + info.key_type + " key; linkerd takes ECDSA P-256 only");
  if (!x509::key_matches(issuer, *key)) return make_error(who + " tls.key is not tls.crt's key");
  if (now < info.not_before)
    return make_error(it + " is not valid before " + format_kube_time(info.not_before) +
                      " (is this node's clock behind?)");
  if (now > info.not_after) return make_error(it + " expired " + format_kube_time(info.not_after));
  const std::vector<x509::Certificate> intermediates(certs->begin() + 1, certs->end());
  for (const auto& between : intermediates) {
    const CertificateInfo b = x509::describe(between);
    if (now > b.not_after || now < b.not_before)
      return make_error(who + " tls.crt: the intermediate " + b.subject + " is not valid now");
  }
  // Through a root valid now: the chain's dates are not checked by
  // verify_chain, and linkerd's identity controller would refuse it.
  bool chained = false;
  for (std::size_t i = 0; i < roots.size() && !chained; ++i) {
    const CertificateInfo root = x509::describe(roots[i]);
    if (now > root.not_after || now < root.not_before) continue;
    if (x509::verify_chain(issuer, {roots[i]}, intermediates)) {
      out.root = i;
      chained = true;
    }
  }
  if (!chained) {
    auto chain = x509::verify_chain(issuer, roots, intermediates);
    return make_error(it + " does not chain to a root of the local trust bundle valid now" +
                      (chain ? std::string() : ": " + chain.error().message) +
                      "; proxies would refuse what it signs");
  }
  out.secret = std::move(secret);
  return out;
}

}  // namespace tetherd
