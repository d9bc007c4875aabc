#include "test/support/api_server/store.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include <boost/json/serialize.hpp>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

// Written by the server, whatever a client sends.
constexpr std::string_view kServerMetadata[] = {
    "name", "namespace", "uid", "creationTimestamp", "generation", "resourceVersion"};

json::object& metadata_of(json::object& object) {
  json::value& metadata = object["metadata"];
  if (!metadata.is_object()) metadata = json::object{};
  return metadata.get_object();
}

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->get_string()) : std::string{};
}

std::string metadata_string(const json::object& object, std::string_view key) {
  const json::value* metadata = object.if_contains("metadata");
  return metadata != nullptr && metadata->is_object() ? string_at(metadata->get_object(), key)
                                                      : std::string{};
}

std::int64_t generation_of(const json::object& object) {
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return 0;
  const json::value* generation = metadata->get_object().if_contains("generation");
  return generation != nullptr && generation->is_int64() ? generation->get_int64() : 0;
}

// What metadata.generation tracks: everything but metadata and status.
json::object spec_part(const json::object& object) {
  json::object part = object;
  part.erase("metadata");
  part.erase("status");
  return part;
}

std::string_view event_type_name(EventType type) {
  switch (type) {
    case EventType::kAdded:
      return "ADDED";
    case EventType::kModified:
      return "MODIFIED";
    case EventType::kDeleted:
      return "DELETED";
  }
  return "ERROR";
}

std::shared_ptr<const StoreEvent> make_event(EventType type, const ObjectKey& key,
                                             const json::object& object,
                                             std::optional<json::object> previous) {
  std::uint64_t version = std::stoull(metadata_string(object, "resourceVersion"));
  return std::make_shared<const StoreEvent>(
      StoreEvent{type, key, version, watch_line(type, object), object, std::move(previous)});
}

// A field as kube-apiserver's field sets have it: metadata.name and
// metadata.namespace from the key, others a string at that path, or "".
std::string field_value(const ObjectKey& key, const json::object& object, std::string_view field) {
  if (field == "metadata.name") return key.name;
  if (field == "metadata.namespace") return key.namespace_;
  const json::object* at = &object;
  while (true) {
    std::size_t dot = field.find('.');
    const json::value* value = at->if_contains(field.substr(0, dot));
    if (value == nullptr) return {};
    if (dot == std::string_view::npos)
      return value->is_string() ? std::string(value->get_string()) : std::string{};
    if (!value->is_object()) return {};
    at = &value->get_object();
    field = field.substr(dot + 1);
  }
}

ObjectKey key_for(const ResourceType& type, const std::string& namespace_,
                  const std::string& name) {
  return ObjectKey{type.group_resource(), namespace_, name};
}

}  // namespace

std::string utc_now(const char* format, std::chrono::seconds offset) {
  return utc_time(std::time(nullptr) + static_cast<std::time_t>(offset.count()), format);
}

std::string utc_time(std::time_t t, const char* format) {
  std::tm utc{};
  gmtime_r(&t, &utc);
  char text[64];
  std::strftime(text, sizeof text, format, &utc);
  return text;
}

json::value merge_patch(const json::value& target, const json::value& patch) {
  if (!patch.is_object()) return patch;
  json::object result = target.is_object() ? target.get_object() : json::object{};
  for (const auto& member : patch.get_object()) {
    if (member.value().is_null()) {
      result.erase(member.key());
      continue;
    }
    const json::value* current = result.if_contains(member.key());
    result[member.key()] =
        merge_patch(current != nullptr ? *current : json::value{}, member.value());
  }
  return result;
}

std::string watch_line(EventType type, const json::object& object) {
  return json::serialize(json::object{{"type", event_type_name(type)}, {"object", object}}) + "\n";
}

bool FieldSelector::matches(const ObjectKey& key, const json::object& object) const {
  return std::all_of(terms.begin(), terms.end(), [&](const Term& term) {
    return (field_value(key, object, term.field) == term.value) != term.negated;
  });
}

