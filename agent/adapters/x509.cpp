#include "agent/adapters/x509.h"

#include <algorithm>
#include <ctime>
#include <optional>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "agent/adapters/openssl_handles.h"
#include "agent/config/small_file.h"

namespace tetherd::x509 {

void Certificate::Free::operator()(X509* cert) const {
  X509_free(cert);
}

Certificate::Certificate(const Certificate& other) : cert_(other.cert_.get()) {
  if (cert_) X509_up_ref(cert_.get());
}

Certificate& Certificate::operator=(const Certificate& other) {
  return *this = Certificate(other);
}

void PrivateKey::Free::operator()(EVP_PKEY* key) const {
  EVP_PKEY_free(key);
}

PrivateKey::PrivateKey(const PrivateKey& other) : key_(other.key_.get()) {
  if (key_) EVP_PKEY_up_ref(key_.get());
}

PrivateKey& PrivateKey::operator=(const PrivateKey& other) {
  return *this = PrivateKey(other);
}

namespace {

using openssl::Deleter;
using openssl::ErrorQueueScope;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using P8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO_free>>;
struct StackFree {  // sk_X509_free is a macro
  // The stack borrows its certificates: the caller's Certificates own them.
  void operator()(STACK_OF(X509) * stack) const { sk_X509_free(stack); }
};
using StackPtr = std::unique_ptr<STACK_OF(X509), StackFree>;

std::string openssl_reason() {
  std::string reason = openssl::take_error_reason();
  return reason.empty() ? "unknown OpenSSL error" : reason;
}

// The bytes came from the network: quote a little of them, printable only.
std::string excerpt(std::string_view text) {
  std::string out;
  for (char c : text.substr(0, 32)) {
    if (c == '\n' || c == '\r') break;
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return size > 0 ? std::string(data, static_cast<std::size_t>(size)) : std::string();
}

// The DER inside a PEM block; a key's, so overwritten before its memory goes
// back to the heap. A legacy encrypted key ("Proc-Type: 4,ENCRYPTED")
// announces itself in the block's headers.
struct Der {
  std::string bytes;
  bool encrypted = false;
  ~Der() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  const unsigned char* data() const { return reinterpret_cast<const unsigned char*>(bytes.data()); }
  long size() const { return static_cast<long>(bytes.size()); }
};

struct PemBlock {
  std::string_view label;
  std::string_view text;  // from "-----BEGIN" to the end of "-----END ...-----"
};

struct BlockKind {
  std::string_view one;   // "a certificate"
  std::string_view many;  // "certificates"
  std::size_t max;
  // Errors quote the offending text, except in a key file: a key pasted
  // without its BEGIN line starts with the private scalar itself, and the
  // error goes to the journal and to the cloud's status.
  bool quote = true;
};

Error not_a(const std::string& who, std::size_t number, const BlockKind& kind,
            const std::string& why) {
  return make_error(who + ": block " + std::to_string(number) + " is not " + std::string(kind.one) +
                    ": " + why);
}

// Splits a PEM text into its blocks. OpenSSL's reader skips any text
// between blocks silently; we refuse it, because a bundle with stray text is
// one that someone edited by hand, and what they meant is not ours to guess.
Result<std::vector<PemBlock>> split_pem(std::string_view pem, const std::string& who,
                                        const BlockKind& kind) {
  constexpr std::string_view kSpace = " \t\r\n";
  constexpr std::string_view kBegin = "-----BEGIN ";
  constexpr std::string_view kDashes = "-----";
  std::vector<PemBlock> blocks;
  std::size_t pos = 0;
  while ((pos = pem.find_first_not_of(kSpace, pos)) != std::string_view::npos) {
    const std::size_t number = blocks.size() + 1;
    if (blocks.size() == kind.max)
      return make_error(who + ": more than " + std::to_string(kind.max) + " " +
                        std::string(kind.many));
    const std::string_view rest = pem.substr(pos);
    const std::string quoted = kind.quote ? "\"" + excerpt(rest) + "\""
                                          : std::string("(not quoted: it may be key material)");
    if (!rest.starts_with(kBegin))
      return not_a(who, number, kind, "text outside a PEM block: " + quoted);
    const std::size_t line_end = std::min(rest.find('\n'), rest.size());
    const std::size_t label_end = rest.find(kDashes, kBegin.size());
    if (label_end == std::string_view::npos || label_end + kDashes.size() > line_end)
      return not_a(who, number, kind, "malformed BEGIN line " + quoted);
    const std::string_view label = rest.substr(kBegin.size(), label_end - kBegin.size());
    const std::string end_line = "-----END " + std::string(label) + "-----";
    const std::size_t end = rest.find(end_line, label_end);
    const std::size_t next_begin = rest.find(kBegin, label_end);
    if (end == std::string_view::npos || next_begin < end)
      return not_a(who, number, kind, "no \"" + excerpt(end_line) + "\" line (truncated?)");
    blocks.push_back({label, rest.substr(0, end + end_line.size())});
    pos += end + end_line.size();
  }
  return blocks;
}

Result<void> decode_block(const PemBlock& block, Der& der) {
  BioPtr bio(BIO_new_mem_buf(block.text.data(), static_cast<int>(block.text.size())));
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long size = 0;
  if (!bio || PEM_read_bio(bio.get(), &name, &header, &data, &size) != 1)
    return make_error(openssl_reason());
  der.encrypted =
      header != nullptr && std::string_view(header).find("ENCRYPTED") != std::string::npos;
  der.bytes.assign(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size));
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_clear_free(data, static_cast<std::size_t>(size));
  return {};
}

std::optional<WallTime> wall_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
  const std::chrono::seconds since_epoch(timegm(&tm));
  using std::chrono::duration_cast;
  if (since_epoch >= duration_cast<std::chrono::seconds>(WallTime::max().time_since_epoch()))
    return WallTime::max();
  if (since_epoch <= duration_cast<std::chrono::seconds>(WallTime::min().time_since_epoch()))
    return WallTime::min();
  return WallTime(since_epoch);
}

std::string name_text(const X509_NAME* name) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return "";
  return bio_text(bio.get());
}

