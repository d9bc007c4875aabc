#include "agent/adapters/csr.h"

#include <memory>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "agent/adapters/openssl_handles.h"

namespace tetherd {
namespace {

using openssl::Deleter;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;

// X.509's ub-common-name and ub-organization-name.
constexpr std::size_t kMaxNameBytes = 64;

Result<void> add_entry(X509_NAME* name, const char* field, std::string_view value) {
  if (value.empty() || value.size() > kMaxNameBytes)
    return make_error(std::string(field) + "=" + std::string(value) + ": must be 1 to " +
                      std::to_string(kMaxNameBytes) + " bytes");
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1)
    return make_error(std::string("cannot set ") + field + ": " + openssl::take_error_reason());
  return {};
}

}  // namespace

Result<ClientRequest> make_client_request(std::string_view common_name,
                                          const std::vector<std::string>& groups) {
  openssl::ErrorQueueScope errors;
  x509::PrivateKey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (key.native() == nullptr)
    return make_error("cannot make a P-256 key: " + openssl::take_error_reason());
  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1)
    return make_error("cannot make a certificate request: " + openssl::take_error_reason());
  X509_NAME* subject = X509_REQ_get_subject_name(req.get());
  for (const std::string& group : groups) {
    if (auto r = add_entry(subject, "O", group); !r) return r.error();
  }
  if (auto r = add_entry(subject, "CN", common_name); !r) return r.error();
  if (X509_REQ_set_pubkey(req.get(), key.native()) != 1 ||
      X509_REQ_sign(req.get(), key.native(), EVP_sha256()) <= 0)
    return make_error("cannot sign the certificate request: " + openssl::take_error_reason());
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1)
    return make_error("cannot write the certificate request: " + openssl::take_error_reason());
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return ClientRequest{std::move(key), std::string(data, static_cast<std::size_t>(size))};
}

}  // namespace tetherd
