#include "agent/core/prometheus_text.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

std::string value_text(SampleValue v) {
  return v.text();
}

TEST(MetricsPageTest, FamiliesThenSamplesInExactText) {
  MetricsPage page;
  page.family("tetherd_condition", MetricType::kGauge, "Status of each EdgeNode condition.");
  page.sample("tetherd_condition", {{"type", "Ready"}, {"status", "true"}}, 1);
  page.sample("tetherd_condition", {{"type", "Ready"}, {"status", "false"}}, 0);
  page.family("tetherd_controlplane_reconnects_total", MetricType::kCounter,
              "Connections to the control plane redialled.");
  page.sample("tetherd_controlplane_reconnects_total", {}, 3);
  page.family("tetherd_build_info", MetricType::kUntyped, "");
  page.sample("tetherd_build_info", {{"version", "0.1.0"}}, 1);

  EXPECT_EQ(page.str(),
            "# HELP tetherd_condition Status of each EdgeNode condition.\n"
            "# TYPE tetherd_condition gauge\n"
            "tetherd_condition{type=\"Ready\",status=\"true\"} 1\n"
            "tetherd_condition{type=\"Ready\",status=\"false\"} 0\n"
            "# HELP tetherd_controlplane_reconnects_total Connections to the control plane "
            "redialled.\n"
            "# TYPE tetherd_controlplane_reconnects_total counter\n"
            "tetherd_controlplane_reconnects_total 3\n"
            "# TYPE tetherd_build_info untyped\n"
            "tetherd_build_info{version=\"0.1.0\"} 1\n");
  EXPECT_TRUE(page.problems().empty());
}

TEST(MetricsPageTest, AFamilyWithoutSamplesIsOnlyItsHeader) {
  MetricsPage page;
  EXPECT_TRUE(page.family("tetherd_certificate_expiry_timestamp_seconds", MetricType::kGauge,
                          "When each certificate expires."));
  EXPECT_EQ(page.str(),
            "# HELP tetherd_certificate_expiry_timestamp_seconds When each certificate expires.\n"
            "# TYPE tetherd_certificate_expiry_timestamp_seconds gauge\n");
}

TEST(MetricsPageTest, LabelsFromASpan) {
  const std::string name = "linkerd-identity-issuer";
  const std::vector<Label> labels{{"name", name}};
  MetricsPage page;
  page.family("tetherd_certificate_expiry_timestamp_seconds", MetricType::kGauge, "h");
  EXPECT_TRUE(page.sample("tetherd_certificate_expiry_timestamp_seconds", labels, 1700000000));
  EXPECT_NE(page.str().find("tetherd_certificate_expiry_timestamp_seconds{name=\"linkerd-identity-"
                            "issuer\"} 1700000000\n"),
            std::string::npos);
}

TEST(MetricsPageTest, LabelValuesEscapeBackslashQuoteAndNewline) {
  MetricsPage page;
  page.family("m", MetricType::kGauge, "");
  page.sample("m", {{"path", "C:\\dir"}, {"msg", "say \"hi\"\nbye"}, {"utf8", "é ✓"}}, 1);
  EXPECT_EQ(page.str(),
            "# TYPE m gauge\n"
            "m{path=\"C:\\\\dir\",msg=\"say \\\"hi\\\"\\nbye\",utf8=\"é ✓\"} 1\n");
}

TEST(MetricsPageTest, HelpEscapesBackslashAndNewlineButNotQuotes) {
  MetricsPage page;
  page.family("m", MetricType::kGauge, "a \\ b\n\"c\"");
  EXPECT_EQ(page.str(), "# HELP m a \\\\ b\\n\"c\"\n# TYPE m gauge\n");
}

TEST(SampleValueTest, IntegersPrintExactly) {
  EXPECT_EQ(value_text(1700000000), "1700000000");
  EXPECT_EQ(value_text(1700000000.0), "1700000000");
  EXPECT_EQ(value_text(0), "0");
  EXPECT_EQ(value_text(-0.0), "0");
  EXPECT_EQ(value_text(-42), "-42");
  EXPECT_EQ(value_text(std::uint64_t{18446744073709551615u}), "18446744073709551615");
  EXPECT_EQ(value_text(std::int64_t{-9223372036854775807 - 1}), "-9223372036854775808");
  EXPECT_EQ(value_text(9007199254740992.0), "9007199254740992");
  EXPECT_EQ(value_text(true), "1");
}

