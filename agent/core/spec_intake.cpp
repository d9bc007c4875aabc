#include "agent/core/spec_intake.h"

namespace tetherd {

namespace json = boost::json;

std::string_view to_string(SpecAction action) {
  switch (action) {
    case SpecAction::kNothing:
      return "nothing";
    case SpecAction::kInvalid:
      return "invalid";
    case SpecAction::kInForce:
      return "in-force";
    case SpecAction::kJoin:
      return "join";
    case SpecAction::kRefused:
      return "refused";
    case SpecAction::kApply:
      return "apply";
  }
  return "unknown";
}

namespace {

std::optional<std::int64_t> generation_of(const json::object& object) {
  const auto* metadata = object.if_contains("metadata");
  if (!metadata || !metadata->is_object()) return std::nullopt;
  const auto* generation = metadata->as_object().if_contains("generation");
  if (!generation || !generation->is_int64() || generation->as_int64() < 0) return std::nullopt;
  return generation->as_int64();
}

}  // namespace

SpecDecision decide_spec(const SpecIntakeInput& in) {
  SpecDecision d;
  const json::value* spec_json = in.object.if_contains("spec");
  const json::value none(nullptr);
  const json::value& spec_now = spec_json ? *spec_json : none;
  if (in.last_spec && *in.last_spec == spec_now && !in.apply_failed) return d;

  auto spec = decode_edge_node(in.object);
  if (!spec) {
    d.action = SpecAction::kInvalid;
    d.generation = generation_of(in.object);
    d.error = spec.error().message;
    return d;
  }
  d.generation = spec->generation;
  d.rotate_changed = spec->rotate != in.rotate;
  d.spec = std::move(*spec);
  const firewall::DesiredSources& asked = d.spec->firewall;
  if (asked == in.wanted) {
    d.action = !in.busy || asked == in.in_force ? SpecAction::kInForce : SpecAction::kJoin;
    return d;
  }
  if (in.fits) {
    if (auto fits = in.fits(asked); !fits) {
      d.action = SpecAction::kRefused;
      d.error = fits.error().message;
      return d;
    }
  }
  d.action = SpecAction::kApply;
  return d;
}

}  // namespace tetherd
