#include "agent/config/kubeconfig.h"

#include <yaml-cpp/yaml.h>

#include "agent/config/small_file.h"
#include "agent/config/yaml_reader.h"
#include "agent/core/base64.h"

namespace tetherd {
namespace {

std::string scalar(const YAML::Node& map, const char* key) {
  const YAML::Node n = map[key];
  return n && n.IsScalar() ? n.Scalar() : std::string();
}

// The entry named `name` in a list of {name, <kind>: {...}}.
Result<YAML::Node> named(const YAML::Node& root, const char* list, const char* kind,
                         const std::string& name) {
  const YAML::Node items = root[list];
  if (items && items.IsSequence()) {
    for (const YAML::Node& item : items) {
      if (item.IsMap() && scalar(item, "name") == name) {
        const YAML::Node body = item[kind];
        if (!body || !body.IsMap())
          return Result<YAML::Node>(
              boost::system::in_place_error,
              make_error(std::string(list) + "[" + name + "]." + kind + " is missing"));
        return body;
      }
    }
  }
  return Result<YAML::Node>(
      boost::system::in_place_error,
      make_error("no " + std::string(kind) + " named \"" + name + "\" in " + list));
}

// A PEM from `<field>-data` (base64) or `<field>` (a file, relative to dir).
Result<std::string> pem_field(const YAML::Node& map, const std::string& where,
                              const std::string& field, const std::string& dir, bool is_key,
                              bool& from_file, std::vector<std::string>& files) {
  const std::string data = scalar(map, (field + "-data").c_str());
  const std::string file = scalar(map, field.c_str());
  from_file = false;
  if (!data.empty()) return decode_base64(where + "." + field + "-data", data);
  if (file.empty()) return Result<std::string>(boost::system::in_place_value);
  const std::string path = file.starts_with("/") ? file : dir + "/" + file;
  files.push_back(path);
  if (is_key) {
    if (auto r = refuse_shared_key(path, "a private key"); !r) return r.error();
  }
  from_file = true;
  return read_small_file(path, 1 << 20, path);
}

}  // namespace

Result<Kubeconfig> parse_kubeconfig(std::string_view text, const std::string& path,
                                    std::optional<std::string> context) {
  auto fail = [&path](const std::string& message) -> Result<Kubeconfig> {
    return make_error(path + ": " + message);
  };
  YAML::Node root;
  if (const auto at = find_non_yaml_character(text))
    return fail("not valid YAML: line " + std::to_string(at->first) + ": a control character");
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return fail("not valid YAML: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) return fail("not a kubeconfig (expected a mapping)");
  const std::string dir =
      path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/'));

  Kubeconfig k;
  k.path = path;
  k.context = context ? *context : scalar(root, "current-context");
  if (k.context.empty()) return fail("no current-context, and no context was named");
  auto ctx = named(root, "contexts", "context", k.context);
  if (!ctx) return fail(ctx.error().message);
  const std::string cluster_name = scalar(*ctx, "cluster");
  const std::string user_name = scalar(*ctx, "user");
  auto cluster = named(root, "clusters", "cluster", cluster_name);
  if (!cluster) return fail(cluster.error().message);
  const std::string cw = "clusters[" + cluster_name + "].cluster";

  const YAML::Node insecure = (*cluster)["insecure-skip-tls-verify"];
  if (insecure && insecure.IsScalar() && insecure.Scalar() == "true") {
    return fail(cw +
                ".insecure-skip-tls-verify: refused; tetherd always verifies the server "
                "(set certificate-authority or certificate-authority-data)");
  }
  k.server = scalar(*cluster, "server");
  if (!k.server.starts_with("https://") || k.server.size() <= 8)
    return fail(cw + ".server: expected an https:// URL, got \"" + k.server + "\"");
  k.tls_server_name = scalar(*cluster, "tls-server-name");
  bool from_file = false;
  auto ca = pem_field(*cluster, cw, "certificate-authority", dir, false, from_file, k.files);
  if (!ca) return fail(ca.error().message);
  k.ca_pem = std::move(*ca);

  if (user_name.empty()) return fail("context \"" + k.context + "\" names no user");
  auto user = named(root, "users", "user", user_name);
  if (!user) return fail(user.error().message);
  const std::string uw = "users[" + user_name + "].user";
  for (const char* plugin : {"exec", "auth-provider"}) {
    if ((*user)[plugin]) {
      return fail(uw + "." + plugin +
                  ": credential plugins are not supported (tetherd runs no "
                  "programs to log in); use a client certificate or a token");
    }
  }
  if ((*user)["username"] || (*user)["password"])
    return fail(uw + ": basic auth is not supported; use a client certificate or a token");

  auto cert = pem_field(*user, uw, "client-certificate", dir, false, from_file, k.files);
  if (!cert) return fail(cert.error().message);
  k.client_cert_pem = std::move(*cert);
  auto key = pem_field(*user, uw, "client-key", dir, true, from_file, k.files);
  if (!key) return fail(key.error().message);
  k.client_key_pem = std::move(*key);
  if (!k.client_key_pem.empty() && !from_file) {
    // The key is embedded: the kubeconfig itself is the key file.
    if (auto r = refuse_shared_key(path, "an embedded private key (client-key-data)"); !r)
      return r.error();
  }
  if (k.client_cert_pem.empty() != k.client_key_pem.empty())
    return fail(uw + ": a client certificate needs its key, and a key its certificate");

  k.token = scalar(*user, "token");
  if (!k.token.empty()) {
    if (auto r = check_bearer_token(k.token, uw + ": token"); !r) return fail(r.error().message);
    // As an embedded key: the kubeconfig itself is the secret.
    if (auto r = refuse_shared_key(path, "an embedded bearer token (token)"); !r) return r.error();
  }
  if (const std::string token_file = scalar(*user, "tokenFile");
      k.token.empty() && !token_file.empty()) {
    const std::string p = token_file.starts_with("/") ? token_file : dir + "/" + token_file;
    k.files.push_back(p);
    auto t = read_token_file(p);
    if (!t) return fail(t.error().message);
    k.token = std::move(*t);
  }
  if (k.client_cert_pem.empty() && k.token.empty())
    return fail(uw + ": no credentials (client-certificate and client-key, or a token)");
  return k;
}

Result<Kubeconfig> load_kubeconfig(const std::string& path, std::optional<std::string> context) {
  auto text = read_small_file(path, kMaxKubeconfigBytes, path);
  if (!text) return text.error();
  return parse_kubeconfig(*text, path, std::move(context));
}

}  // namespace tetherd