TEST(SampleValueTest, FloatsRoundTripInTheShortestForm) {
  EXPECT_EQ(value_text(0.1), "0.1");
  EXPECT_EQ(value_text(1.5), "1.5");
  EXPECT_EQ(value_text(-2.25), "-2.25");
  EXPECT_EQ(value_text(1e-300), "1e-300");
  EXPECT_EQ(value_text(1e300), "1e+300");
  for (double v : {0.1 + 0.2, 1.0 / 3.0, 123456.789, 5e-324, 1.7976931348623157e308}) {
    EXPECT_EQ(std::strtod(value_text(v).c_str(), nullptr), v) << value_text(v);
  }
}

TEST(SampleValueTest, NanAndInfinitiesAsPrometheusSpellsThem) {
  EXPECT_EQ(value_text(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(value_text(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(value_text(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(NameTest, MetricNamesFollowTheGrammar) {
  for (const char* good : {"a", "_", ":", "tetherd_up", "job:rate5m", "A9_:z"})
    EXPECT_TRUE(valid_metric_name(good)) << good;
  for (const char* bad : {"", "9lives", "tetherd-up", "tetherd up", "é", "a.b", "a{b}"})
    EXPECT_FALSE(valid_metric_name(bad)) << bad;
}

TEST(NameTest, LabelNamesFollowTheGrammarAndLeaveDoubleUnderscoreToPrometheus) {
  for (const char* good : {"a", "_", "_a", "type", "le", "A9_z"})
    EXPECT_TRUE(valid_label_name(good)) << good;
  for (const char* bad : {"", "9", "a:b", "a-b", "__name__", "__x"})
    EXPECT_FALSE(valid_label_name(bad)) << bad;
}

TEST(MetricsPageTest, BadNamesAreDroppedAndDescribed) {
  MetricsPage page;
  EXPECT_FALSE(page.family("bad-name", MetricType::kGauge, "h"));
  EXPECT_FALSE(page.sample("bad-name", {}, 1)) << "its samples go with it, quietly";
  EXPECT_FALSE(page.family("tetherd_reconnects", MetricType::kCounter, "h"));
  EXPECT_FALSE(page.family("tetherd_up_total", MetricType::kGauge, "h"));
  ASSERT_TRUE(page.family("tetherd_up", MetricType::kGauge, "h"));
  EXPECT_FALSE(page.sample("tetherd_up", {{"bad-label", "x"}}, 1));
  EXPECT_FALSE(page.sample("tetherd_up", {{"__name__", "x"}}, 1));
  EXPECT_FALSE(page.sample("tetherd_up", {{"a", "x"}, {"a", "y"}}, 1));
  EXPECT_TRUE(page.sample("tetherd_up", {}, 1));

  EXPECT_EQ(page.str(), "# HELP tetherd_up h\n# TYPE tetherd_up gauge\ntetherd_up 1\n");
  const std::vector<std::string> expected{
      "metric family \"bad-name\": not a valid metric name",
      "counter \"tetherd_reconnects\": a counter's name ends in _total",
      "metric family \"tetherd_up_total\": only a counter's name ends in _total",
      "sample \"tetherd_up\": label \"bad-label\" is not a valid label name",
      "sample \"tetherd_up\": label \"__name__\" is not a valid label name",
      "sample \"tetherd_up\": label \"a\" given twice",
  };
  EXPECT_EQ(page.problems(), expected);
}

TEST(MetricsPageTest, SamplesOnlyRightAfterTheirFamily) {
  MetricsPage page;
  EXPECT_FALSE(page.sample("a", {}, 1)) << "no family yet";
  page.family("a", MetricType::kGauge, "");
  page.sample("a", {}, 1);
  page.family("b", MetricType::kGauge, "");
  EXPECT_FALSE(page.sample("a", {}, 2)) << "a's samples must come before b";
  EXPECT_FALSE(page.family("a", MetricType::kGauge, "")) << "declared twice";
  EXPECT_FALSE(page.sample("a", {}, 3));

  EXPECT_EQ(page.str(), "# TYPE a gauge\na 1\n# TYPE b gauge\n");
  const std::vector<std::string> expected{
      "sample \"a\": not in the family declared last (none); declare its family, then its samples",
      "sample \"a\": not in the family declared last (\"b\"); declare its family, then its "
      "samples",
      "metric family \"a\": declared twice",
  };
  EXPECT_EQ(page.problems(), expected);
}

}  // namespace
}  // namespace tetherd
