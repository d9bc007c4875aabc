// The certificate policy over plain values: every issuer and anchor state,
// the boundaries (a third of the lifetime left, rotate_before left, a second
// either side of expiry), precedence when several things are wrong, and a
// three-day suspend.

#include "agent/core/issuer_policy.h"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

const WallTime kNow{seconds(1795253405)};  // 2026-11-21T09:30:05Z

CertificateInfo cert(const std::string& cn, WallTime not_before, WallTime not_after) {
  CertificateInfo c;
  c.subject = "CN=" + cn;
  c.subject_cn = cn;
  c.not_before = not_before;
  c.not_after = not_after;
  c.key_type = "ECDSA P-256";
  c.is_ca = true;
  return c;
}

// An issuer of linkerd's usual 8760h lifetime ending at `not_after`.
CertificateInfo issuer_ending(WallTime not_after, Duration lifetime = hours(8760)) {
  return cert("identity.linkerd.cluster.local", not_after - lifetime, not_after);
}

CertificateInfo anchor_ending(WallTime not_after) {
  return cert("root.linkerd.cluster.local", kNow - hours(24 * 365), not_after);
}

const CertificateInfo kGoodAnchor = anchor_ending(kNow + hours(24 * 365 * 9));

IssuerFacts chained(CertificateInfo issuer, CertificateInfo anchor = kGoodAnchor) {
  IssuerFacts f;
  f.issuer = std::move(issuer);
  f.anchors = {std::move(anchor)};
  f.chains_to = 0;
  return f;
}

struct Case {
  std::string name;
  IssuerFacts facts;
  IssuerState issuer;
  AnchorState anchor;
  bool rotate;
  bool valid;
  std::string reason;
  IssuerPolicy policy = {};
};

