#include "agent/kube/kube_client.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

namespace tetherd::kube {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using asio::awaitable;

namespace {

ApiError decode_error(std::string message) {
  return make_api_error(ErrorKind::kDecode, std::move(message));
}

ApiResult<json::object> parse_object(const std::string& body, std::string_view what) {
  boost::system::error_code ec;
  auto value = json::parse(body, ec, {}, api_json_options());
  if (ec) return decode_error(std::string(what) + ": the body is not JSON: " + ec.message());
  if (!value.is_object()) return decode_error(std::string(what) + ": the body is not an object");
  return std::move(value.get_object());
}

}  // namespace

std::string query_escape(std::string_view value) {
  return boost::urls::encode(value, boost::urls::unreserved_chars);
}

std::string collection_path(const Resource& r, std::string_view ns) {
  std::string p = r.group.empty() ? "/api/" + r.version : "/apis/" + r.group + "/" + r.version;
  p += "/namespaces/";
  p += ns;
  p += "/" + r.plural;
  return p;
}

std::string object_path(const Resource& r, std::string_view ns, std::string_view name,
                        std::string_view subresource) {
  std::string p = collection_path(r, ns) + "/" + std::string(name);
  if (!subresource.empty()) p += "/" + std::string(subresource);
  return p;
}

KubeClient::KubeClient(HttpsClient& http, std::size_t max_watch_event_bytes)
    : http_(http), max_watch_event_bytes_(max_watch_event_bytes) {}

awaitable<ApiResult<json::object>> KubeClient::call(HttpRequest request) {
  const std::string what =
      std::string(http::to_string(request.verb)) + " " + http_.server() + request.target;
  auto response = co_await http_.send(std::move(request));
  if (!response) co_return response.error();
  if (response->status < 200 || response->status >= 300) {
    auto e = error_from_response(response->status, response->body, response->retry_after);
    e.message = what + ": " + e.message;
    co_return e;
  }
  co_return parse_object(response->body, what);
}

// GCC 12 destroys a temporary in a co_await expression twice (an aggregate
// or a lambda built in the argument list): in a coroutine, a request is a
// named local first. The verbs that need no coroutine of their own are
// plain functions handing call() its request.
awaitable<ApiResult<json::object>> KubeClient::get(std::string path) {
  return call({http::verb::get, std::move(path), {}, {}});
}

awaitable<ApiResult<ObjectList>> KubeClient::list(std::string collection,
                                                  std::string field_selector) {
  ListOptions options;
  options.field_selector = std::move(field_selector);
  return list(std::move(collection), std::move(options));
}

awaitable<ApiResult<ObjectList>> KubeClient::list(std::string collection, ListOptions options) {
  char sep = '?';
  auto add = [&](std::string_view key, const std::string& value) {
    if (value.empty()) return;
    collection += sep + std::string(key) + "=" + query_escape(value);
    sep = '&';
  };
  add("fieldSelector", options.field_selector);
  add("labelSelector", options.label_selector);
  add("limit", options.limit > 0 ? std::to_string(options.limit) : std::string());
  HttpRequest request{http::verb::get, collection, {}, {}};
  auto body = co_await call(std::move(request));
  if (!body) co_return body.error();
  ObjectList list;
  list.resource_version = resource_version_of(*body);
  if (const auto* metadata = body->if_contains("metadata"); metadata && metadata->is_object()) {
    const auto* remaining = metadata->get_object().if_contains("remainingItemCount");
    if (remaining != nullptr && remaining->is_int64() && remaining->get_int64() > 0)
      list.remaining_items = static_cast<std::size_t>(remaining->get_int64());
    const auto* next = metadata->get_object().if_contains("continue");
    list.more = next != nullptr && next->is_string() && !next->get_string().empty();
  }
  if (list.resource_version.empty())
    co_return decode_error("GET " + collection + ": list without metadata.resourceVersion");
  const auto* items = body->if_contains("items");
  if (items != nullptr && !items->is_null()) {
    if (!items->is_array()) co_return decode_error("GET " + collection + ": items not a list");
    for (const auto& item : items->get_array()) {
      if (!item.is_object())
        co_return decode_error("GET " + collection + ": an item not an object");
      list.items.push_back(item.get_object());
    }
  }
  co_return list;
}

awaitable<ApiResult<json::object>> KubeClient::create(std::string collection, json::object object) {
  return call(
      {http::verb::post, std::move(collection), json::serialize(object), "application/json"});
}

awaitable<ApiResult<json::object>> KubeClient::update(std::string path, json::object object) {
  if (resource_version_of(object).empty())
    co_return ApiError{ErrorKind::kInvalid,
                       0,
                       {},
                       "PUT " + path +
                           ": refused without metadata.resourceVersion (it would "
                           "overwrite someone else's change unseen)",
                       std::nullopt};
  HttpRequest request{http::verb::put, std::move(path), json::serialize(object),
                      "application/json"};
  auto result = co_await call(std::move(request));
  co_return result;
}

awaitable<ApiResult<json::object>> KubeClient::merge_patch(std::string path, json::object patch) {
  return call(
      {http::verb::patch, std::move(path), json::serialize(patch), "application/merge-patch+json"});
}

awaitable<ApiResult<WatchEnd>> KubeClient::watch(std::string collection, WatchOptions options,
                                                 EventHandler on_event,
                                                 std::function<void()> on_open,
                                                 HttpsClient::Cut on_cut) {
  std::string target = collection + "?watch=true";
  if (!options.resource_version.empty())
    target += "&resourceVersion=" + query_escape(options.resource_version);
  if (options.bookmarks) target += "&allowWatchBookmarks=true";
  target += "&timeoutSeconds=" + std::to_string(options.timeout.count());
  if (!options.field_selector.empty())
    target += "&fieldSelector=" + query_escape(options.field_selector);

  WatchEnd end;
  end.resource_version = options.resource_version;
  WatchDecoder decoder(max_watch_event_bytes_);
  std::vector<WatchEvent> events;
  std::optional<ApiError> failure;
  HttpsClient::BodySink sink = [&](std::string_view bytes) -> ApiResult<bool> {
    events.clear();
    auto fed = decoder.feed(bytes, events);
    // Events decoded before a bad one are still good: hand them on first.
    for (auto& event : events) {
      if (event.type == WatchEventType::kError) {
        auto e = error_from_status(event.object);
        if (e.gone()) {
          end.expired = true;
        } else {
          // A Status without a code is still a failure of the server's.
          if (e.code == 0) e.code = 500;
          e.message = "watch " + http_.server() + collection + ": ERROR event: " + e.message;
          failure = std::move(e);
        }
        // Nothing after an ERROR event counts; kube-apiserver ends there.
        return ApiError{ErrorKind::kHttp, 0, "WatchEnded", "", std::nullopt};
      }
      ++end.events;
      end.resource_version = event.resource_version();
      on_event(event);
    }
    if (!fed) return fed.error();
    return !events.empty();
  };

  HttpRequest request{http::verb::get, target, {}, {}};
  auto streamed = co_await http_.stream(std::move(request), options.idle, std::move(sink),
                                        std::move(on_open), std::move(on_cut));
  if (end.expired) co_return end;
  if (failure) co_return *failure;
  if (!streamed) {
    if (streamed.error().gone()) {
      end.expired = true;
      co_return end;
    }
    co_return streamed.error();
  }
  if (auto finished = decoder.finish(); !finished) co_return finished.error();
  co_return end;
}

}  // namespace tetherd::kube