// The last CN is the most specific one, as RFC 2253 puts it first.
std::string common_name(const X509_NAME* name) {
  int index = -1;
  for (int i = -1; (i = X509_NAME_get_index_by_NID(name, NID_commonName, i)) >= 0;)
    index = i;
  if (index < 0) return "";
  unsigned char* utf8 = nullptr;
  const int size =
      ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index)));
  if (size < 0) return "";
  std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(size));
  OPENSSL_free(utf8);
  return out;
}

std::string lower_hex(const unsigned char* bytes, std::size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < size; ++i) {
    out += kDigits[bytes[i] >> 4];
    out += kDigits[bytes[i] & 0xf];
  }
  return out;
}

// OpenSSL keeps an INTEGER as its magnitude, the sign in the type.
std::string serial_text(const ASN1_INTEGER* serial) {
  const std::string sign = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER ? "-" : "";
  const auto size = static_cast<std::size_t>(ASN1_STRING_length(serial));
  return size == 0 ? "0" : sign + lower_hex(ASN1_STRING_get0_data(serial), size);
}

std::string key_type_of(const EVP_PKEY* key) {
  if (key == nullptr) return "none";
  const int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_EC) {
    char group[80];
    std::size_t size = 0;
    if (EVP_PKEY_get_group_name(key, group, sizeof group, &size) != 1) return "ECDSA";
    const char* nist = EC_curve_nid2nist(OBJ_sn2nid(group));  // "prime256v1" is "P-256"
    return "ECDSA " + std::string(nist != nullptr ? nist : group);
  }
  if (id == EVP_PKEY_RSA) return "RSA " + std::to_string(EVP_PKEY_get_bits(key));
  if (id == EVP_PKEY_RSA_PSS) return "RSA-PSS " + std::to_string(EVP_PKEY_get_bits(key));
  if (id == EVP_PKEY_ED25519) return "Ed25519";
  if (id == EVP_PKEY_ED448) return "Ed448";
  const char* name = EVP_PKEY_get0_type_name(key);
  return name != nullptr ? name : "unknown";
}

}  // namespace

