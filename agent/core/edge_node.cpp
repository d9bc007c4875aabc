#include "agent/core/edge_node.h"

#include <boost/json/value.hpp>

namespace tetherd {
namespace {

namespace json = boost::json;

std::string_view what_is(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_:
      return "a number";
    case json::kind::string:
      return "a string";
    case json::kind::array:
      return "an array";
    case json::kind::object:
      return "an object";
  }
  return "something else";
}

Error at(std::string_view path, std::string_view problem) {
  return make_error(std::string(path) + ": " + std::string(problem));
}

Error wrong_type(std::string_view path, std::string_view expected, const json::value& got) {
  return at(path, "expected " + std::string(expected) + ", got " + std::string(what_is(got)));
}

// A value from the network quoted in an error message (which ends up in a
// log line and in status): printable ASCII only, and not much of it.
std::string quoted(std::string_view text) {
  constexpr std::size_t kMax = 64;
  std::string out = "\"";
  for (char c : text.substr(0, kMax))
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > kMax) out += "...";
  return out + "\"";
}

// The member, or nullptr when it is absent or JSON null.
const json::value* member(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return (v == nullptr || v->is_null()) ? nullptr : v;
}

// An optional object member: nullptr when absent.
Result<const json::object*> object_member(const json::object& o, std::string_view key,
                                          std::string_view path) {
  const json::value* v = member(o, key);
  if (v == nullptr) return static_cast<const json::object*>(nullptr);
  if (!v->is_object()) return wrong_type(path, "an object", *v);
  return &v->get_object();
}

// An optional array member: nullptr when absent; `max` entries at most.
Result<const json::array*> array_member(const json::object& o, std::string_view key,
                                        std::string_view path, std::size_t max) {
  const json::value* v = member(o, key);
  if (v == nullptr) return static_cast<const json::array*>(nullptr);
  if (!v->is_array()) return wrong_type(path, "an array", *v);
  const json::array& a = v->get_array();
  if (a.size() > max) {
    return at(path, "too many entries (" + std::to_string(a.size()) + ", at most " +
                        std::to_string(max) + ")");
  }
  return &a;
}

Result<void> read_string(const json::value& v, std::string_view path, std::size_t max,
                         std::string& out) {
  if (!v.is_string()) return wrong_type(path, "a string", v);
  const json::string& s = v.get_string();
  if (s.size() > max) {
    return at(path, "too long (" + std::to_string(s.size()) + " bytes, at most " +
                        std::to_string(max) + ")");
  }
  out.assign(s.data(), s.size());
  return {};
}

// An optional string member: `out` stays "" when absent.
Result<void> string_member(const json::object& o, std::string_view key, std::string_view path,
                           std::size_t max, std::string& out) {
  const json::value* v = member(o, key);
  if (v == nullptr) return {};
  return read_string(*v, path, max, out);
}

Result<std::int64_t> read_integer(const json::value& v, std::string_view path) {
  if (v.is_int64()) return v.get_int64();
  // Boost.JSON keeps an integer above INT64_MAX as uint64: no port, no
  // generation, is that large.
  if (v.is_uint64()) return at(path, std::to_string(v.get_uint64()) + " is out of range");
  // A fraction or an exponent: what Kubernetes writes for an integer field
  // never has either.
  if (v.is_double()) return at(path, "expected an integer, got a number with a fraction");
  return wrong_type(path, "an integer", v);
}

// kind and apiVersion, when present, must be ours: anything else is not an
// EdgeNode (or is a version whose fields may mean something else).
Result<void> check_type_meta(const json::object& object, std::string_view key,
                             std::string_view expected) {
  const json::value* v = member(object, key);
  if (v == nullptr) return {};
  if (!v->is_string()) return wrong_type(key, "a string", *v);
  if (v->get_string() != expected) {
    return at(key, "expected " + quoted(expected) + ", got " + quoted(v->get_string()));
  }
  return {};
}

Result<void> decode_metadata(const json::object& object, EdgeNodeSpec& out) {
  auto metadata = object_member(object, "metadata", "metadata");
  if (!metadata) return metadata.error();
  if (*metadata == nullptr) return at("metadata.name", "missing");
  const json::object& m = **metadata;

  const json::value* name = member(m, "name");
  if (name == nullptr) return at("metadata.name", "missing");
  if (auto r = read_string(*name, "metadata.name", kMaxNameBytes, out.name); !r) return r;
  if (out.name.empty()) return at("metadata.name", "empty");

  if (auto r = string_member(m, "namespace", "metadata.namespace", kMaxNameBytes, out.namespace_);
      !r)
    return r;
  if (auto r = string_member(m, "uid", "metadata.uid", kMaxOpaqueBytes, out.uid); !r) return r;
  if (auto r = string_member(m, "resourceVersion", "metadata.resourceVersion", kMaxOpaqueBytes,
                             out.resource_version);
      !r)
    return r;

  if (const json::value* generation = member(m, "generation")) {
    auto g = read_integer(*generation, "metadata.generation");
    if (!g) return g.error();
    if (*g < 0) {
      return at("metadata.generation",
                "expected a non-negative integer, got " + std::to_string(*g));
    }
    out.generation = *g;
  }
  return {};
}