std::optional<std::string> FieldSelector::exact_name() const {
  for (const Term& term : terms)
    if (term.field == "metadata.name" && !term.negated) return term.value;
  return std::nullopt;
}

Expected<FieldSelector> parse_field_selector(std::string_view text, const ResourceType& type) {
  FieldSelector selector;
  while (!text.empty()) {
    std::size_t comma = text.find(',');
    std::string_view term = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    FieldSelector::Term parsed;
    std::size_t op = term.find("!=");
    std::size_t op_size = 2;
    if (op != std::string_view::npos) {
      parsed.negated = true;
    } else if ((op = term.find("==")) == std::string_view::npos) {
      op = term.find('=');
      op_size = 1;
    }
    if (op == std::string_view::npos || op == 0)
      return bad_request_error("invalid selector: '" + std::string(term) + "'; can't understand '" +
                               std::string(term) + "'");
    parsed.field = std::string(term.substr(0, op));
    parsed.value = std::string(term.substr(op + op_size));
    if (parsed.field != "metadata.name" && parsed.field != "metadata.namespace" &&
        !type.has_field_label(parsed.field))
      return bad_request_error("field label not supported: " + parsed.field);
    selector.terms.push_back(std::move(parsed));
  }
  return selector;
}

bool WatchFilter::covers(const ObjectKey& key) const {
  return key.resource == type->group_resource() && (all_namespaces || key.namespace_ == namespace_);
}

bool WatchFilter::matches(const ObjectKey& key, const json::object& object) const {
  return covers(key) && selector.matches(key, object) && labels.matches(object);
}

std::optional<std::string> WatchFilter::event_line(const StoreEvent& event) const {
  const bool now = event.type != EventType::kDeleted && matches(event.key, event.object);
  const bool before = event.previous && matches(event.key, *event.previous);
  if (now == before) return now ? std::optional(event.line) : std::nullopt;
  if (now)
    return event.type == EventType::kAdded ? event.line
                                           : watch_line(EventType::kAdded, event.object);
  if (event.type == EventType::kDeleted) return event.line;
  json::object last = *event.previous;
  metadata_of(last)["resourceVersion"] = std::to_string(event.resource_version);
  return watch_line(EventType::kDeleted, last);
}

Store::Store(std::size_t history_limit)
    // Not 0: "0" means "any version" to list and watch, so no object may carry it.
    : history_limit_(history_limit),
      revision_(100),
      compacted_(100),
      random_(std::random_device{}()) {}

std::string Store::new_uid_locked() {
  std::uint64_t high = random_();
  std::uint64_t low = random_();
  high = (high & ~0xf000ULL) | 0x4000ULL;      // version 4
  low = (low & ~(3ULL << 62)) | (2ULL << 62);  // RFC 4122 variant
  char text[40];
  std::snprintf(text, sizeof text, "%08llx-%04llx-%04llx-%04llx-%012llx",
                static_cast<unsigned long long>(high >> 32),
                static_cast<unsigned long long>((high >> 16) & 0xffff),
                static_cast<unsigned long long>(high & 0xffff),
                static_cast<unsigned long long>(low >> 48),
                static_cast<unsigned long long>(low & 0xffffffffffffULL));
  return text;
}

json::object Store::commit_locked(EventType type, const ObjectKey& key, json::object object,
                                  std::optional<json::object> previous) {
  ++revision_;
  metadata_of(object)["resourceVersion"] = std::to_string(revision_);
  if (type == EventType::kDeleted)
    objects_.erase(key);
  else
    objects_[key] = object;
  std::shared_ptr<const StoreEvent> event = make_event(type, key, object, std::move(previous));
  history_.push_back(event);
  while (history_.size() > history_limit_) {
    compacted_ = history_.front()->resource_version;
    history_.pop_front();
  }
  if (history_limit_ == 0) compacted_ = revision_;
  for (auto& [id, sink] : sinks_)
    sink(event);
  return object;
}

