#pragma once
// A kubeconfig, as kubectl reads it, reduced to what tetherd needs to reach
// one API server over mTLS: the server URL, the CA bundle, the client
// certificate and key (or a bearer token), and tls-server-name. File paths
// in it are relative to the kubeconfig's directory; `-data` fields are
// base64. Refused, with a message saying why: insecure-skip-tls-verify,
// exec and auth-provider plugins, basic auth, a server that is not https,
// and private keys readable by group or others (the key file, or the
// kubeconfig when it embeds the key).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"

namespace tetherd {

struct Kubeconfig {
  std::string path;     // the file it came from
  std::string context;  // the context used
  std::string server;   // https://host[:port][/path]
  std::string tls_server_name;
  std::string ca_pem;  // empty: the system's trust store
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;  // bearer token (token or tokenFile)
  // The files it names, read with it (certificate-authority,
  // client-certificate, client-key, tokenFile): what a change of the
  // credentials is watched in.
  std::vector<std::string> files;
  bool operator==(const Kubeconfig&) const = default;
};

inline constexpr std::size_t kMaxKubeconfigBytes = 1 << 20;

// Parses a kubeconfig's text. `dir` resolves relative paths; `context`
// picks one other than current-context. Reads the files it names.
Result<Kubeconfig> parse_kubeconfig(std::string_view text, const std::string& path,
                                    std::optional<std::string> context = std::nullopt);

// Reads `path` (at most kMaxKubeconfigBytes) and parses it.
Result<Kubeconfig> load_kubeconfig(const std::string& path,
                                   std::optional<std::string> context = std::nullopt);

}  // namespace tetherd