std::vector<Case> cases() {
  using IS = IssuerState;
  using AS = AnchorState;
  // A short-lived issuer whose third (480h) is less than rotate_before.
  const Duration short_life = hours(1440);
  IssuerFacts broken = chained(issuer_ending(kNow + hours(5000)));
  broken.chains_to.reset();
  broken.chain_error = "CN=identity.linkerd.cluster.local: unable to get local issuer certificate";
  IssuerFacts out_of_range = chained(issuer_ending(kNow + hours(5000)));
  out_of_range.chains_to = 3;
  IssuerFacts mismatch = chained(issuer_ending(kNow + hours(5000)));
  mismatch.key_matches = false;
  IssuerFacts rsa = chained(issuer_ending(kNow + hours(5000)));
  rsa.issuer->key_type = "RSA 2048";
  IssuerFacts unreadable;
  unreadable.unreadable = "secrets \"linkerd-identity-issuer\" is forbidden";
  unreadable.anchors = {kGoodAnchor};
  IssuerFacts missing;
  missing.anchors = {kGoodAnchor};
  IssuerFacts clock_behind_and_mismatch = chained(cert("i", kNow + seconds(1), kNow + hours(9000)));
  clock_behind_and_mismatch.key_matches = false;
  // Minted by a clock that was ahead; the control plane's clock now agrees
  // with the node's (issue 23's simulation: else up to the whole error of
  // that clock with an issuer no proxy takes).
  IssuerFacts from_the_future = chained(cert("i", kNow + hours(50), kNow + hours(9000)));
  from_the_future.clock_confirmed = true;
  // A minute ahead, though: an issuer made elsewhere by a clock a little
  // ahead, valid by itself in a minute, is left.
  IssuerFacts a_minute_ahead = chained(cert("i", kNow + minutes(1), kNow + hours(9000)));
  a_minute_ahead.clock_confirmed = true;
  IssuerFacts from_the_future_mismatch = clock_behind_and_mismatch;
  from_the_future_mismatch.clock_confirmed = true;
  IssuerFacts from_the_future_dead_anchor =
      chained(cert("i", kNow + hours(50), kNow + hours(9000)), anchor_ending(kNow - seconds(1)));
  from_the_future_dead_anchor.clock_confirmed = true;
  IssuerFacts no_anchor = chained(issuer_ending(kNow - seconds(1)));
  no_anchor.anchors.clear();
  no_anchor.chains_to.reset();

  return {
      {"Valid", chained(issuer_ending(kNow + hours(6000))), IS::kValid, AS::kValid, false, true,
       "IssuerValid"},
      {"ExactlyAThirdLeftIsValid", chained(issuer_ending(kNow + hours(2920))), IS::kValid,
       AS::kValid, false, true, "IssuerValid"},
      {"ASecondLessThanAThirdLeft", chained(issuer_ending(kNow + hours(2920) - seconds(1))),
       IS::kRenewSoon, AS::kValid, true, false, "IssuerExpiringSoon"},
      {"ExactlyRotateBeforeLeftIsValid", chained(issuer_ending(kNow + hours(720), short_life)),
       IS::kValid, AS::kValid, false, true, "IssuerValid"},
      {"ASecondLessThanRotateBeforeLeft",
       chained(issuer_ending(kNow + hours(720) - seconds(1), short_life)), IS::kRenewSoon,
       AS::kValid, true, false, "IssuerExpiringSoon"},
      {"ASecondBeforeExpiry", chained(issuer_ending(kNow + seconds(1))), IS::kRenewSoon, AS::kValid,
       true, false, "IssuerExpiringSoon"},
      {"AtNotAfterStillValidButDue", chained(issuer_ending(kNow)), IS::kRenewSoon, AS::kValid, true,
       false, "IssuerExpiringSoon"},
      {"ASecondAfterExpiry", chained(issuer_ending(kNow - seconds(1))), IS::kExpired, AS::kValid,
       true, false, "IssuerExpired"},
      {"NotYetValidIsNotRotated", chained(cert("i", kNow + seconds(1), kNow + hours(9000))),
       IS::kNotYetValid, AS::kValid, false, false, "IssuerNotYetValid"},
      {"AtNotBeforeIsValid", chained(cert("i", kNow, kNow + hours(8760))), IS::kValid, AS::kValid,
       false, true, "IssuerValid"},
      {"BrokenChain", broken, IS::kBrokenChain, AS::kValid, true, false, "IssuerChainBroken"},
      {"AnchorIndexOutOfRangeIsBroken", out_of_range, IS::kBrokenChain, AS::kValid, true, false,
       "IssuerChainBroken"},
      {"KeyMismatchIsReportedNotOverwritten", mismatch, IS::kKeyMismatch, AS::kValid, false, false,
       "IssuerKeyMismatch"},
      {"AnRsaIssuerIsReportedNotOverwritten", rsa, IS::kUnsupportedKey, AS::kValid, false, false,
       "IssuerKeyUnsupported"},
      {"Unreadable", unreadable, IS::kUnreadable, AS::kValid, false, false, "IssuerUnreadable"},
      {"NoIssuerIsUnreadable", missing, IS::kUnreadable, AS::kValid, false, false,
       "IssuerUnreadable"},
      {"WrongClockWinsOverKeyMismatch", clock_behind_and_mismatch, IS::kNotYetValid, AS::kValid,
       false, false, "IssuerNotYetValid"},
      {"NotYetValidWithTheControlPlanesClockAgreeingIsRotated", from_the_future, IS::kNotYetValid,
       AS::kValid, true, false, "IssuerNotYetValid"},
      {"ConfirmedClockLeavesAnIssuerOnlyMomentsAhead", a_minute_ahead, IS::kNotYetValid, AS::kValid,
       false, false, "IssuerNotYetValid"},
      {"ConfirmedClockStillNeverOverwritesAMismatch", from_the_future_mismatch, IS::kKeyMismatch,
       AS::kValid, false, false, "IssuerKeyMismatch"},
      {"ConfirmedClockUnderAnExpiredAnchorIsNotRotated", from_the_future_dead_anchor,
       IS::kNotYetValid, AS::kExpired, false, false, "TrustAnchorExpired"},
      {"NoAnchorKnownNoRotation", no_anchor, IS::kBrokenChain, AS::kUnknown, false, false,
       "IssuerChainBroken"},
      {"AnchorExpiringIssuerValid",
       chained(issuer_ending(kNow + hours(6000)), anchor_ending(kNow + hours(719))), IS::kValid,
       AS::kExpiring, false, false, "TrustAnchorExpiring"},
      {"AnchorExactlyWarnBeforeLeftIsValid",
       chained(issuer_ending(kNow + hours(6000)), anchor_ending(kNow + hours(720))), IS::kValid,
       AS::kValid, false, true, "IssuerValid"},
      {"AnchorExpiringIssuerDueStillRotates",
       chained(issuer_ending(kNow + hours(100)), anchor_ending(kNow + hours(500))), IS::kRenewSoon,
       AS::kExpiring, true, false, "TrustAnchorExpiring"},
      // Rotated once under an expiring anchor, the issuer ends with it and is
      // due again at once: no rotation every hour until the anchor expires.
      {"IssuerEndingWithItsAnchorIsNotRenewedAgain",
       chained(issuer_ending(kNow + hours(500)), anchor_ending(kNow + hours(500))), IS::kRenewSoon,
       AS::kExpiring, false, false, "TrustAnchorExpiring"},
      {"UnlessANewerAnchorsKeySignsHere",
       [] {
         IssuerFacts f =
             chained(issuer_ending(kNow + hours(500)), anchor_ending(kNow + hours(500)));
         f.signer_not_after = kNow + hours(24 * 365);
         return f;
       }(),
       IS::kRenewSoon, AS::kExpiring, true, false, "TrustAnchorExpiring"},
      {"ButNotWhenTheSignersAnchorEndsNoLater",
       [] {
         IssuerFacts f =
             chained(issuer_ending(kNow + hours(500)), anchor_ending(kNow + hours(500)));
         f.signer_not_after = kNow + hours(500);
         return f;
       }(),
       IS::kRenewSoon, AS::kExpiring, false, false, "TrustAnchorExpiring"},
      {"AnExpiredAnchorsIssuerIsRenewedUnderTheSignersLiveOne",
       [] {
         IssuerFacts f = chained(issuer_ending(kNow - hours(1)), anchor_ending(kNow - seconds(1)));
         f.signer_not_after = kNow + hours(24 * 365);
         return f;
       }(),
       IS::kExpired, AS::kExpired, true, false, "TrustAnchorExpired"},
      {"ButAnExpiredOneUnderALiveAnchorStillIs",
       chained(issuer_ending(kNow - seconds(1)), anchor_ending(kNow + hours(500))), IS::kExpired,
       AS::kExpiring, true, false, "TrustAnchorExpiring"},
      {"AnchorExpiredNoRotation",
       chained(issuer_ending(kNow - hours(1)), anchor_ending(kNow - seconds(1))), IS::kExpired,
       AS::kExpired, false, false, "TrustAnchorExpired"},
      {"AnchorAtNotAfterIsNotExpired",
       chained(issuer_ending(kNow + hours(6000)), anchor_ending(kNow)), IS::kValid, AS::kExpiring,
       false, false, "TrustAnchorExpiring"},
      {"ShorterPolicy", chained(issuer_ending(kNow + hours(100), hours(200))), IS::kValid,
       AS::kValid, false, true, "IssuerValid", IssuerPolicy{hours(24), hours(24)}},
  };
}

