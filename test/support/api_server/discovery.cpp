#include "test/support/api_server/discovery.h"

#include <set>
#include <string>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

namespace tetherd::test::apiserver {
namespace json = boost::json;
namespace {

json::array short_names(std::string_view names) {
  json::array out;
  while (!names.empty()) {
    std::size_t space = names.find(' ');
    out.emplace_back(names.substr(0, space));
    names = space == std::string_view::npos ? std::string_view{} : names.substr(space + 1);
  }
  return out;
}

json::object group_version(const std::string& group, std::string_view version) {
  return json::object{
      {"groupVersion", group.empty() ? std::string(version) : group + "/" + std::string(version)},
      {"version", version}};
}

json::object subresource(const ResourceType& type, std::string_view name,
                         std::initializer_list<std::string_view> verbs) {
  json::array listed;
  for (std::string_view verb : verbs)
    listed.emplace_back(verb);
  return json::object{{"name", std::string(type.resource) + "/" + std::string(name)},
                      {"singularName", ""},
                      {"namespaced", type.namespaced},
                      {"kind", type.kind},
                      {"verbs", std::move(listed)}};
}

Response resource_list(const ResourcePath& path) {
  json::array resources;
  for (const ResourceType& type : resource_types()) {
    if (type.group != path.group || type.version != path.version) continue;
    json::array verbs;
    if (type.create_only)
      verbs = {"create"};
    else
      verbs = {"create", "delete", "get", "list", "patch", "update", "watch"};
    json::object entry{{"name", type.resource},
                       {"singularName", type.singular},
                       {"namespaced", type.namespaced},
                       {"kind", type.kind},
                       {"verbs", std::move(verbs)}};
    if (!type.short_names.empty()) entry["shortNames"] = short_names(type.short_names);
    resources.emplace_back(std::move(entry));
    if (type.eviction_subresource) {  // before status, in kube-apiserver's alphabetical order
      json::object eviction = subresource(type, "eviction", {"create"});
      eviction["group"] = "policy";
      eviction["version"] = "v1";
      eviction["kind"] = "Eviction";
      resources.emplace_back(std::move(eviction));
    }
    if (type.status_subresource)
      resources.emplace_back(subresource(type, "status", {"get", "patch", "update"}));
    if (type.approval_subresource)
      resources.emplace_back(subresource(type, "approval", {"get", "update"}));
    if (type.token_subresource) {
      json::object token = subresource(type, "token", {"create"});
      token["group"] = "authentication.k8s.io";
      token["version"] = "v1";
      token["kind"] = "TokenRequest";
      resources.emplace_back(std::move(token));
    }
  }
  json::object body{{"kind", "APIResourceList"}};
  // kube-apiserver's /api/v1 has no apiVersion; the groups' lists do.
  if (!path.group.empty()) body["apiVersion"] = "v1";
  body["groupVersion"] = path.group.empty() ? path.version : path.group + "/" + path.version;
  body["resources"] = std::move(resources);
  return json_response(200, body);
}

// Protobuf's length-delimited field `number` holding `bytes`.
std::string protobuf_field(int number, const std::string& bytes) {
  std::string out(1, static_cast<char>((number << 3) | 2));
  std::size_t length = bytes.size();
  do {
    unsigned char byte = length & 0x7f;
    length >>= 7;
    out += static_cast<char>(length != 0 ? byte | 0x80 : byte);
  } while (length != 0);
  return out + bytes;
}

constexpr char kOpenApiTitle[] = "Kubernetes";
constexpr char kOpenApiVersion[] = "v1.31.0-tetherd-test";

Response openapi_response(const Request& request) {
  if (request.accept.find("protobuf") != std::string::npos) {
    // gnostic's openapi_v2.Document: swagger = 1, info = 2 (Info: title = 1, version = 2).
    std::string info = protobuf_field(1, kOpenApiTitle) + protobuf_field(2, kOpenApiVersion);
    return Response{200,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    protobuf_field(1, "2.0") + protobuf_field(2, info),
                    {}};
  }
  return json_response(
      200,
      json::object{{"swagger", "2.0"},
                   {"info", json::object{{"title", kOpenApiTitle}, {"version", kOpenApiVersion}}},
                   {"paths", json::object{}},
                   {"definitions", json::object{}}});
}

}  // namespace

Response discovery_response(const ResourcePath& path, const Request& request) {
  switch (path.kind) {
    case PathKind::kApiVersions: {
      json::array cidrs{json::object{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", request.host}}};
      return json_response(200, json::object{{"kind", "APIVersions"},
                                             {"versions", json::array{"v1"}},
                                             {"serverAddressByClientCIDRs", std::move(cidrs)}});
    }
    case PathKind::kApiGroups: {
      json::array groups;
      std::set<std::string> seen;
      for (const ResourceType& type : resource_types()) {
        std::string group(type.group);
        if (group.empty() || !seen.insert(group).second) continue;
        groups.emplace_back(
            json::object{{"name", group},
                         {"versions", json::array{group_version(group, type.version)}},
                         {"preferredVersion", group_version(group, type.version)}});
      }
      return json_response(
          200, json::object{
                   {"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", std::move(groups)}});
    }
    case PathKind::kGroupVersion:
      return resource_list(path);
    default:
      return openapi_response(request);
  }
}

}  // namespace tetherd::test::apiserver
