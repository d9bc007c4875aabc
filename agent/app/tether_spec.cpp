// The EdgeNode's spec taken in: the decision is core/spec_intake.h's; here
// it is carried out (the firewall keeper's apply, FirewallInSync's verdict,
// the journal) and a missing EdgeNode is noted for the status writer.
#include "agent/app/tether.h"
#include "agent/core/spec_intake.h"

namespace tetherd {

namespace json = boost::json;

namespace {

bool named(const json::object& object, std::string_view name) {
  const auto* metadata = object.if_contains("metadata");
  const auto* n =
      metadata && metadata->is_object() ? metadata->as_object().if_contains("name") : nullptr;
  return n && n->is_string() && n->as_string() == name;
}

}  // namespace

void Tether::on_list(const std::vector<json::object>& items, const std::string&) {
  // The field selector asks for our EdgeNode alone; anything else is not
  // ours to act on.
  for (const auto& item : items) {
    if (named(item, node_)) {
      take(item);
      return;
    }
  }
  edge_node_missing("there is no EdgeNode " + namespace_ + "/" + node_);
}

void Tether::on_event(const kube::WatchEvent& event) {
  // Likewise for the watch: another node's EdgeNode (a server or proxy that
  // ignores the field selector) is neither applied nor counted as ours
  // deleted.
  using T = kube::WatchEventType;
  const bool about_an_object =
      event.type == T::kAdded || event.type == T::kModified || event.type == T::kDeleted;
  if (about_an_object && !named(event.object, node_)) return;
  switch (event.type) {
    case kube::WatchEventType::kAdded:
    case kube::WatchEventType::kModified:
      take(event.object);
      break;
    case kube::WatchEventType::kDeleted:
      edge_node_missing("the EdgeNode " + namespace_ + "/" + node_ + " was deleted");
      break;
    default:
      break;  // bookmarks only move the resourceVersion
  }
}

void Tether::take(const json::object& object) {
  SpecDecision d = decide_spec(
      {.object = object,
       .last_spec = last_spec_ ? &*last_spec_ : nullptr,
       .apply_failed = apply_failed_,
       .rotate = rotate_,
       .wanted = firewall_.wanted(),
       .in_force = firewall_.in_force(),
       .busy = firewall_.busy(),
       .fits = [this](const firewall::DesiredSources& asked) { return firewall_.check(asked); }});
  if (d.action == SpecAction::kNothing) {
    missing_ = false;
    return;
  }
  const json::value* spec_json = object.if_contains("spec");
  last_spec_ = spec_json ? *spec_json : json::value(nullptr);
  ++judged_;
  apply_failed_ = false;
  rejected_.reset();
  if (d.generation) status_.observed_generation = *d.generation;
  if (d.action == SpecAction::kInvalid) {
    ++stats_.specs_rejected;
    log_.warning("edgenode-rejected",
                 "EdgeNode " + namespace_ + "/" + node_ +
                     " rejected, the rules in force are kept: " + d.error,
                 {{"CONTROL_PLANE", server_}});
    set_firewall(ConditionStatus::kFalse, "InvalidSpec", d.error);
    return;
  }
  missing_ = false;
  const EdgeNodeSpec& spec = *d.spec;
  if (d.rotate_changed) {
    // The certificates' trigger, whatever becomes of the firewall part.
    rotate_ = spec.rotate;
    changed();
  }
  // Likewise the objects that bring linkerd's issuer and bundle.
  if (spec.linkerd != cloud_.refs) follow_refs(spec.linkerd);
  const std::string generation = "generation " + std::to_string(spec.generation);
  const std::string applied = std::to_string(spec.firewall.sources.size()) +
                              " sources from the control plane (" + generation + ")";
  switch (d.action) {
    case SpecAction::kInForce:
      set_firewall(ConditionStatus::kTrue, "Applied", applied);
      return;
    case SpecAction::kJoin:
      // The apply in flight is this spec's too: its answer speaks for it.
      speaks_for_ = judged_;
      applied_text_ = applied;
      return;
    case SpecAction::kRefused:
      ++stats_.specs_rejected;
      rejected_ = object;
      log_.warning("edgenode-rejected",
                   "EdgeNode " + namespace_ + "/" + node_ + " (" + generation +
                       ") rejected, the rules in force are kept: " + d.error,
                   {{"CONTROL_PLANE", server_}});
      set_firewall(ConditionStatus::kFalse, "InvalidSpec", d.error);
      return;
    default:
      break;  // kApply
  }
  // Applied off the event loop (ufw takes a program run per rule): the
  // condition says so meanwhile, sent with the next status write (the
  // apply's end pokes it).
  quiet_ = true;
  set_firewall(ConditionStatus::kUnknown, "Applying", "applying " + applied);
  quiet_ = false;
  const std::uint64_t launched = ++applies_launched_;
  authority_ = launched;
  speaks_for_ = judged_;
  applied_text_ = applied;
  firewall_.update(spec.firewall,
                   [this, launched, alive = std::weak_ptr<int>(alive_)](Result<void> r) {
                     if (alive.expired() || stopped_) return;
                     // Only the latest apply answers, and only for the spec
                     // judged last: a newer one (rejected, say) speaks for
                     // the condition now, and this answer only counts.
                     if (launched != authority_ || speaks_for_ != judged_) {
                       ++(r ? stats_.specs_applied : stats_.specs_rejected);
                       return;
                     }
                     const std::string applied = applied_text_;
                     if (!r) {
                       ++stats_.specs_rejected;
                       apply_failed_ = true;
                       set_firewall(ConditionStatus::kFalse, "ApplyFailed", r.error().message);
                       return;
                     }
                     ++stats_.specs_applied;
                     set_firewall(ConditionStatus::kTrue, "Applied", applied);
                     changed();
                   });
}

void Tether::firewall_policy_changed() {
  if (!rejected_ || stopped_) return;
  const json::object object = std::move(*rejected_);
  rejected_.reset();
  last_spec_.reset();  // the same spec, judged anew
  take(object);
}

void Tether::edge_node_missing(std::string_view why) {
  // A spec of an EdgeNode that is gone is not judged again on a reload.
  rejected_.reset();
  if (!missing_) {
    log_.notice("edgenode-missing",
                std::string(why) + "; creating it with the sources in force, which stay applied",
                {{"CONTROL_PLANE", server_}, {"NODE", node_}});
  }
  missing_ = true;
  poke_status();
}

}  // namespace tetherd
