#pragma once
// What the session does with its EdgeNode when it hears of it (an item of
// the list, a watch event): the decision alone, pure; the Tether carries it
// out (agent/app/tether_spec.cpp).
//
//   kNothing   the spec acted on already, e.g. the echo of our own status
//              write (every write comes back as MODIFIED with the same
//              spec); an apply that failed is tried again instead;
//   kInvalid   the object does not decode: refused whole, the rules in
//              force kept (FirewallInSync=False, InvalidSpec);
//   kInForce   the firewall it asks for is the one wanted and in force (the
//              saved state applied at boot, an update of another part of
//              the spec): Applied, nothing for the kernel to do;
//   kJoin      the firewall it asks for is being applied: that apply's
//              answer speaks for this spec;
//   kRefused   the node's own limits refuse it (firewall.maxSources,
//              minPrefixLength, ports): kept, judged again after a reload;
//   kApply     apply it.
//
// A spec.linkerd.rotate that changed is the certificates' trigger, whatever
// becomes of the firewall part (not for an object that does not decode).

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "agent/core/desired_sources.h"
#include "agent/core/edge_node.h"
#include "agent/core/result.h"

namespace tetherd {

enum class SpecAction { kNothing, kInvalid, kInForce, kJoin, kRefused, kApply };
std::string_view to_string(SpecAction action);

// What the session knows when an EdgeNode arrives.
struct SpecIntakeInput {
  const boost::json::object& object;    // the EdgeNode as received
  const boost::json::value* last_spec;  // the spec last acted on; null: none yet
  bool apply_failed = false;            // that spec's apply failed
  std::string_view rotate;              // spec.linkerd.rotate as last seen
  // The firewall keeper's view: what it was last asked for, what is in the
  // kernel, whether an apply is in flight, and whether the node's own
  // limits take a set of sources.
  const firewall::DesiredSources& wanted;
  const firewall::DesiredSources& in_force;
  bool busy = false;
  std::function<Result<void>(const firewall::DesiredSources&)> fits;
};

struct SpecDecision {
  SpecAction action = SpecAction::kNothing;
  // Decoded: every action but kNothing and kInvalid.
  std::optional<EdgeNodeSpec> spec;
  // status.observedGeneration: the spec's, or an undecodable object's own
  // metadata.generation when it has one.
  std::optional<std::int64_t> generation;
  std::string error;            // kInvalid, kRefused: why
  bool rotate_changed = false;  // spec.linkerd.rotate differs from the one last seen
};

SpecDecision decide_spec(const SpecIntakeInput& in);

}  // namespace tetherd
