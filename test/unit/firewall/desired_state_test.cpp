#include "firewall/desired_state.h"

#include <gtest/gtest.h>

#include "firewall/none_backend.h"

namespace tetherd::firewall {
namespace {

TEST(DesiredState, RoundTrips) {
  const DesiredSources d{{"192.0.2.0/24", "2001:db8::/32"}, {6443}};
  EXPECT_EQ(encode_desired(d),
            "{\"version\":1,\"sources\":[\"192.0.2.0/24\",\"2001:db8::/32\"],\"ports\":[6443]}\n");
  auto back = decode_desired(encode_desired(d));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->sources, d.sources);
  EXPECT_EQ(back->ports, d.ports);
}

TEST(DesiredState, RefusesAnythingElse) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "not JSON: "},
      {"[1]", "not a JSON object"},
      {R"({"sources":[],"ports":[]})", "unknown version (expected 1)"},
      {R"({"version":2,"sources":[],"ports":[]})", "unknown version (expected 1)"},
      {R"({"version":1,"sources":"192.0.2.1","ports":[]})", "\"sources\" is not a list"},
      {R"({"version":1,"sources":[7],"ports":[]})", "\"sources\" holds a non-string"},
      {R"({"version":1,"sources":[]})", "\"ports\" is not a list"},
      {R"({"version":1,"sources":[],"ports":[0]})", "\"ports\" holds something that is not a port"},
      {R"({"version":1,"sources":[],"ports":[65536]})",
       "\"ports\" holds something that is not a port"},
  };
  for (const auto& [text, why] : bad) {
    auto r = decode_desired(text);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().message.substr(0, why.size()), why) << text;
  }
}

TEST(NoneBackend, ReportsWhatItWouldApplyAndTouchesNothing) {
  NoneBackend none;
  EXPECT_FALSE(none.read().value().has_value());
  Allowlist a;
  a.ports = {6443};
  a.sources.add(*parse_cidr("192.0.2.0/24"));
  ASSERT_TRUE(none.apply(a).has_value());
  auto live = none.read().value();
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->allowlist, a);
  EXPECT_TRUE(live->rules_intact);
  ASSERT_TRUE(none.remove().has_value());
  EXPECT_FALSE(none.read().value().has_value());
}

}  // namespace
}  // namespace tetherd::firewall
