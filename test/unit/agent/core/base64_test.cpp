#include "agent/core/base64.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

TEST(Base64, RoundTripsEveryPaddingLength) {
  for (const std::string& s : std::initializer_list<std::string>{"", "a", "ab", "abc", "abcd",
                                                                 std::string("\0\xff\x10", 3)}) {
    const std::string encoded = encode_base64(s);
    EXPECT_EQ(encoded.size() % 4, 0u);
    if (s.empty()) continue;  // an empty field is refused on decode, on purpose
    auto back = decode_base64("f", encoded);
    ASSERT_TRUE(back.has_value()) << back.error().message;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(encode_base64("tetherd"), "dGV0aGVyZA==");
}

TEST(Base64, IgnoresLineBreaksAndRefusesGarbageNamingTheField) {
  auto r = decode_base64("data.tls.crt", "dGV0\naGVy\r\nZA==");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "tetherd");
  for (const char* bad : {"", "abc", "ab!d", "dGV0aGVyZA=", "****"}) {
    auto e = decode_base64("data.tls.crt", bad);
    ASSERT_FALSE(e.has_value()) << bad;
    EXPECT_EQ(e.error().message, "data.tls.crt is not valid base64");
  }
}

}  // namespace
}  // namespace tetherd
