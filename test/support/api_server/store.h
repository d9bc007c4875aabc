#pragma once
// The objects behind the test API server, as etcd plus the registry
// strategies keep them for kube-apiserver: one resourceVersion counter for
// every write (an etcd revision), server-owned metadata (uid,
// creationTimestamp, generation, resourceVersion), the status subresource
// rules, optimistic concurrency, RFC 7386 merge patch, field and label
// selectors, and a bounded history of events so a watch can resume from a
// resourceVersion. Thread-safe: tests write directly while the server's
// thread serves requests.

#include <chrono>
#include <compare>
#include <cstdint>
#include <ctime>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "test/support/api_server/label_selector.h"
#include "test/support/api_server/resources.h"
#include "test/support/api_server/status.h"

namespace tetherd::test::apiserver {

// RFC 7386: objects merge member by member, null deletes, anything else
// replaces.
boost::json::value merge_patch(const boost::json::value& target, const boost::json::value& patch);

enum class EventType { kAdded, kModified, kDeleted };

struct ObjectKey {
  std::string resource;  // group_resource()
  std::string namespace_;
  std::string name;
  auto operator<=>(const ObjectKey&) const = default;
};

// fieldSelector=metadata.name=x,metadata.namespace!=y (=, == and !=), and
// the type's own field labels (a pod's spec.nodeName, status.phase).
struct FieldSelector {
  struct Term {
    std::string field;  // metadata.name, metadata.namespace or one of the type's field_labels
    bool negated = false;
    std::string value;
  };
  std::vector<Term> terms;

  // A field the object lacks is "", as kube-apiserver's field sets have it.
  bool matches(const ObjectKey& key, const boost::json::object& object) const;
  // The name a "metadata.name=x" term pins, which RBAC's resourceNames can allow.
  std::optional<std::string> exact_name() const;
};
Expected<FieldSelector> parse_field_selector(std::string_view text, const ResourceType& type);

struct StoreEvent {
  EventType type;
  ObjectKey key;
  std::uint64_t resource_version;
  std::string line;  // the watch event: {"type":...,"object":...} and "\n"
  boost::json::object object;
  std::optional<boost::json::object> previous;  // the state before, none when created
};

// {"type":...,"object":...} and "\n", as a watch sends it.
std::string watch_line(EventType type, const boost::json::object& object);

struct WatchFilter {
  const ResourceType* type = nullptr;
  std::string namespace_;
  FieldSelector selector;
  bool all_namespaces = false;  // every namespace, not `namespace_` alone
  LabelSelector labels;

  // The type and namespace: where the selectors look.
  bool covers(const ObjectKey& key) const;
  bool matches(const ObjectKey& key, const boost::json::object& object) const;
  // What a watch with this filter sends for `event`, as kube-apiserver's
  // watch cache does: nothing when neither the object nor its previous state
  // match; ADDED for an object that starts matching; DELETED, with its
  // previous state at the event's resourceVersion, for one that stops.
  std::optional<std::string> event_line(const StoreEvent& event) const;
};

enum class WriteScope { kObject, kStatus };

struct ListResult {
  std::vector<boost::json::object> items;
  std::uint64_t resource_version;
};

struct WatchStart {
  std::uint64_t id;                  // for unwatch()
  std::vector<std::string> initial;  // event lines to send first
  std::uint64_t resource_version;    // events up to here are in `initial`
};

// Called under the store's lock with every event (of every resource): it
// must only queue the event somewhere, never call back into the store.
using EventSink = std::function<void(std::shared_ptr<const StoreEvent>)>;

// The current time in UTC, in strftime's `format` (at most 63 bytes).
std::string utc_now(const char* format, std::chrono::seconds offset = {});
// `t` (seconds since the epoch) the same way: a simulated clock's time.
std::string utc_time(std::time_t t, const char* format);
// ... as metadata.creationTimestamp and conditions have it.
inline std::string rfc3339_now() {
  return utc_now("%Y-%m-%dT%H:%M:%SZ");
}

class Store {
 public:
  explicit Store(std::size_t history_limit);

  Expected<boost::json::object> create(const ResourceType& type, const std::string& namespace_,
                                       boost::json::object object);
  Expected<boost::json::object> get(const ResourceType& type, const std::string& namespace_,
                                    const std::string& name) const;
  // `exact`: the state at that resourceVersion (410 when older than the
  // history); otherwise the current state.
  Expected<ListResult> list(const WatchFilter& filter, std::optional<std::uint64_t> exact) const;
  // `object` has passed the URL checks (name, namespace). Its
  // metadata.resourceVersion, when set, must be the current one.
  Expected<boost::json::object> update(const ResourceType& type, const std::string& namespace_,
                                       const std::string& name, boost::json::object object,
                                       WriteScope scope);
  Expected<boost::json::object> patch(const ResourceType& type, const std::string& namespace_,
                                      const std::string& name, const boost::json::value& patch,
                                      WriteScope scope);
  Expected<boost::json::object> remove(const ResourceType& type, const std::string& namespace_,
                                       const std::string& name,
                                       std::optional<std::string> precondition_version);

  // From `from` (exclusive) through the history, or, without `from` (or 0),
  // synthetic ADDED events for the current objects. 410 Expired when `from`
  // is older than the history kept.
  Expected<WatchStart> watch(const WatchFilter& filter, std::optional<std::uint64_t> from,
                             EventSink sink);
  void unwatch(std::uint64_t id);

  void compact();
  std::uint64_t resource_version() const;

 private:
  Expected<boost::json::object> write_locked(const ResourceType& type, const ObjectKey& key,
                                             const boost::json::object& old,
                                             boost::json::object next, WriteScope scope);
  boost::json::object commit_locked(EventType type, const ObjectKey& key,
                                    boost::json::object object,
                                    std::optional<boost::json::object> previous);
  std::string new_uid_locked();

  mutable std::mutex mutex_;
  std::size_t history_limit_;
  std::uint64_t revision_;
  std::uint64_t compacted_;  // watches and exact lists from before this get 410
  std::map<ObjectKey, boost::json::object> objects_;
  std::deque<std::shared_ptr<const StoreEvent>> history_;
  std::map<std::uint64_t, EventSink> sinks_;
  std::uint64_t next_watch_id_ = 1;
  std::mt19937_64 random_;
};

}  // namespace tetherd::test::apiserver
