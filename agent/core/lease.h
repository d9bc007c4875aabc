#pragma once
// The node's heartbeat object: a coordination.k8s.io/v1 Lease named
// tetherd-<node>, shaped as kubelet's node leases are (holderIdentity,
// leaseDurationSeconds, renewTime as MicroTime). Pure: what to send, given
// what the server last said and `now`; the I/O is kube/lease_heartbeat.h.

#include <chrono>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "agent/core/clock.h"
#include "agent/core/result.h"

namespace tetherd {

struct LeaseSpec {
  std::string name;
  std::string namespace_;
  std::string holder;  // holderIdentity: the node's name
  std::chrono::seconds duration{40};
};

// "tetherd-" + node: the name the shipped RBAC lets the node get and update.
std::string lease_name(std::string_view node);

// A Lease to create: we hold it from `now`.
boost::json::object new_lease(const LeaseSpec& spec, WallTime now);

// `current` (as the server returned it) renewed at `now`. Its metadata is
// kept as it is, resourceVersion above all: the PUT is refused with 409 if
// someone wrote the Lease since. When the holder changes, acquireTime
// becomes `now` and leaseTransitions counts one more, as client-go's
// leader election does. An error when `current` is not a Lease (it came
// from the network: a proxy or a wrong object must not crash us).
Result<boost::json::object> renewed_lease(boost::json::object current, const LeaseSpec& spec,
                                          WallTime now);

}  // namespace tetherd
