#pragma once
// A firewall backend that keeps the "kernel" in memory, counts what it was
// asked to do, and fails when told to. The real backends are tested on the
// real kernel (test/integration/firewall/).

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "firewall/backend.h"

namespace tetherd::test {

class FakeBackend final : public firewall::Backend {
 public:
  FakeBackend() = default;
  // `journal`: where this backend writes "LABEL apply" and "LABEL remove",
  // shared by several so a test sees their order.
  FakeBackend(std::string label, std::vector<std::string>* journal)
      : label(std::move(label)), journal(journal) {}

  std::string_view name() const override { return label; }
  Result<void> apply(const firewall::Allowlist& a) override {
    if (during_apply) during_apply();
    if (interrupted) return make_error("interrupted");  // as ufw between two runs
    ++applies;
    if (fail_apply) return make_error("fake apply failure");
    if (journal) journal->push_back(label + " apply");
    live = firewall::LiveTable{a, true, 0, {}};
    return {};
  }
  Result<std::optional<firewall::LiveTable>> read() override {
    if (fail_read) return make_error("fake read failure");
    return live;
  }
  Result<std::vector<firewall::BlockingChain>> blocking_chains() override { return blocking; }
  Result<void> records_evidence() const override {
    if (evidence) return {};
    return Backend::records_evidence();
  }
  Result<std::vector<firewall::Caveat>> caveats() override { return caveat_list; }
  void interrupt(bool on) override {
    interrupted = on;
    if (on && on_interrupt) on_interrupt();
  }
  Result<void> remove() override {
    ++removes;
    if (journal) journal->push_back(label + " remove");
    live.reset();
    return {};
  }

  std::string label = "fake";
  std::vector<std::string>* journal = nullptr;
  std::optional<firewall::LiveTable> live;
  std::vector<firewall::BlockingChain> blocking;
  std::vector<firewall::Caveat> caveat_list;
  int applies = 0;
  int removes = 0;
  bool fail_apply = false;
  bool fail_read = false;
  bool evidence = false;  // read() brings LiveTable::evidence (set it in `live`)
  // Runs inside apply(), on whichever thread applies: a test holds the
  // backend there to see what the rest of the daemon does meanwhile.
  std::function<void()> during_apply;
  std::function<void()> on_interrupt;
  std::atomic<bool> interrupted = false;
};

}  // namespace tetherd::test
