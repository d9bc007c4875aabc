#pragma once
// The one armed misbehaviour and which requests or connections it catches.
// Thread-safe: tests arm it while the server's thread consumes it.

#include <mutex>
#include <optional>
#include <string_view>

#include "test/support/api_server/api_server.h"

namespace tetherd::test::apiserver {

class MisbehaviourArm {
 public:
  void arm(MisbehaviourSpec spec);
  // The spec when this request matches (one of `times` used up).
  std::optional<MisbehaviourSpec> take_for_request(std::string_view method, std::string_view target,
                                                   bool watch);
  // For a newly accepted connection: only the TLS kinds.
  std::optional<MisbehaviourSpec> take_for_connection();

 private:
  std::optional<MisbehaviourSpec> take_locked();

  std::mutex mutex_;
  MisbehaviourSpec spec_;
};

bool is_tls_misbehaviour(Misbehaviour what);

}  // namespace tetherd::test::apiserver
