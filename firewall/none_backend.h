#pragma once
// Backend `none`, for hosts where another tool owns the firewall: tetherd
// computes the allowlist and reports what it would apply, and touches
// nothing in the kernel.

#include "firewall/backend.h"

namespace tetherd::firewall {

class NoneBackend final : public Backend {
 public:
  std::string_view name() const override { return "none"; }
  Result<void> apply(const Allowlist& allowlist) override {
    would_apply_ = LiveTable{allowlist, true, 0, {}};
    return {};
  }
  // What would be applied: the report `tetherctl firewall show` gives.
  Result<std::optional<LiveTable>> read() override { return would_apply_; }
  Result<void> remove() override {
    would_apply_.reset();
    return {};
  }

 private:
  std::optional<LiveTable> would_apply_;
};

}  // namespace tetherd::firewall
