#include "agent/kube/object_follower.h"

namespace tetherd::kube {
namespace json = boost::json;

namespace {

bool named(const json::object& object, std::string_view name) {
  const json::value* metadata = object.if_contains("metadata");
  const json::value* n =
      metadata && metadata->is_object() ? metadata->get_object().if_contains("name") : nullptr;
  return n && n->is_string() && n->get_string() == name;
}

}  // namespace

ObjectFollower::ObjectFollower(KubeClient& client, std::string collection, std::string name,
                               RetryContext retry,
                               std::function<void(const FollowedObject&)> changed,
                               WatchOptions watch)
    : name_(std::move(name)),
      changed_(std::move(changed)),
      reflector_(client, std::move(collection), "metadata.name=" + name_, std::move(watch),
                 std::move(retry), *this) {}

void ObjectFollower::stop() {
  stopped_ = true;
  // The client is the other follower's too (Tether::follow_objects_with):
  // closing its connections would cut that one's watch. This one's watch
  // is cut alone (Reflector::stop); a list in flight ends by itself.
  reflector_.stop(/*close_connections=*/false);
}

void ObjectFollower::set(FollowedObject next) {
  if (stopped_ || next == seen_) return;
  seen_ = std::move(next);
  if (changed_) changed_(seen_);
}

void ObjectFollower::on_list(const std::vector<json::object>& items, const std::string&) {
  // The field selector asks for one name; a server or proxy that ignores it
  // sends others, which are not ours.
  FollowedObject next;
  next.read = true;
  for (const auto& item : items) {
    if (named(item, name_)) next.object = item;
  }
  set(std::move(next));
}

void ObjectFollower::on_event(const WatchEvent& event) {
  using T = WatchEventType;
  if (event.type != T::kAdded && event.type != T::kModified && event.type != T::kDeleted) return;
  if (!named(event.object, name_)) return;
  FollowedObject next;
  next.read = true;
  if (event.type != T::kDeleted) next.object = event.object;
  set(std::move(next));
}

void ObjectFollower::on_error(const ApiError& error, Duration) {
  FollowedObject next = seen_;
  next.error = describe(error);
  set(std::move(next));
}

void ObjectFollower::on_state(SessionState state) {
  // A watch the server accepted again: the failure is over.
  if (state != SessionState::kWatching || seen_.error.empty()) return;
  FollowedObject next = seen_;
  next.error.clear();
  set(std::move(next));
}

}  // namespace tetherd::kube