Expected<json::object> Store::create(const ResourceType& type, const std::string& namespace_,
                                     json::object object) {
  // Every member is set before a reference into the object is held: an
  // insertion may move the members.
  object["kind"] = type.kind;
  object["apiVersion"] = type.api_version();
  if (type.status_subresource && !type.create_keeps_status) object.erase("status");
  json::object& metadata = metadata_of(object);
  std::string name = string_at(metadata, "name");
  if (name.empty())
    return invalid_error(type, "", "metadata.name", "FieldValueRequired",
                         "Required value: name or generateName is required");
  // etcd3's store refuses this; kube-apiserver passes it on as an internal error.
  if (!string_at(metadata, "resourceVersion").empty())
    return internal_error("resourceVersion should not be set on objects to be created");

  std::lock_guard lock(mutex_);
  ObjectKey key = key_for(type, namespace_, name);
  if (objects_.contains(key)) return already_exists_error(type, name);
  if (type.namespaced)
    metadata["namespace"] = namespace_;
  else
    metadata.erase("namespace");
  metadata["uid"] = new_uid_locked();
  metadata["creationTimestamp"] = rfc3339_now();
  metadata["generation"] = 1;
  metadata.erase("resourceVersion");
  return commit_locked(EventType::kAdded, key, std::move(object), std::nullopt);
}

Expected<json::object> Store::get(const ResourceType& type, const std::string& namespace_,
                                  const std::string& name) const {
  std::lock_guard lock(mutex_);
  auto found = objects_.find(key_for(type, namespace_, name));
  if (found == objects_.end()) return not_found_error(type, name);
  return found->second;
}

Expected<ListResult> Store::list(const WatchFilter& filter,
                                 std::optional<std::uint64_t> exact) const {
  std::lock_guard lock(mutex_);
  if (exact && *exact < compacted_)
    return expired_error("The resourceVersion for the provided list is too old.");
  std::map<ObjectKey, json::object> state;
  for (const auto& [key, object] : objects_)
    if (filter.covers(key)) state.emplace(key, object);
  if (exact) {
    // Undo, newest first, what happened after the version asked for.
    for (auto event = history_.rbegin();
         event != history_.rend() && (*event)->resource_version > *exact; ++event) {
      const ObjectKey& key = (*event)->key;
      if (!filter.covers(key)) continue;
      if ((*event)->previous)
        state.insert_or_assign(key, *(*event)->previous);
      else
        state.erase(key);
    }
  }
  ListResult result{{}, exact ? std::min(*exact, revision_) : revision_};
  for (auto& [key, object] : state)
    if (filter.matches(key, object)) result.items.push_back(std::move(object));
  return result;
}

Expected<json::object> Store::write_locked(const ResourceType& type, const ObjectKey& key,
                                           const json::object& old, json::object next,
                                           WriteScope scope) {
  std::string wanted = metadata_string(next, "resourceVersion");
  if (!wanted.empty() && wanted != metadata_string(old, "resourceVersion"))
    return modified_conflict_error(type, key.name);

  json::object result;
  if (scope == WriteScope::kStatus) {
    // Only the status moves through /status.
    result = old;
    if (const json::value* status = next.if_contains("status"))
      result["status"] = *status;
    else
      result.erase("status");
  } else {
    // And the status never moves through the main resource.
    result = std::move(next);
    const json::value* old_status = old.if_contains("status");
    if (type.status_subresource) {
      if (old_status != nullptr)
        result["status"] = *old_status;
      else
        result.erase("status");
    }
  }
  result["kind"] = type.kind;
  result["apiVersion"] = type.api_version();
  json::object& metadata = metadata_of(result);
  const json::value& old_metadata = old.at("metadata");
  for (std::string_view field : kServerMetadata) {
    if (const json::value* value = old_metadata.get_object().if_contains(field))
      metadata[field] = *value;
    else
      metadata.erase(field);
  }
  if (spec_part(result) != spec_part(old)) metadata["generation"] = generation_of(old) + 1;
  // etcd3's store skips a write that changes nothing: no new resourceVersion, no event.
  if (result == old) return old;
  json::object previous = old;
  return commit_locked(EventType::kModified, key, std::move(result), std::move(previous));
}