Result<void> decode_firewall(const json::object& firewall, firewall::DesiredSources& out) {
  constexpr std::string_view kSources = "spec.firewall.allowedSources";
  auto sources = array_member(firewall, "allowedSources", kSources, kMaxAllowedSourcesDecoded);
  if (!sources) return sources.error();
  if (*sources != nullptr) {
    out.sources.reserve((*sources)->size());
    for (std::size_t i = 0; i < (*sources)->size(); ++i) {
      const std::string path = std::string(kSources) + "[" + std::to_string(i) + "]";
      if (auto r = read_string((**sources)[i], path, kMaxSourceBytes, out.sources.emplace_back());
          !r)
        return r;
    }
  }

  constexpr std::string_view kPorts = "spec.firewall.ports";
  auto ports = array_member(firewall, "ports", kPorts, kMaxPortsDecoded);
  if (!ports) return ports.error();
  if (*ports != nullptr) {
    out.ports.reserve((*ports)->size());
    for (std::size_t i = 0; i < (*ports)->size(); ++i) {
      const std::string path = std::string(kPorts) + "[" + std::to_string(i) + "]";
      auto port = read_integer((**ports)[i], path);
      if (!port) return port.error();
      if (*port < 1 || *port > 65535) {
        return at(path, std::to_string(*port) + " is not a port (1..65535)");
      }
      out.ports.push_back(static_cast<std::uint16_t>(*port));
    }
  }
  return {};
}

// A DNS-1123 subdomain (an object's name) or, with `key`, a ConfigMap key
// ([-._a-zA-Z0-9]+): "" when absent; never "." or "..", which a path would
// take for a directory.
Result<void> name_member(const json::object& o, std::string_view key_name, std::string_view path,
                         bool key, std::string& out) {
  if (auto r = string_member(o, key_name, path, kMaxNameBytes, out); !r) return r;
  if (out.empty()) return {};
  for (char c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    (key && ((c >= 'A' && c <= 'Z') || c == '_'));
    if (!ok) {
      return at(path,
                quoted(out) + (key ? " is not a ConfigMap key"
                                   : " is not a name (lower-case letters, digits, '-', '.')"));
    }
  }
  if (out == "." || out == "..") return at(path, quoted(out) + " is not a name");
  return {};
}

// The object a reference names: {name} (required), and for a ConfigMap
// {key}. nullptr when absent.
Result<const json::object*> reference(const json::object& linkerd, std::string_view member_name,
                                      std::string_view path, std::string& name) {
  auto ref = object_member(linkerd, member_name, path);
  if (!ref || *ref == nullptr) return ref;
  const std::string name_path = std::string(path) + ".name";
  if (auto r = name_member(**ref, "name", name_path, /*key=*/false, name); !r) return r.error();
  if (name.empty()) return at(name_path, "missing");
  return ref;
}

Result<void> decode_linkerd(const json::object& linkerd, EdgeNodeSpec& out) {
  if (auto r = string_member(linkerd, "rotate", "spec.linkerd.rotate", kMaxRotateBytes, out.rotate);
      !r)
    return r;
  LinkerdRefs& refs = out.linkerd;
  auto issuer =
      reference(linkerd, "issuerSecretRef", "spec.linkerd.issuerSecretRef", refs.issuer_secret);
  if (!issuer) return issuer.error();
  constexpr std::string_view kBundle = "spec.linkerd.trustBundleRef";
  auto bundle = reference(linkerd, "trustBundleRef", kBundle, refs.bundle_config_map);
  if (!bundle) return bundle.error();
  if (*bundle == nullptr) return {};
  std::string key;
  if (auto r = name_member(**bundle, "key", std::string(kBundle) + ".key", /*key=*/true, key); !r)
    return r;
  if (!key.empty()) refs.bundle_key = std::move(key);
  if (const json::value* finishing = member(**bundle, "rotationFinishing")) {
    if (!finishing->is_bool())
      return wrong_type(std::string(kBundle) + ".rotationFinishing", "a boolean", *finishing);
    refs.rotation_finishing = finishing->get_bool();
  }
  return {};
}

Result<void> decode_spec(const json::object& object, EdgeNodeSpec& out) {
  auto spec = object_member(object, "spec", "spec");
  if (!spec) return spec.error();
  if (*spec == nullptr) return {};

  auto firewall = object_member(**spec, "firewall", "spec.firewall");
  if (!firewall) return firewall.error();
  if (*firewall != nullptr) {
    if (auto r = decode_firewall(**firewall, out.firewall); !r) return r;
  }

  auto linkerd = object_member(**spec, "linkerd", "spec.linkerd");
  if (!linkerd) return linkerd.error();
  if (*linkerd != nullptr) return decode_linkerd(**linkerd, out);
  return {};
}

}  // namespace

Result<EdgeNodeSpec> decode_edge_node(const json::object& object) {
  if (auto r = check_type_meta(object, "kind", kEdgeNodeKind); !r) return r.error();
  if (auto r = check_type_meta(object, "apiVersion", kEdgeNodeApiVersion); !r) return r.error();
  EdgeNodeSpec out;
  if (auto r = decode_metadata(object, out); !r) return r.error();
  if (auto r = decode_spec(object, out); !r) return r.error();
  return out;
}

}  // namespace tetherd
