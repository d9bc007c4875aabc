#pragma once
// Who the caller is (a client certificate's CN and O, or a bearer token) and
// what it may do: RBAC reduced to AccessRule, with kube-apiserver's
// Forbidden message.

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

class Authorizer {
 public:
  void allow(AccessRule rule);
  // Nothing when allowed, else the 403 Status.
  std::optional<ApiError> check(const Identity& who, const Attributes& what) const;

 private:
  mutable std::mutex mutex_;
  std::vector<AccessRule> rules_;
};

}  // namespace tetherd::test::apiserver
