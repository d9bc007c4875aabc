// The identity lines of a linkerd2-proxy's /metrics page, read as the page
// arrives, in pieces of any size.

#include "agent/core/proxy_metrics.h"

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;

WallTime at(std::int64_t seconds) {
  return WallTime(std::chrono::seconds(seconds));
}

// As linkerd2-proxy writes it (2.227 and later), among its other families.
const std::string kPage =
    "# HELP process_cpu_seconds_total Total user and system CPU time.\n"
    "# TYPE process_cpu_seconds_total counter\n"
    "process_cpu_seconds_total 12.5\n"
    "# HELP control_identity_cert_expiration_timestamp_seconds Time when the this proxy's "
    "current mTLS identity certificate will expire (in seconds since the UNIX epoch).\n"
    "# TYPE control_identity_cert_expiration_timestamp_seconds gauge\n"
    "control_identity_cert_expiration_timestamp_seconds 1764806400\n"
    "# HELP control_identity_cert_refresh_timestamp_seconds The last time.\n"
    "# TYPE control_identity_cert_refresh_timestamp_seconds gauge\n"
    "control_identity_cert_refresh_timestamp_seconds 1764720000\n"
    "# HELP control_identity_cert_refreshes The total number of refreshes.\n"
    "# TYPE control_identity_cert_refreshes counter\n"
    "control_identity_cert_refreshes_total{result=\"ok\"} 7\n"
    "control_identity_cert_refreshes_total{result=\"error\"} 2\n"
    "# HELP inbound_http_route_requests Requests.\n"
    "inbound_http_route_requests_total{route=\"a\"} 1\n";

TEST(ProxyMetrics, TheCurrentNames) {
  const auto scan = scan_proxy_metrics(kPage);
  EXPECT_EQ(scan.problem(), "");
  EXPECT_EQ(scan.identity().expires, at(1764806400));
  EXPECT_FALSE(scan.identity().legacy);
  EXPECT_EQ(scan.identity().refreshes_ok, 7u);
  EXPECT_EQ(scan.identity().refresh_errors, 2u);
  EXPECT_TRUE(scan.complete());
}

// Complete as soon as the family after the refresh counters begins: the
// reader stops there, whatever follows.
TEST(ProxyMetrics, CompleteOnceTheRefreshFamilyEnds) {
  ProxyMetricsScan scan;
  const std::size_t cut = kPage.find("# HELP inbound");
  scan.feed(kPage.substr(0, cut));
  EXPECT_FALSE(scan.complete()) << "more refresh counters may follow";
  scan.feed("# HELP inbound_http_route_requests Requests.\n");
  EXPECT_TRUE(scan.complete());
}

TEST(ProxyMetrics, AnyPieces) {
  for (std::size_t size : {1u, 2u, 7u, 64u}) {
    ProxyMetricsScan scan;
    for (std::size_t i = 0; i < kPage.size(); i += size)
      scan.feed(std::string_view(kPage).substr(i, size));
    scan.finish();
    EXPECT_EQ(scan.identity(), scan_proxy_metrics(kPage).identity()) << size;
  }
}

TEST(ProxyMetrics, AnOlderProxy) {
  const auto scan = scan_proxy_metrics(
      "# TYPE identity_cert_expiration_timestamp_seconds gauge\n"
      "identity_cert_expiration_timestamp_seconds 1.7648064e+09\r\n"
      "identity_cert_refresh_count 3\n");
  EXPECT_EQ(scan.identity().expires, at(1764806400));
  EXPECT_TRUE(scan.identity().legacy);
  EXPECT_FALSE(scan.identity().refresh_errors) << "not exported";
  EXPECT_FALSE(scan.complete()) << "an older proxy is read to the end";
}

TEST(ProxyMetrics, TheCurrentNameWinsOverTheOldOne) {
  EXPECT_EQ(scan_proxy_metrics("identity_cert_expiration_timestamp_seconds 100\n"
                               "control_identity_cert_expiration_timestamp_seconds 200\n")
                .identity()
                .expires,
            at(200));
  EXPECT_EQ(scan_proxy_metrics("control_identity_cert_expiration_timestamp_seconds 200\n"
                               "identity_cert_expiration_timestamp_seconds 100\n")
                .identity()
                .expires,
            at(200));
}

// Labels with braces, commas and escaped quotes in their values; other
// results; series of the same result summed.
TEST(ProxyMetrics, Labels) {
  const auto scan = scan_proxy_metrics(
      "control_identity_cert_refreshes_total{a=\"x}y\",result=\"error\"} 1\n"
      "control_identity_cert_refreshes_total{ b = \"q\\\"}\" , result=\"error\" } 2\n"
      "control_identity_cert_refreshes_total{result=\"other\"} 9\n"
      "control_identity_cert_refreshes_total{result=\"ok\"} 4 1764806400000\n");
  EXPECT_EQ(scan.identity().refresh_errors, 3u);
  EXPECT_EQ(scan.identity().refreshes_ok, 4u);
}

// linkerd2-proxy's gauge is 0 until its first certificate: no expiry yet,
// not one in 1970.
TEST(ProxyMetrics, ZeroIsNoCertificateYet) {
  for (const char* value : {"0", "0.0", "0e+00"}) {
    const auto scan = scan_proxy_metrics(
        std::string("control_identity_cert_expiration_timestamp_seconds ") + value + "\n");
    EXPECT_FALSE(scan.identity().expires) << value;
    EXPECT_EQ(scan.problem(), "") << value;
  }
}

TEST(ProxyMetrics, ValuesThatAreNotTimesAreSaid) {
  // 9.3e9 and 1e10: past what a time point in nanoseconds holds (2262).
  for (const char* value : {"NaN", "+Inf", "-1", "1e300", "9.3e9", "1e10", "soon", ""}) {
    const auto scan = scan_proxy_metrics(
        std::string("control_identity_cert_expiration_timestamp_seconds ") + value + "\n");
    EXPECT_FALSE(scan.identity().expires) << value;
    EXPECT_NE(scan.problem(), "") << value;
  }
  const auto twice = scan_proxy_metrics(
      "control_identity_cert_expiration_timestamp_seconds 100\n"
      "control_identity_cert_expiration_timestamp_seconds 200\n");
  EXPECT_EQ(twice.problem(),
            "control_identity_cert_expiration_timestamp_seconds is given twice, with different "
            "values");
}

// A line longer than the bound is skipped whole, and memory stays bounded;
// the lines after it are read.
TEST(ProxyMetrics, AnOverlongLineIsSkipped) {
  ProxyMetricsScan scan;
  scan.feed("control_identity_cert_expiration_timestamp_seconds 1");
  scan.feed(std::string(ProxyMetricsScan::kMaxLineBytes, '0'));
  scan.feed("\ncontrol_identity_cert_expiration_timestamp_seconds 300\n");
  scan.finish();
  EXPECT_EQ(scan.identity().expires, at(300));
  EXPECT_EQ(scan.problem(), "");
}

TEST(ProxyMetrics, NothingOfOurs) {
  const auto scan = scan_proxy_metrics("up 1\n# just a comment\n\n{}\n control_identity\n");
  EXPECT_FALSE(scan.identity().expires);
  EXPECT_FALSE(scan.complete());
  EXPECT_EQ(scan.problem(), "");
}

}  // namespace
}  // namespace tetherd
