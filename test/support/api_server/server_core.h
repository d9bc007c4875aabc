#pragma once
// What every connection of one test API server shares.

#include <cstdint>
#include <map>
#include <memory>

#include "test/support/api_server/api_server.h"
#include "test/support/api_server/authorization.h"
#include "test/support/api_server/misbehaviour.h"
#include "test/support/api_server/observations.h"
#include "test/support/api_server/rest_api.h"
#include "test/support/api_server/store.h"

namespace tetherd::test::apiserver {

class Connection;

struct ServerCore {
  explicit ServerCore(ApiServerOptions server_options)
      : options(std::move(server_options)),
        store(options.history_limit),
        tokens(options.tokens),
        rest(store, authorizer, tokens, options.default_watch_timeout,
             CsrSigner{options.csr_signer ? &*options.csr_signer : nullptr,
                       options.csr_max_duration}) {}

  ApiServerOptions options;
  Store store;
  Authorizer authorizer;
  TokenRegistry tokens;
  RestApi rest;
  MisbehaviourArm misbehaviour;
  Observations observations;
  // The server's thread only.
  std::map<std::uint64_t, std::weak_ptr<Connection>> connections;
};

}  // namespace tetherd::test::apiserver