Result<std::vector<Certificate>> parse_certificates(std::string_view pem,
                                                    std::string_view subject) {
  ErrorQueueScope queue;
  const std::string who(subject);
  if (pem.size() > kMaxBundleBytes)
    return make_error(who + " is larger than 1 MiB; is this the right object?");
  const BlockKind kind{"a certificate", "certificates", kMaxBundleCertificates};
  auto blocks = split_pem(pem, who, kind);
  if (!blocks) return blocks.error();
  if (blocks->empty()) return make_error(who + " holds no certificate");

  std::vector<Certificate> certs;
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    const PemBlock& block = (*blocks)[i];
    if (block.label != "CERTIFICATE")
      return not_a(who, i + 1, kind, "its PEM label is \"" + excerpt(block.label) + "\"");
    Der der;
    if (auto decoded = decode_block(block, der); !decoded)
      return not_a(who, i + 1, kind, decoded.error().message);
    const unsigned char* p = der.data();
    X509* raw = d2i_X509(nullptr, &p, der.size());
    if (raw == nullptr) return not_a(who, i + 1, kind, openssl_reason());
    Certificate cert(raw);
    if (p != der.data() + der.size())
      return not_a(who, i + 1, kind, "bytes after the end of the certificate");
    // Malformed dates would leave describe() nothing to judge expiry by.
    if (!wall_time(X509_get0_notBefore(raw)) || !wall_time(X509_get0_notAfter(raw)))
      return not_a(who, i + 1, kind, "its validity dates are malformed");
    certs.push_back(std::move(cert));
  }
  return certs;
}

Result<PrivateKey> parse_private_key(std::string_view pem, std::string_view subject) {
  ErrorQueueScope queue;
  const std::string who(subject);
  if (pem.size() > kMaxKeyBytes)
    return make_error(who + " is larger than 64 KiB; is this the right file?");
  const BlockKind kind{"a private key", "PEM blocks", 4, /*quote=*/false};
  auto blocks = split_pem(pem, who, kind);
  if (!blocks) return blocks.error();
  const std::string encrypted_error =
      who +
      " is encrypted; tetherd needs the key unencrypted (decrypt it with "
      "`openssl pkey -in <file> -out <new file>`, mode 0600)";

  const PemBlock* key_block = nullptr;
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    const PemBlock& block = (*blocks)[i];
    if (block.label == "EC PARAMETERS") continue;  // `openssl ecparam -genkey` writes it first
    if (block.label == "ENCRYPTED PRIVATE KEY") return make_error(encrypted_error);
    if (block.label != "PRIVATE KEY" && block.label != "EC PRIVATE KEY" &&
        block.label != "RSA PRIVATE KEY")
      return not_a(who, i + 1, kind, "its PEM label is \"" + excerpt(block.label) + "\"");
    if (key_block != nullptr)
      return make_error(who + ": block " + std::to_string(i + 1) +
                        " is a second private key; expected one");
    key_block = &block;
  }
  if (key_block == nullptr) return make_error(who + " holds no private key");

  Der der;
  if (auto decoded = decode_block(*key_block, der); !decoded)
    return make_error(who + ": not a private key: " + decoded.error().message);
  if (der.encrypted) return make_error(encrypted_error);
  const unsigned char* p = der.data();
  EVP_PKEY* raw = nullptr;
  if (key_block->label == "PRIVATE KEY") {
    P8Ptr info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, der.size()));
    if (info) raw = EVP_PKCS82PKEY(info.get());
  } else {
    const int type = key_block->label == "EC PRIVATE KEY" ? EVP_PKEY_EC : EVP_PKEY_RSA;
    raw = d2i_PrivateKey(type, nullptr, &p, der.size());
  }
  if (raw == nullptr)
    return make_error(who + ": not a valid " + std::string(key_block->label) + ": " +
                      openssl_reason());
  return PrivateKey(raw);
}

