#pragma once
// Whether linkerd's issuer certificate needs a new one, and what the
// CertificatesValid condition says. Pure: the adapters read the Secret and
// the ConfigMap, verify the chain and compare keys (adapters/x509.h); this
// takes those facts and the wall clock's `now`. It is called on every wake
// from suspend, not only from a timer: Asio's timers stop while the machine
// sleeps, so only the wall clock can say that three days have passed.
//
// The issuer, first state that applies:
//   kUnreadable    no issuer facts (the Secret or ConfigMap could not be read
//                  or parsed): report, do not rotate; there is nothing to
//                  judge, and writing over what we could not read is a guess.
//   kNotYetValid   now < notBefore: report, do not rotate. It wins over the
//                  faults below because it says the node's clock is probably
//                  behind, and an issuer minted by a wrong clock carries wrong
//                  dates (one minted a year in the past is already expired).
//                  With clock_confirmed (the control plane's clock agrees
//                  with `now`) it comes after kKeyMismatch and
//                  kUnsupportedKey, and one not valid for more than
//                  kClockTolerance yet was minted by a clock that was ahead:
//                  it is rotated as an expired one would be.
//   kKeyMismatch   the key in the Secret is not the certificate's: report, do
//                  not rotate. A Secret that disagrees with itself is most
//                  likely someone's edit in progress; writing over it would
//                  lose their work (`tetherctl certs rotate` replaces it).
//   kUnsupportedKey the issuer's key is not ECDSA P-256, the one linkerd's
//                  identity controller takes (`linkerd check` says so too):
//                  report, do not rotate, for the same reason.
//   kBrokenChain   the issuer does not chain to any anchor of the bundle:
//                  rotate (a new issuer signed by the anchor key fixes it;
//                  whether the local anchor key belongs to a root of the bundle
//                  is the rotation's check, not this policy's).
//   kExpired       now > notAfter (notAfter itself is still valid): rotate.
//   kRenewSoon     less than rotate_before, or less than a third of its
//                  lifetime, left (exactly that much left is still kValid):
//                  rotate.
//   kValid
//
// The trust anchor judged is the one the issuer chains to; when the chain is
// broken (or unknown), the bundle's earliest-expiring one. Anchors are judged
// by their end only: kExpired (now > notAfter), kExpiring (less than
// anchor_warn_before left), kValid; kUnknown with no anchors at all.
//
// rotate: the issuer state asks for it AND the anchor is kValid or
// kExpiring (or the signer's anchor, signer_not_after, has not ended), except for a kRenewSoon
// issuer that already ends with its anchor when the signer's anchor ends no later (a new one would
// be capped at the same end, and due again at once; under a newer anchor whose key signs here, it
// would not). Under an expired anchor a new issuer is as useless as the old one, and tetherd never
// invents an anchor (it is shared by every linked cluster); with no anchor known it cannot tell
// what a new issuer would chain to.
//
// valid (the CertificatesValid condition) is true only for kValid + kValid.
// reason: TrustAnchorExpired or TrustAnchorExpiring whenever the anchor is
// bad, else the issuer's (IssuerValid, IssuerExpiringSoon, IssuerExpired,
// IssuerNotYetValid, IssuerChainBroken, IssuerKeyMismatch,
// IssuerKeyUnsupported, IssuerUnreadable).
// When both are bad the message says both, the anchor first. Dates in
// messages are RFC 3339 UTC.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/certificate.h"
#include "agent/core/clock.h"

namespace tetherd {

enum class IssuerState {
  kValid,
  kRenewSoon,
  kExpired,
  kNotYetValid,
  kBrokenChain,
  kKeyMismatch,
  kUnsupportedKey,
  kUnreadable
};
enum class AnchorState { kValid, kExpiring, kExpired, kUnknown };

std::string_view to_string(IssuerState state);  // "Valid", "RenewSoon", ...
std::string_view to_string(AnchorState state);

struct IssuerFacts {
  std::optional<CertificateInfo> issuer;  // nullopt: treated as kUnreadable
  std::vector<CertificateInfo> anchors;   // the trust bundle
  // Index into `anchors` of the one the issuer chains to; nullopt (or out of
  // range): the chain is broken, and chain_error says how.
  std::optional<std::size_t> chains_to;
  std::string chain_error;
  bool key_matches = true;
  // Non-empty: the Secret or the ConfigMap could not be read or parsed.
  std::string unreadable;
  // The end of the anchor whose key signs new issuers here (the key file's
  // root in the bundle), when there is one.
  std::optional<WallTime> signer_not_after;
  // The control plane's clock (its Date) agrees with `now`, within
  // kClockTolerance: an issuer not valid for more than that was minted by
  // a clock that was ahead, not judged by one now behind.
  bool clock_confirmed = false;
};

struct IssuerPolicy {
  Duration rotate_before = std::chrono::hours(720);
  Duration anchor_warn_before = std::chrono::hours(720);
};

struct IssuerVerdict {
  IssuerState issuer = IssuerState::kUnreadable;
  AnchorState anchor = AnchorState::kUnknown;
  bool rotate = false;
  std::optional<WallTime> issuer_expires;
  std::optional<WallTime> anchor_expires;
  bool valid = false;  // condition CertificatesValid
  std::string reason;  // CamelCase, see above
  std::string message;

  bool operator==(const IssuerVerdict&) const = default;
};

IssuerVerdict judge_issuer(const IssuerFacts& facts, WallTime now, const IssuerPolicy& policy = {});

// The end of a new issuer's validity: now + validity, but never past the
// anchor's end (a chain cannot outlive its root: proxies would reject it).
WallTime issuer_not_after(WallTime now, Duration validity, WallTime anchor_not_after);

}  // namespace tetherd