TEST(IssuerPolicyTest, EveryStateAndBoundary) {
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const IssuerVerdict v = judge_issuer(c.facts, kNow, c.policy);
    EXPECT_EQ(to_string(v.issuer), to_string(c.issuer));
    EXPECT_EQ(to_string(v.anchor), to_string(c.anchor));
    EXPECT_EQ(v.rotate, c.rotate);
    EXPECT_EQ(v.valid, c.valid);
    EXPECT_EQ(v.reason, c.reason);
    EXPECT_FALSE(v.message.empty());
    if (c.facts.issuer) {
      EXPECT_EQ(v.issuer_expires, c.facts.issuer->not_after);
    }
  }
}

TEST(IssuerPolicyTest, DefaultsAreThirtyDays) {
  EXPECT_EQ(IssuerPolicy{}.rotate_before, hours(720));
  EXPECT_EQ(IssuerPolicy{}.anchor_warn_before, hours(720));
}

TEST(IssuerPolicyTest, AThreeDaySuspendExpiresAnAlmostExpiredIssuer) {
  // Lifetime 168h, a third 56h; 60h left before the suspend.
  const IssuerPolicy policy{hours(24), hours(720)};
  const IssuerFacts facts = chained(cert("i", kNow - hours(108), kNow + hours(60)));
  const IssuerVerdict before = judge_issuer(facts, kNow, policy);
  EXPECT_EQ(before.issuer, IssuerState::kValid);
  EXPECT_FALSE(before.rotate);
  EXPECT_TRUE(before.valid);

  const IssuerVerdict after = judge_issuer(facts, kNow + hours(72), policy);
  EXPECT_EQ(after.issuer, IssuerState::kExpired);
  EXPECT_TRUE(after.rotate);
  EXPECT_FALSE(after.valid);
  EXPECT_EQ(after.reason, "IssuerExpired");
  EXPECT_NE(after.message.find(format_kube_time(kNow + hours(60))), std::string::npos)
      << after.message;
}