CertificateInfo describe(const Certificate& cert) {
  ErrorQueueScope queue;
  X509* x = cert.native();
  CertificateInfo info;
  info.subject = name_text(X509_get_subject_name(x));
  info.subject_cn = common_name(X509_get_subject_name(x));
  info.issuer = name_text(X509_get_issuer_name(x));
  info.issuer_cn = common_name(X509_get_issuer_name(x));
  info.not_before = wall_time(X509_get0_notBefore(x)).value_or(WallTime{});
  info.not_after = wall_time(X509_get0_notAfter(x)).value_or(WallTime{});
  info.key_type = key_type_of(X509_get0_pubkey(x));
  info.is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
  info.client_auth = (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) == 0 ||
                     (X509_get_extended_key_usage(x) & XKU_SSL_CLIENT) != 0;
  if (const long path_len = X509_get_pathlen(x); info.is_ca && path_len >= 0)
    info.path_len = static_cast<int>(path_len);
  info.serial_hex = serial_text(X509_get0_serialNumber(x));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(x, EVP_sha256(), digest, &size) == 1)
    info.sha256_fingerprint = lower_hex(digest, size);
  unsigned char* spki = nullptr;
  const int spki_size = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
  if (spki_size > 0 && EVP_Digest(spki, static_cast<std::size_t>(spki_size), digest, &size,
                                  EVP_sha256(), nullptr) == 1)
    info.spki_sha256 = lower_hex(digest, size);
  OPENSSL_free(spki);
  return info;
}

bool key_matches(const Certificate& cert, const PrivateKey& key) {
  ErrorQueueScope queue;
  const EVP_PKEY* public_key = X509_get0_pubkey(cert.native());
  return public_key != nullptr && key.native() != nullptr &&
         EVP_PKEY_eq(public_key, key.native()) == 1;
}

std::string public_key_sha256(const PrivateKey& key) {
  ErrorQueueScope queue;
  if (key.native() == nullptr) return {};
  unsigned char* spki = nullptr;
  const int spki_size = i2d_PUBKEY(key.native(), &spki);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  std::string out;
  if (spki_size > 0 && EVP_Digest(spki, static_cast<std::size_t>(spki_size), digest, &size,
                                  EVP_sha256(), nullptr) == 1)
    out = lower_hex(digest, size);
  OPENSSL_free(spki);
  return out;
}

bool self_signed(const Certificate& cert) {
  ErrorQueueScope queue;
  X509* c = cert.native();
  EVP_PKEY* own = X509_get0_pubkey(c);
  return own != nullptr && X509_check_issued(c, c) == X509_V_OK && X509_verify(c, own) == 1;
}

std::string key_type(const PrivateKey& key) {
  ErrorQueueScope queue;
  return key_type_of(key.native());
}

Result<void> verify_chain(const Certificate& leaf, const std::vector<Certificate>& anchors,
                          const std::vector<Certificate>& intermediates) {
  ErrorQueueScope queue;
  if (anchors.empty()) return make_error("no trust anchor to verify against");
  const auto failed = [] { return make_error("verifying a chain: " + openssl_reason()); };
  StorePtr store(X509_STORE_new());
  StackPtr untrusted(sk_X509_new_null());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return failed();
  for (const Certificate& anchor : anchors)
    if (X509_STORE_add_cert(store.get(), anchor.native()) != 1) return failed();
  for (const Certificate& cert : intermediates)
    if (sk_X509_push(untrusted.get(), cert.native()) <= 0) return failed();
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.native(), untrusted.get()) != 1)
    return failed();
  // Time is the policy's to judge, against the wall clock; see the header.
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_X509_STRICT | X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(ctx.get()) == 1) return {};
  const int error = X509_STORE_CTX_get_error(ctx.get());
  const X509* at = X509_STORE_CTX_get_current_cert(ctx.get());
  const std::string where = at != nullptr ? name_text(X509_get_subject_name(at)) + ": " : "";
  return make_error(where + X509_verify_cert_error_string(error));
}

std::string to_pem(const Certificate& cert) {
  ErrorQueueScope queue;
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert.native()) != 1) return "";
  return bio_text(bio.get());
}

std::string to_pem(const PrivateKey& key) {
  ErrorQueueScope queue;
  // A secure-memory BIO wipes its buffer when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key.native(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return "";
  return bio_text(bio.get());
}

Result<PrivateKey> load_private_key_file(const std::string& path, std::string_view what) {
  if (auto shared = refuse_shared_key(path, what); !shared) return shared.error();
  auto text = read_small_file(path, kMaxKeyBytes, path);
  if (!text) return text.error();
  auto key = parse_private_key(*text, path);
  OPENSSL_cleanse(text->data(), text->size());
  return key;
}

}  // namespace tetherd::x509
