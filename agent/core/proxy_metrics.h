#pragma once
// What a linkerd2-proxy's admin page (GET :4191/metrics, the Prometheus
// text format) says about its own identity certificate. Pure: bytes in,
// values out.
//
//   control_identity_cert_expiration_timestamp_seconds   when it expires
//   control_identity_cert_refreshes_total{result="..."}  refreshes, ok|error
//   identity_cert_expiration_timestamp_seconds           the same, proxies
//                                                        before 2.227 (2024)
//
// A busy proxy's page runs to megabytes (a family per route and peer), so
// it is scanned as it arrives, line by line, holding one line at most, and
// the scan says when it has seen all it wants: the reader stops there.
// Everything else on the page is skipped unread.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/core/clock.h"

namespace tetherd {

struct ProxyIdentity {
  // nullopt too while the proxy has no certificate yet (its gauge is 0).
  std::optional<WallTime> expires;
  // The counter's value by result; nullopt when the proxy does not export it.
  std::optional<std::uint64_t> refreshes_ok;
  std::optional<std::uint64_t> refresh_errors;
  bool legacy = false;  // the expiry came from the pre-2024 name
  friend bool operator==(const ProxyIdentity&, const ProxyIdentity&) = default;
};

class ProxyMetricsScan {
 public:
  // A line longer than this is not one of ours; it is skipped whole.
  static constexpr std::size_t kMaxLineBytes = 16 << 10;

  // The next bytes of the page, in any pieces.
  void feed(std::string_view bytes);
  // The page ended: its last line, if it had no newline.
  void finish();
  // Everything wanted has been seen (the current names: the expiry and both
  // refresh counters): reading more cannot change the result.
  bool complete() const;

  const ProxyIdentity& identity() const { return identity_; }
  // Why the expiry cannot be believed ("" when it can, or was not seen): a
  // value that is not a time (NaN, negative, past year 9999), or given twice
  // with different values.
  const std::string& problem() const { return problem_; }

 private:
  void line(std::string_view text);
  void value_of(std::string_view name, std::string_view labels, std::string_view value);

  std::string partial_;
  bool skipping_ = false;          // inside an over-long line
  bool in_refreshes_ = false;      // the refresh counters' family has begun
  bool refreshes_closed_ = false;  // ... and another has followed it
  ProxyIdentity identity_;
  std::string problem_;
};

// The whole page at once (tests, fuzzing).
ProxyMetricsScan scan_proxy_metrics(std::string_view page);

}  // namespace tetherd
