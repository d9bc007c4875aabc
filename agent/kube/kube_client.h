#pragma once
// The Kubernetes verbs tetherd uses, over HttpsClient: get, list, create,
// update (PUT with the resourceVersion read), merge patch (also of /status)
// and watch. Bodies are Boost.JSON; every error is an ApiError decoded from
// the server's Status.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "agent/kube/https_client.h"
#include "agent/kube/watch_decoder.h"

namespace tetherd::kube {

// A resource type: group "" is the core API (/api/v1).
struct Resource {
  std::string group;
  std::string version;
  std::string plural;
};

inline const Resource kEdgeNodes{"tetherd.io", "v1alpha1", "edgenodes"};
inline const Resource kLeases{"coordination.k8s.io", "v1", "leases"};
inline const Resource kSecrets{"", "v1", "secrets"};
inline const Resource kConfigMaps{"", "v1", "configmaps"};
inline const Resource kEvents{"", "v1", "events"};
inline const Resource kDeployments{"apps", "v1", "deployments"};

std::string collection_path(const Resource& r, std::string_view namespace_);
std::string object_path(const Resource& r, std::string_view namespace_, std::string_view name,
                        std::string_view subresource = {});

struct ObjectList {
  std::string resource_version;
  std::vector<boost::json::object> items;
  std::size_t remaining_items = 0;  // metadata.remainingItemCount, with a limit
  bool more = false;                // metadata.continue: items past the limit
};

struct ListOptions {
  std::string field_selector;  // e.g. "spec.nodeName=edge-1"
  std::string label_selector;  // e.g. "linkerd.io/control-plane-ns"
  // At most this many items (0: all); a server that pages says how many it
  // left out in remaining_items, and the rest are not read.
  std::size_t limit = 0;
};

struct WatchOptions {
  std::string resource_version;  // where to start: the list's, or the last event's
  std::string field_selector;    // e.g. "metadata.name=node-a"
  // timeoutSeconds: the server ends the watch (a Reflector draws between
  // this and twice it).
  std::chrono::seconds timeout{300};
  bool bookmarks = true;
  // A watch that completes no event for this long is dead. It must exceed
  // the server's bookmark period (about a minute for kube-apiserver).
  Duration idle = std::chrono::seconds(150);
};

struct WatchEnd {
  // The server said the resourceVersion is too old (410 Gone, or an ERROR
  // event with code 410): the caller must list again.
  bool expired = false;
  std::string resource_version;  // the last one seen, to resume from
  std::size_t events = 0;
};

class KubeClient {
 public:
  explicit KubeClient(HttpsClient& http,
                      std::size_t max_watch_event_bytes = kDefaultMaxWatchEventBytes);

  boost::asio::awaitable<ApiResult<boost::json::object>> get(std::string path);
  boost::asio::awaitable<ApiResult<ObjectList>> list(std::string collection,
                                                     std::string field_selector = {});
  boost::asio::awaitable<ApiResult<ObjectList>> list(std::string collection, ListOptions options);
  boost::asio::awaitable<ApiResult<boost::json::object>> create(std::string collection,
                                                                boost::json::object object);
  // Optimistic concurrency: `object` must carry metadata.resourceVersion as
  // read; a 409 Conflict means read again and decide again.
  boost::asio::awaitable<ApiResult<boost::json::object>> update(std::string path,
                                                                boost::json::object object);
  boost::asio::awaitable<ApiResult<boost::json::object>> merge_patch(std::string path,
                                                                     boost::json::object patch);

  using EventHandler = std::function<void(const WatchEvent&)>;
  // Streams events to `on_event` until the server ends the watch (timeout),
  // says 410, or something fails. BOOKMARKs are passed on too (they only
  // move the resourceVersion); ERROR events other than 410 end the watch
  // with their Status as the error.
  // `on_open` hears that the server accepted the watch, before any event.
  // `on_cut`: HttpsClient::stream's, to end this watch alone.
  boost::asio::awaitable<ApiResult<WatchEnd>> watch(std::string collection, WatchOptions options,
                                                    EventHandler on_event,
                                                    std::function<void()> on_open = {},
                                                    HttpsClient::Cut on_cut = {});

  HttpsClient& http() { return http_; }

 private:
  boost::asio::awaitable<ApiResult<boost::json::object>> call(HttpRequest request);

  HttpsClient& http_;
  std::size_t max_watch_event_bytes_;
};

// Query-string encoding of one parameter value.
std::string query_escape(std::string_view value);

}  // namespace tetherd::kube
