#pragma once
// Who the caller is (a client certificate's CN and O, or a bearer token) and
// what it may do: RBAC reduced to AccessRule, with kube-apiserver's
// Forbidden message. The rules are those given with allow() plus those the
// stored RBAC objects grant (rbac_objects.h), replaced as they change.
// Tokens: the ones given in the options and those TokenRequest issued.

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "test/support/api_server/api_server.h"
#include "test/support/api_server/resources.h"
#include "test/support/api_server/status.h"

namespace tetherd::test::apiserver {

struct Identity {
  std::string user;
  std::vector<std::string> groups;
  std::string serial;  // the client certificate's serial number in hex; "" for a token
};

// What RBAC sees of a resource request (the authorizer's attributes).
struct Attributes {
  std::string verb;  // get, list, watch, create, update, patch, delete
  const ResourceType* type = nullptr;
  std::string subresource;  // "" or "status"
  std::string namespace_;
  std::string name;  // for list/watch: a fieldSelector's metadata.name=
};

// The user of a ServiceAccount token, in its groups (system:serviceaccounts,
// system:serviceaccounts:NS, system:authenticated).
Identity token_identity(const std::string& user);

class Authorizer {
 public:
  void allow(AccessRule rule);
  // The rules the stored RBAC objects grant, replacing the last ones.
  void set_derived(std::vector<AccessRule> rules);
  // Nothing when allowed, else the 403 Status.
  std::optional<ApiError> check(const Identity& who, const Attributes& what) const;
  // As RBAC decides it; `resource` with its subresource ("edgenodes/status").
  bool allowed(const Identity& who, const std::string& verb, std::string_view group,
               std::string_view resource, std::string_view namespace_, std::string_view name) const;

 private:
  mutable std::mutex mutex_;
  std::vector<AccessRule> rules_, derived_;
};

// Bearer tokens: given at start (options.tokens) or issued by TokenRequest
// (until they expire). Thread-safe.
class TokenRegistry {
 public:
  explicit TokenRegistry(std::map<std::string, std::string> tokens) : tokens_(std::move(tokens)) {}
  std::optional<std::string> user_of(const std::string& token) const;
  // A new random token for `user`, valid until `expires`.
  std::string issue(const std::string& user, std::chrono::system_clock::time_point expires);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> tokens_;
  std::map<std::string, std::pair<std::string, std::chrono::system_clock::time_point>> issued_;
};

}  // namespace tetherd::test::apiserver
