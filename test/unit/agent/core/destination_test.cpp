#include "agent/core/destination.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

TEST(Destination, HostAndPortAreParsedAndCompared) {
  auto d = parse_destination("127.0.0.1:6443");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->host, "127.0.0.1");
  EXPECT_EQ(d->port, 6443);
  EXPECT_EQ(*parse_destination("[::1]:6443"), (Destination{"::1", 6443}));
  EXPECT_EQ(to_string(*parse_destination("[::1]:6443")), "[::1]:6443");
  EXPECT_EQ(*parse_destination("API.Example:443"), (Destination{"api.example", 443}));
  for (const char* bad : {"", "127.0.0.1", ":6443", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:64x", "::1:6443", "[::1:6443", "[]:1"})
    EXPECT_FALSE(parse_destination(bad)) << bad;
  EXPECT_NE(parse_destination("::1:6443").error().message.find("[::1]:6443"), std::string::npos);
}

}  // namespace
}  // namespace tetherd
