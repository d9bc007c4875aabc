#pragma once
// A firewall backend that keeps the "kernel" in memory, counts what it was
// asked to do, and fails when told to. The real backends are tested on the
// real kernel (test/integration/firewall/).

#include <optional>
#include <string>

#include "firewall/backend.h"

namespace tetherd::test {

class FakeBackend final : public firewall::Backend {
 public:
  std::string_view name() const override { return "fake"; }
  Result<void> apply(const firewall::Allowlist& a) override {
    ++applies;
    if (fail_apply) return make_error("fake apply failure");
    live = firewall::LiveTable{a, true, 0};
    return {};
  }
  Result<std::optional<firewall::LiveTable>> read() override {
    if (fail_read) return make_error("fake read failure");
    return live;
  }
  Result<std::vector<firewall::BlockingChain>> blocking_chains() override { return blocking; }
  Result<std::vector<firewall::Caveat>> caveats() override { return caveat_list; }
  Result<void> remove() override {
    ++removes;
    live.reset();
    return {};
  }

  std::optional<firewall::LiveTable> live;
  std::vector<firewall::BlockingChain> blocking;
  std::vector<firewall::Caveat> caveat_list;
  int applies = 0;
  int removes = 0;
  bool fail_apply = false;
  bool fail_read = false;
};

}  // namespace tetherd::test
