#pragma once
// The node's own credential files (issue 21), shared by `tetherctl enroll`
// and the daemon's renewal: where they live, the request under way, and
// how an issued certificate is installed so that no crash leaves a
// certificate without its key.
//
//   node.key, node.crt        the key (0600) and certificate in force
//   node.key.next (0600)      the key of a request under way: made first,
//                             never sent anywhere
//   node.csr.next             {"name", "server", "node"}: which request
//
// Installing: node.crt first, then node.key from node.key.next, then the
// request forgotten. A crash between the two writes leaves a node.crt that
// matches node.key.next, not node.key: finish_install() completes it (the
// daemon calls it before it reads the files, enroll before it judges them).

#include <optional>
#include <string>
#include <string_view>

#include "agent/config/config.h"
#include "agent/core/result.h"

namespace tetherd {

// Where a node's credentials live: next to its kubeconfig.
struct CredentialPaths {
  std::string kubeconfig;  // controlPlane.kubeconfig, else CONFIGDIR/controlplane.kubeconfig
  std::string dir;
  std::string key, certificate;    // node.key, node.crt
  std::string next_key, next_csr;  // node.key.next, node.csr.next: a request under way
};
CredentialPaths credential_paths(const Config& config, const std::string& config_path);

// Whether two server URLs are the same (a trailing slash aside).
bool same_server(std::string_view a, std::string_view b);

// A request under way: the CSR's name, the server and node it was made for,
// and its key.
struct PendingRequest {
  std::string name;
  std::string server;
  std::string node;
  std::string key_pem;
};

// The request under way, or nullopt (none, or its files unreadable).
std::optional<PendingRequest> read_pending(const CredentialPaths& paths);
// The key first (a request whose key is lost cannot be used); the name is
// written by save_pending_name() once the server has the request.
Result<void> save_pending_key(const CredentialPaths& paths, const std::string& key_pem);
Result<void> save_pending_name(const CredentialPaths& paths, const PendingRequest& pending);
void forget_pending(const CredentialPaths& paths);

// Writes `certificate_pem` and the pending key as node.crt and node.key and
// forgets the request. The certificate must be the pending key's (checked
// by the caller).
Result<void> install_issued(const CredentialPaths& paths, const PendingRequest& pending,
                            const std::string& certificate_pem);

// Held while the credential files are written: by `tetherctl enroll` for
// its whole run, by the daemon's renewal around each step that writes (so
// that neither replaces the other's request or key halfway). An advisory
// lock on the directory (flock), never waited for: whoever does not get it
// says so and tries later.
class CredentialsLock {
 public:
  explicit CredentialsLock(const std::string& dir);
  ~CredentialsLock();
  CredentialsLock(const CredentialsLock&) = delete;
  CredentialsLock& operator=(const CredentialsLock&) = delete;
  bool locked() const { return locked_; }

 private:
  int fd_;
  bool locked_ = false;
};

// Completes an install a crash interrupted: when node.crt is for
// node.key.next rather than node.key. Returns whether it did.
bool finish_install(const CredentialPaths& paths);

}  // namespace tetherd
