#pragma once
// Kubernetes' two time formats (apimachinery's metav1.Time and MicroTime):
//   Time:      RFC 3339 in UTC, whole seconds    "2026-11-21T09:30:05Z"
//   MicroTime: RFC 3339 in UTC, six decimals     "2026-11-21T09:30:05.123456Z"
// A Lease's renewTime and acquireTime are MicroTime (the API server refuses
// anything else there); a condition's lastTransitionTime is Time.

#include <optional>
#include <string>
#include <string_view>

#include "agent/core/clock.h"

namespace tetherd {

std::string format_kube_time(WallTime t);
std::string format_kube_micro_time(WallTime t);

// RFC 3339 as servers write it: either form above, or with a numeric offset
// ("+02:00"), up to nine decimals. nullopt for anything else (an empty
// string included: an Event's eventTime is often null).
std::optional<WallTime> parse_kube_time(std::string_view text);

// HTTP's Date header (RFC 9110's IMF-fixdate, the one form servers send):
// "Sun, 06 Nov 1994 08:49:37 GMT". nullopt for anything else, a date that
// does not exist or a weekday that is not the date's included.
std::optional<WallTime> parse_http_date(std::string_view text);

}  // namespace tetherd