Expected<json::object> Store::update(const ResourceType& type, const std::string& namespace_,
                                     const std::string& name, json::object object,
                                     WriteScope scope) {
  std::lock_guard lock(mutex_);
  ObjectKey key = key_for(type, namespace_, name);
  auto found = objects_.find(key);
  if (found == objects_.end()) return not_found_error(type, name);
  return write_locked(type, key, found->second, std::move(object), scope);
}

Expected<json::object> Store::patch(const ResourceType& type, const std::string& namespace_,
                                    const std::string& name, const json::value& patch,
                                    WriteScope scope) {
  if (!patch.is_object()) return bad_request_error("error decoding patch: not a JSON object");
  std::lock_guard lock(mutex_);
  ObjectKey key = key_for(type, namespace_, name);
  auto found = objects_.find(key);
  if (found == objects_.end()) return not_found_error(type, name);
  json::value merged = merge_patch(found->second, patch);
  json::object& object = merged.get_object();
  const json::value* metadata = object.if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object())
    return bad_request_error("metadata: must be an object");
  std::string patched_name = metadata_string(object, "name");
  if (patched_name != name)
    return bad_request_error("the name of the object (" + patched_name +
                             ") does not match the name on the URL (" + name + ")");
  if (metadata_string(object, "namespace") != namespace_)
    return bad_request_error(
        "the namespace of the provided object does not match the namespace sent on the request");
  return write_locked(type, key, found->second, std::move(object), scope);
}

Expected<json::object> Store::remove(const ResourceType& type, const std::string& namespace_,
                                     const std::string& name,
                                     std::optional<std::string> precondition_version) {
  std::lock_guard lock(mutex_);
  ObjectKey key = key_for(type, namespace_, name);
  auto found = objects_.find(key);
  if (found == objects_.end()) return not_found_error(type, name);
  std::string current = metadata_string(found->second, "resourceVersion");
  if (precondition_version && *precondition_version != current)
    return conflict_error(
        type, name,
        "Precondition failed: ResourceVersion in precondition: " + *precondition_version +
            ", ResourceVersion in object meta: " + current);
  // The DELETED event and the answer carry the last state at the deletion's version.
  json::object last = found->second;
  return commit_locked(EventType::kDeleted, key, last, std::move(found->second));
}

Expected<WatchStart> Store::watch(const WatchFilter& filter, std::optional<std::uint64_t> from,
                                  EventSink sink) {
  std::lock_guard lock(mutex_);
  WatchStart start{0, {}, revision_};
  if (from && *from != 0) {
    if (*from < compacted_)
      return expired_error("too old resource version: " + std::to_string(*from) + " (" +
                           std::to_string(compacted_) + ")");
    for (const std::shared_ptr<const StoreEvent>& event : history_)
      if (event->resource_version > *from)
        if (std::optional<std::string> line = filter.event_line(*event))
          start.initial.push_back(std::move(*line));
    start.resource_version = std::max(*from, revision_);
  } else {
    for (const auto& [key, object] : objects_)
      if (filter.matches(key, object))
        start.initial.push_back(watch_line(EventType::kAdded, object));
  }
  start.id = next_watch_id_++;
  sinks_.emplace(start.id, std::move(sink));
  return start;
}

void Store::unwatch(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  sinks_.erase(id);
}

void Store::compact() {
  std::lock_guard lock(mutex_);
  history_.clear();
  compacted_ = revision_;
}

std::uint64_t Store::resource_version() const {
  std::lock_guard lock(mutex_);
  return revision_;
}

}  // namespace tetherd::test::apiserver
