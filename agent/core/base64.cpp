#include "agent/core/base64.h"

#include <cctype>

#include <openssl/evp.h>

namespace tetherd {

Result<std::string> decode_base64(std::string_view field, std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c))) clean += c;
  if (clean.empty() || clean.size() % 4 != 0)
    return make_error(std::string(field) + " is not valid base64");
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  if (n < 0) return make_error(std::string(field) + " is not valid base64");
  // EVP_DecodeBlock counts the padding as decoded zero bytes.
  std::size_t len = static_cast<std::size_t>(n);
  if (clean.ends_with("=="))
    len -= 2;
  else if (clean.ends_with("="))
    len -= 1;
  out.resize(len);
  return Result<std::string>(boost::system::in_place_value, std::move(out));
}

std::string encode_base64(std::string_view bytes) {
  std::string out((bytes.size() + 2) / 3 * 4 + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace tetherd