TEST(IssuerPolicyTest, BrokenChainJudgesTheEarliestExpiringAnchor) {
  IssuerFacts facts = chained(issuer_ending(kNow + hours(5000)));
  const CertificateInfo soon = anchor_ending(kNow + hours(100));
  facts.anchors.push_back(soon);
  EXPECT_EQ(judge_issuer(facts, kNow, {}).anchor, AnchorState::kValid)
      << "chained to the good one: the other anchor is not judged";
  facts.chains_to.reset();
  const IssuerVerdict v = judge_issuer(facts, kNow, {});
  EXPECT_EQ(v.anchor, AnchorState::kExpiring);
  EXPECT_EQ(v.anchor_expires, soon.not_after);
  EXPECT_TRUE(v.rotate);
}

TEST(IssuerPolicyTest, MessagesCarryDatesAndBothProblems) {
  const WallTime anchor_end = kNow - hours(2);
  const WallTime issuer_end = kNow - hours(1);
  const IssuerVerdict both =
      judge_issuer(chained(issuer_ending(issuer_end), anchor_ending(anchor_end)), kNow, {});
  EXPECT_NE(both.message.find("trust anchor CN=root.linkerd.cluster.local expired at " +
                              format_kube_time(anchor_end)),
            std::string::npos)
      << both.message;
  EXPECT_NE(both.message.find("issuer CN=identity.linkerd.cluster.local expired at " +
                              format_kube_time(issuer_end)),
            std::string::npos)
      << both.message;
  EXPECT_NE(both.message.find("not renewing"), std::string::npos) << both.message;
  EXPECT_LT(both.message.find("trust anchor"), both.message.find("issuer CN="));

  const IssuerVerdict expiring = judge_issuer(
      chained(issuer_ending(kNow + hours(6000)), anchor_ending(kNow + hours(48))), kNow, {});
  EXPECT_NE(expiring.message.find(format_kube_time(kNow + hours(48))), std::string::npos)
      << expiring.message;

  IssuerFacts broken = chained(issuer_ending(kNow + hours(5000)));
  broken.chains_to.reset();
  broken.chain_error = "unable to get local issuer certificate";
  const IssuerVerdict v = judge_issuer(broken, kNow, {});
  EXPECT_NE(v.message.find("unable to get local issuer certificate"), std::string::npos);
  EXPECT_NE(v.message.find("renewing it"), std::string::npos) << v.message;

  const IssuerVerdict valid = judge_issuer(chained(issuer_ending(kNow + hours(6000))), kNow, {});
  EXPECT_EQ(valid.message, "issuer CN=identity.linkerd.cluster.local is valid until " +
                               format_kube_time(kNow + hours(6000)) + ", renewal from " +
                               format_kube_time(kNow + hours(6000) - hours(2920)));

  IssuerFacts unreadable;
  unreadable.unreadable = "ca-bundle.crt: block 2 is not a certificate";
  EXPECT_EQ(judge_issuer(unreadable, kNow, {}).message,
            "cannot read the issuer: ca-bundle.crt: block 2 is not a certificate");
}

TEST(IssuerPolicyTest, CertificatesEndingInYear9999DoNotOverflow) {
  const IssuerVerdict v = judge_issuer(chained(cert("i", WallTime::min(), WallTime::max()),
                                               cert("root", WallTime::min(), WallTime::max())),
                                       kNow, {});
  EXPECT_EQ(v.issuer, IssuerState::kValid);
  EXPECT_EQ(v.anchor, AnchorState::kValid);
}

TEST(IssuerPolicyTest, NewIssuerNeverOutlivesItsAnchor) {
  const WallTime anchor_end = kNow + hours(24 * 365 * 5);
  EXPECT_EQ(issuer_not_after(kNow, hours(8760), anchor_end), kNow + hours(8760));
  EXPECT_EQ(issuer_not_after(kNow, hours(8760), kNow + hours(100)), kNow + hours(100));
  EXPECT_EQ(issuer_not_after(kNow, Duration::max(), anchor_end), anchor_end)
      << "an absurd validity must not wrap around";
}

}  // namespace
}  // namespace tetherd
