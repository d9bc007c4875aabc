#pragma once
// The kubeconfig `tetherctl enroll` writes for the node (issue 21): the
// cloud's server and CA (embedded, so the file stands alone), and the
// node's certificate and key by path, so a renewal replaces those two
// files and the kubeconfig stays as it is. What parse_kubeconfig reads
// back is exactly this.

#include <string>

namespace tetherd {

struct NodeKubeconfig {
  std::string server;  // https://host[:port]
  std::string ca_pem;
  std::string client_certificate;  // absolute paths
  std::string client_key;
  std::string user;  // "tetherd:NODE", the context's and user's name
};

std::string render_kubeconfig(const NodeKubeconfig& k);

}  // namespace tetherd
