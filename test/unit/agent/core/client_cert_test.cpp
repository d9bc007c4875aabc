// The node's client certificate over its life (core/client_cert.h): the
// renewal point's spread, the verdicts along the way (a suspend past the
// point, an expiry, a clock that is wrong) and the check of what a signer
// issued.

#include "agent/core/client_cert.h"

#include <algorithm>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using State = ClientCertState;

const WallTime kStart{std::chrono::seconds(1'790'000'000)};
const WallTime kEnd = kStart + 100h;

TEST(RenewalPoint, SpreadsUniformlyBetween70And90PercentOfTheLife) {
  EXPECT_EQ(renewal_point(kStart, kEnd, 0.0), kStart + 70h);
  EXPECT_EQ(renewal_point(kStart, kEnd, 0.5), kStart + 80h);
  EXPECT_EQ(renewal_point(kStart, kEnd, 1.0), kStart + 90h);
  EXPECT_EQ(renewal_point(kStart, kEnd, -3.0), kStart + 70h) << "a draw out of range is clamped";
  EXPECT_EQ(renewal_point(kEnd, kStart, 0.5), kEnd) << "no life: renew at once";

  // A fleet of 10 000 nodes enrolled together: every point inside the
  // window, and the window's five bands of 4 h evenly filled (within 10%),
  // so they do not renew together.
  std::mt19937_64 random(20261203);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<int> bands(5, 0);
  for (int i = 0; i < 10'000; ++i) {
    const WallTime at = renewal_point(kStart, kEnd, u(random));
    ASSERT_GE(at, kStart + 70h);
    ASSERT_LE(at, kStart + 90h);
    const auto band = std::min<long>(4, (at - (kStart + 70h)) / 4h);
    ++bands[static_cast<std::size_t>(band)];
  }
  for (int n : bands) {
    EXPECT_GT(n, 1800) << "a band of the window is nearly empty";
    EXPECT_LT(n, 2200) << "a band of the window is crowded";
  }
}

TEST(ClientCertVerdict, AlongTheCertificatesLife) {
  const WallTime renew_at = kStart + 80h;
  struct Row {
    WallTime now;
    bool synced;
    State state;
    bool renew;
  };
  const std::vector<Row> rows{
      {kStart + 1h, true, State::kValid, false},
      {kStart + 79h, true, State::kValid, false},
      {kStart + 80h, true, State::kRenewDue, true},
      // A suspend from hour 10 to hour 95: the wall clock says renew now.
      {kStart + 95h, true, State::kRenewDue, true},
      {kEnd, true, State::kExpired, true},
      {kEnd + 24h * 30, true, State::kExpired, true},
      {kStart - 1h, true, State::kNotYetValid, false},
      // The clock is wrong: nothing renews on its word.
      {kStart + 85h, false, State::kRenewDue, false},
      {kEnd + 24h * 365, false, State::kExpired, false},
  };
  for (const Row& r : rows) {
    const ClientCertVerdict v = judge_client_cert(r.now, kStart, kEnd, renew_at, r.synced);
    EXPECT_EQ(to_string(v.state), to_string(r.state)) << v.message;
    EXPECT_EQ(v.renew, r.renew) << v.message;
    EXPECT_EQ(v.left, std::chrono::duration_cast<Duration>(kEnd - r.now));
    EXPECT_FALSE(v.message.empty());
  }
  const auto unsynced = judge_client_cert(kEnd + 1h, kStart, kEnd, renew_at, false);
  EXPECT_NE(unsynced.message.find("not synchronized"), std::string::npos) << unsynced.message;
}

TEST(CheckIssued, RefusesWhatWasNotAskedFor) {
  const WallTime now = kStart + 1h;
  CertificateInfo good;
  good.subject_cn = "tetherd:node-a";
  good.not_before = now - 5min;
  good.not_after = now + 24h;
  const AskedCertificate asked{"tetherd:node-a", 24h};
  EXPECT_TRUE(check_issued(good, true, asked, now));

  auto refused = [&](CertificateInfo c, bool key, std::string_view words) {
    auto r = check_issued(c, key, asked, now);
    ASSERT_FALSE(r) << words;
    EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
  };
  CertificateInfo other = good;
  other.subject_cn = "tetherd:node-b";
  refused(other, true, "CN=tetherd:node-b");
  refused(good, false, "another key");
  CertificateInfo ca = good;
  ca.is_ca = true;
  refused(ca, true, "CA certificate");
  CertificateInfo server_only = good;
  server_only.client_auth = false;
  refused(server_only, true, "leaves out clientAuth");
  CertificateInfo early = good;
  early.not_before = now + 1h;
  refused(early, true, "valid from");
  CertificateInfo expired = good;
  expired.not_after = now - 1s;
  refused(expired, true, "expired");
  CertificateInfo short_lived = good;
  short_lived.not_after = now + 11h;
  refused(short_lived, true, "not the 24h asked for");

  // A signer may cap the life (its maximum): half of what was asked passes.
  CertificateInfo capped = good;
  capped.not_after = now + 12h;
  EXPECT_TRUE(check_issued(capped, true, asked, now));
  // Without a life asked for, the signer's choice stands.
  EXPECT_TRUE(check_issued(short_lived, true, {"tetherd:node-a", Duration::zero()}, now));
}

}  // namespace
}  // namespace tetherd
