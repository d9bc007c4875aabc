#include "agent/core/issuer_policy.h"

#include <algorithm>

#include "agent/core/clock_jump.h"
#include "agent/core/kube_time.h"

namespace tetherd {
namespace {

// Lifetimes and margins are computed in milliseconds: a certificate may end
// in 9999 (RFC 5280's "no well-defined expiration", clamped to WallTime's
// range), and a difference of two such times overflows nanoseconds.
using Millis = std::chrono::milliseconds;

Millis since_epoch(WallTime t) {
  return std::chrono::floor<Millis>(t.time_since_epoch());
}

Millis between(WallTime from, WallTime to) {
  return since_epoch(to) - since_epoch(from);
}

WallTime wall_time(Millis since_epoch) {
  using std::chrono::floor;
  if (since_epoch >= floor<Millis>(WallTime::max().time_since_epoch())) return WallTime::max();
  if (since_epoch <= floor<Millis>(WallTime::min().time_since_epoch())) return WallTime::min();
  return WallTime(since_epoch);
}

// From this time on the issuer is kRenewSoon: less than rotate_before or a
// third of its lifetime left, whichever comes first.
WallTime renewal_due(const CertificateInfo& cert, const IssuerPolicy& policy) {
  const Millis margin = std::max(std::chrono::ceil<Millis>(policy.rotate_before),
                                 between(cert.not_before, cert.not_after) / 3);
  return wall_time(since_epoch(cert.not_after) - margin);
}

// Not valid for longer than the control plane's clock lets this node's be
// wrong: a clock that was ahead minted it. (Within the tolerance it may be
// an issuer made elsewhere a moment ahead: it becomes valid by itself.)
bool minted_ahead(const IssuerFacts& facts, WallTime now) {
  return facts.clock_confirmed && facts.issuer &&
         between(now, facts.issuer->not_before) > std::chrono::ceil<Millis>(kClockTolerance);
}

IssuerState judge_state(const IssuerFacts& facts, bool chained, WallTime now,
                        const IssuerPolicy& policy) {
  if (!facts.unreadable.empty() || !facts.issuer) return IssuerState::kUnreadable;
  const CertificateInfo& cert = *facts.issuer;
  // A clock the control plane vouches for is not behind: the Secret's own
  // faults come first then (they are never written over).
  const bool early = now < cert.not_before;
  if (early && !facts.clock_confirmed) return IssuerState::kNotYetValid;
  if (!facts.key_matches) return IssuerState::kKeyMismatch;
  if (cert.key_type != "ECDSA P-256") return IssuerState::kUnsupportedKey;
  if (early) return IssuerState::kNotYetValid;
  if (!chained) return IssuerState::kBrokenChain;
  if (now > cert.not_after) return IssuerState::kExpired;
  const Millis left = between(now, cert.not_after);
  const Millis lifetime = between(cert.not_before, cert.not_after);
  if (left < std::chrono::ceil<Millis>(policy.rotate_before) || left * 3 < lifetime)
    return IssuerState::kRenewSoon;
  return IssuerState::kValid;
}

const CertificateInfo* judged_anchor(const IssuerFacts& facts, bool chained) {
  if (chained) return &facts.anchors[*facts.chains_to];
  const CertificateInfo* earliest = nullptr;
  for (const CertificateInfo& anchor : facts.anchors) {
    if (earliest == nullptr || anchor.not_after < earliest->not_after) earliest = &anchor;
  }
  return earliest;
}

AnchorState judge_anchor(const CertificateInfo* anchor, WallTime now, const IssuerPolicy& policy) {
  if (anchor == nullptr) return AnchorState::kUnknown;
  if (now > anchor->not_after) return AnchorState::kExpired;
  if (between(now, anchor->not_after) < std::chrono::ceil<Millis>(policy.anchor_warn_before))
    return AnchorState::kExpiring;
  return AnchorState::kValid;
}

bool wants_rotation(IssuerState state) {
  return state == IssuerState::kExpired || state == IssuerState::kRenewSoon ||
         state == IssuerState::kBrokenChain;
}

std::string_view issuer_reason(IssuerState state) {
  switch (state) {
    case IssuerState::kValid:
      return "IssuerValid";
    case IssuerState::kRenewSoon:
      return "IssuerExpiringSoon";
    case IssuerState::kExpired:
      return "IssuerExpired";
    case IssuerState::kNotYetValid:
      return "IssuerNotYetValid";
    case IssuerState::kBrokenChain:
      return "IssuerChainBroken";
    case IssuerState::kKeyMismatch:
      return "IssuerKeyMismatch";
    case IssuerState::kUnsupportedKey:
      return "IssuerKeyUnsupported";
    case IssuerState::kUnreadable:
      break;
  }
  return "IssuerUnreadable";
}

std::string issuer_text(IssuerState state, const IssuerFacts& facts, WallTime now,
                        const IssuerPolicy& policy) {
  if (state == IssuerState::kUnreadable)
    return "cannot read the issuer: " +
           (facts.unreadable.empty() ? std::string("no issuer certificate") : facts.unreadable);
  const CertificateInfo& cert = *facts.issuer;
  const std::string name = "issuer " + cert.subject;
  switch (state) {
    case IssuerState::kValid:
      return name + " is valid until " + format_kube_time(cert.not_after) + ", renewal from " +
             format_kube_time(renewal_due(cert, policy));
    case IssuerState::kRenewSoon:
      return name + " expires at " + format_kube_time(cert.not_after);
    case IssuerState::kExpired:
      return name + " expired at " + format_kube_time(cert.not_after);
    case IssuerState::kNotYetValid:
      return name + " is not valid before " + format_kube_time(cert.not_before) +
             ", and this node's clock says " + format_kube_time(now) +
             (minted_ahead(facts, now)
                  ? " (as does the control plane's: a clock that was ahead minted it)"
                  : " (is the clock right?)");
    case IssuerState::kBrokenChain:
      return name + " does not chain to the trust anchors" +
             (facts.chain_error.empty() ? "" : " (" + facts.chain_error + ")");
    case IssuerState::kKeyMismatch:
      return name + ": the private key in the Secret is not the certificate's";
    case IssuerState::kUnsupportedKey:
      return name + " has a " + cert.key_type + " key; linkerd's identity takes ECDSA P-256 only";
    case IssuerState::kUnreadable:
      break;
  }
  return name;
}

std::string anchor_text(AnchorState state, const CertificateInfo* anchor) {
  if (state == AnchorState::kExpired)
    return "trust anchor " + anchor->subject + " expired at " +
           format_kube_time(anchor->not_after) +
           "; tetherd never makes a trust anchor: supply a new trust bundle";
  return "trust anchor " + anchor->subject + " expires at " + format_kube_time(anchor->not_after) +
         "; supply a new trust bundle before then";
}

// What is done about the issuer, and why not when it is not.
std::string action_text(IssuerState issuer, AnchorState anchor, bool rotate, bool capped) {
  if (rotate) return "; renewing it";
  if (capped) return "; not renewing it: it already lasts as long as its trust anchor";
  if (issuer == IssuerState::kNotYetValid) return "; not renewing it";
  if (issuer == IssuerState::kKeyMismatch || issuer == IssuerState::kUnsupportedKey)
    return "; not replacing it by itself (fix the Secret, or `tetherctl certs rotate`)";
  if (!wants_rotation(issuer)) return "";
  if (anchor == AnchorState::kExpired) return "; not renewing it under an expired trust anchor";
  return "; not renewing it: no trust anchor known";
}

}  // namespace

std::string_view to_string(IssuerState state) {
  switch (state) {
    case IssuerState::kValid:
      return "Valid";
    case IssuerState::kRenewSoon:
      return "RenewSoon";
    case IssuerState::kExpired:
      return "Expired";
    case IssuerState::kNotYetValid:
      return "NotYetValid";
    case IssuerState::kBrokenChain:
      return "BrokenChain";
    case IssuerState::kKeyMismatch:
      return "KeyMismatch";
    case IssuerState::kUnsupportedKey:
      return "UnsupportedKey";
    case IssuerState::kUnreadable:
      break;
  }
  return "Unreadable";
}

std::string_view to_string(AnchorState state) {
  switch (state) {
    case AnchorState::kValid:
      return "Valid";
    case AnchorState::kExpiring:
      return "Expiring";
    case AnchorState::kExpired:
      return "Expired";
    case AnchorState::kUnknown:
      break;
  }
  return "Unknown";
}

IssuerVerdict judge_issuer(const IssuerFacts& facts, WallTime now, const IssuerPolicy& policy) {
  const bool chained = facts.chains_to && *facts.chains_to < facts.anchors.size();
  const CertificateInfo* anchor = judged_anchor(facts, chained);

  IssuerVerdict v;
  v.issuer = judge_state(facts, chained, now, policy);
  v.anchor = judge_anchor(anchor, now, policy);
  // A live anchor to sign under: the one judged, or the signer's (an
  // issuer that ended with its old anchor is renewed under the new one the
  // operator brought; issue 23's simulation).
  const bool signer_live = facts.signer_not_after && now <= *facts.signer_not_after;
  // Not yet valid while the control plane's clock vouches for `now`: it
  // was minted by a clock that was ahead (a bad RTC, since put right), and
  // only a new one ends it before its notBefore comes (up to the whole
  // error of that clock).
  const bool from_the_future = v.issuer == IssuerState::kNotYetValid && minted_ahead(facts, now);
  v.rotate = (wants_rotation(v.issuer) || from_the_future) &&
             (v.anchor == AnchorState::kValid || v.anchor == AnchorState::kExpiring || signer_live);
  // Near the anchor's end every new issuer is capped at it, and so is due
  // again at once: renewing it hourly would change nothing but the key.
  // Only an expired issuer is worth replacing then.
  // Unless the operator has brought a newer anchor whose key signs here: an
  // issuer under it outlasts this one (issue 23's simulation: else it
  // expired with the old anchor and waited for the next hourly check).
  const bool outlasted =
      anchor != nullptr && facts.signer_not_after && *facts.signer_not_after > anchor->not_after;
  const bool capped = v.rotate && v.issuer == IssuerState::kRenewSoon && anchor != nullptr &&
                      facts.issuer->not_after >= anchor->not_after && !outlasted;
  if (capped) v.rotate = false;
  if (facts.issuer) v.issuer_expires = facts.issuer->not_after;
  if (anchor != nullptr) v.anchor_expires = anchor->not_after;
  v.valid = v.issuer == IssuerState::kValid && v.anchor == AnchorState::kValid;

  const std::string issuer_part =
      issuer_text(v.issuer, facts, now, policy) + action_text(v.issuer, v.anchor, v.rotate, capped);
  if (v.anchor == AnchorState::kExpired || v.anchor == AnchorState::kExpiring) {
    v.reason = v.anchor == AnchorState::kExpired ? "TrustAnchorExpired" : "TrustAnchorExpiring";
    v.message = anchor_text(v.anchor, anchor);
    if (v.issuer != IssuerState::kValid) v.message += "; " + issuer_part;
  } else {
    v.reason = issuer_reason(v.issuer);
    v.message = issuer_part;
  }
  return v;
}

WallTime issuer_not_after(WallTime now, Duration validity, WallTime anchor_not_after) {
  // An absurd validity must not wrap around to a date in the past.
  WallTime end;
  if (validity > Duration::zero() && now > WallTime::max() - validity)
    end = WallTime::max();
  else if (validity < Duration::zero() && now < WallTime::min() - validity)
    end = WallTime::min();
  else
    end = now + validity;
  return std::min(end, anchor_not_after);
}

}  // namespace tetherd
