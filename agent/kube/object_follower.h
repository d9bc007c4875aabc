#pragma once
// One named object, followed as client-go's informers follow a collection,
// narrowed to its name: list and watch with fieldSelector metadata.name=NAME
// (a kube::Reflector: 410 relists, backoff with jitter, a redial on
// resume). RBAC can grant exactly that: get, list and watch with
// resourceNames [NAME] allow a list or watch that pins the name this way.
//
// The caller hears of every change of what is known: the object (or that it
// does not exist) and the last failure. A failure keeps the object last
// seen: a control plane that is away has not deleted it.

#include <functional>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "agent/kube/reflector.h"

namespace tetherd::kube {

struct FollowedObject {
  std::optional<boost::json::object> object;  // nullopt: absent, or not read yet
  bool read = false;                          // the server has answered at least once
  std::string error;                          // the last failure; "" since a success

  bool operator==(const FollowedObject&) const = default;
};

class ObjectFollower final : private ReflectorHandler {
 public:
  // `collection`: e.g. collection_path(kSecrets, "tetherd-system").
  // `changed` hears what is known after each change (never after stop()).
  ObjectFollower(KubeClient& client, std::string collection, std::string name, RetryContext retry,
                 std::function<void(const FollowedObject&)> changed, WatchOptions watch = {});

  // Runs until stop(). The follower must outlive it.
  boost::asio::awaitable<void> run() { return reflector_.run(); }
  // Ends run(); no change is reported after it.
  void stop();
  void resumed() { reflector_.resumed(); }
  // The session on the same server is watching again: stop backing off.
  void server_back() { reflector_.server_back(); }
  void suspending() { reflector_.suspending(); }

  const std::string& name() const { return name_; }
  const FollowedObject& seen() const { return seen_; }

 private:
  void on_list(const std::vector<boost::json::object>& items,
               const std::string& resource_version) override;
  void on_event(const WatchEvent& event) override;
  void on_error(const ApiError& error, Duration retry_in) override;
  void on_state(SessionState state) override;
  void set(FollowedObject next);

  std::string name_;
  std::function<void(const FollowedObject&)> changed_;
  Reflector reflector_;
  FollowedObject seen_;
  bool stopped_ = false;
};

}  // namespace tetherd::kube
