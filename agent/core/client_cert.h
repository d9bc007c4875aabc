#pragma once
// The node's own client certificate over its life (issue 21): when to
// renew it, whether it may be used, and whether a certificate a signer
// issued is the one asked for. Pure: times and facts are passed in.
//
// Renewal as client-go's certificate manager does it for the kubelet: at a
// uniformly random point between 70% and 90% of the certificate's life, so
// a fleet enrolled together does not renew together. The point is a wall
// time: a machine asleep past it renews on waking, never later.

#include <chrono>
#include <string>
#include <string_view>

#include "agent/core/certificate.h"
#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

inline constexpr double kRenewFrom = 0.7;
inline constexpr double kRenewUntil = 0.9;

// `u` in [0, 1) (a uniform draw): 0 gives 70% of the life, just under 1
// gives 90%. A certificate with no life (not_after <= not_before) renews at
// its not_before.
WallTime renewal_point(WallTime not_before, WallTime not_after, double u);

enum class ClientCertState {
  kValid,        // in force, renewal not yet due
  kRenewDue,     // in force, past its renewal point: renew now
  kExpired,      // past not_after: never used; renew with a bootstrap credential
  kNotYetValid,  // before not_before: the local clock is behind, or the signer's ahead
};
std::string_view to_string(ClientCertState state);

struct ClientCertVerdict {
  ClientCertState state = ClientCertState::kValid;
  Duration left{};  // until not_after (negative when expired)
  // Whether renewing now is right. Not while the clock is known to be
  // wrong (ClockSynchronized False) and the certificate only looks bad
  // because of it: a clock years ahead would make every certificate look
  // expired and renew them in a storm. An expired certificate is still not
  // used, whatever the clock.
  bool renew = false;
  std::string message;  // one line for the condition and the journal
};

ClientCertVerdict judge_client_cert(WallTime now, WallTime not_before, WallTime not_after,
                                    WallTime renew_at, bool clock_synchronized);

// What a node asked the signer for.
struct AskedCertificate {
  std::string common_name;  // "tetherd:NODE"
  Duration life{};          // spec.expirationSeconds; zero: the signer's choice
};

// Whether `issued` (for a key that does or does not match ours) is what was
// asked for, at `now`: the common name, our key, not a CA, in force now,
// and, when a life was asked for, a validity period no shorter than it
// allows (a signer may cap it: at least half of what was asked, and at
// least 10 minutes, the API's minimum). The error says which and why.
Result<void> check_issued(const CertificateInfo& issued, bool key_matches,
                          const AskedCertificate& asked, WallTime now);

}  // namespace tetherd
