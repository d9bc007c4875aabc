#include "agent/core/client_cert.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "agent/core/duration.h"
#include "agent/core/kube_time.h"

namespace tetherd {

WallTime renewal_point(WallTime not_before, WallTime not_after, double u) {
  if (not_after <= not_before) return not_before;
  u = std::clamp(u, 0.0, 1.0);
  // In parts per million, in integers: exact at the window's ends, and no
  // overflow for lives up to centuries.
  constexpr std::int64_t kMillion = 1'000'000;
  const auto ppm = static_cast<std::int64_t>(
      std::llround((kRenewFrom + (kRenewUntil - kRenewFrom) * u) * kMillion));
  const std::int64_t life = (not_after - not_before).count();
  const std::int64_t offset = life / kMillion * ppm + life % kMillion * ppm / kMillion;
  return not_before + WallTime::duration(offset);
}

std::string_view to_string(ClientCertState state) {
  switch (state) {
    case ClientCertState::kValid:
      return "Valid";
    case ClientCertState::kRenewDue:
      return "RenewalDue";
    case ClientCertState::kExpired:
      return "Expired";
    case ClientCertState::kNotYetValid:
      return "NotYetValid";
  }
  return "Unknown";
}

ClientCertVerdict judge_client_cert(WallTime now, WallTime not_before, WallTime not_after,
                                    WallTime renew_at, bool clock_synchronized) {
  ClientCertVerdict v;
  v.left = std::chrono::duration_cast<Duration>(not_after - now);
  if (now >= not_after) {
    v.state = ClientCertState::kExpired;
    v.renew = clock_synchronized;
    v.message = "the client certificate expired at " + format_kube_time(not_after) +
                (clock_synchronized ? ""
                                    : " by this node's clock, which is not synchronized: not "
                                      "renewed until it is");
  } else if (now < not_before) {
    v.state = ClientCertState::kNotYetValid;
    v.message = "the client certificate is valid from " + format_kube_time(not_before) +
                ", after this node's clock (" + format_kube_time(now) + ")";
  } else if (now >= renew_at) {
    v.state = ClientCertState::kRenewDue;
    v.renew = clock_synchronized;
    v.message = "the client certificate expires at " + format_kube_time(not_after) +
                ": renewal due since " + format_kube_time(renew_at);
  } else {
    v.message = "the client certificate is valid until " + format_kube_time(not_after) +
                ", renewed from " + format_kube_time(renew_at);
  }
  return v;
}

Result<void> check_issued(const CertificateInfo& issued, bool key_matches,
                          const AskedCertificate& asked, WallTime now) {
  if (issued.subject_cn != asked.common_name)
    return make_error("the signer issued a certificate for CN=" + issued.subject_cn +
                      ", not CN=" + asked.common_name);
  if (!key_matches) return make_error("the signer issued a certificate for another key");
  if (issued.is_ca) return make_error("the signer issued a CA certificate");
  if (!issued.client_auth)
    return make_error(
        "the signer issued a certificate whose extended key usage leaves out "
        "clientAuth: the API server would refuse it");
  if (now < issued.not_before)
    return make_error("the issued certificate is valid from " +
                      format_kube_time(issued.not_before) + ", after this node's clock (" +
                      format_kube_time(now) + ")");
  if (now >= issued.not_after)
    return make_error("the issued certificate expired at " + format_kube_time(issued.not_after));
  if (asked.life > Duration::zero()) {
    const Duration least = std::max<Duration>(asked.life / 2, std::chrono::minutes(10));
    // The validity period, not what is left of it by this node's clock:
    // a clock that is wrong must not make a right certificate look short.
    const Duration life =
        std::chrono::duration_cast<Duration>(issued.not_after - issued.not_before);
    if (life < std::min(least, asked.life))
      return make_error("the issued certificate lives " + format_duration(life) + ", not the " +
                        format_duration(asked.life) + " asked for");
  }
  return {};
}

}  // namespace tetherd
