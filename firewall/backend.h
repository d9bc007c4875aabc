#pragma once
// A firewall backend reconciles the kernel with an Allowlist. apply() may be
// called again with the same allowlist (it is idempotent); read() reports
// the state actually reached, so drift can be seen and repaired.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/core/result.h"
#include "firewall/allowlist.h"
#include "firewall/coexistence.h"
#include "firewall/nft_ruleset.h"

namespace tetherd::firewall {

// Something the operator must know about how the rules work on this host.
// Serious: the cloud will be blocked, or strangers let in.
struct Caveat {
  bool serious = false;
  std::string message;
  // Nothing filters the managed ports at all (ufw inactive, or its default
  // allow): a handover to this backend would leave them open.
  bool open = false;
  friend bool operator==(const Caveat&, const Caveat&) = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual Result<void> apply(const Allowlist& allowlist) = 0;
  // nullopt: tetherd's rules are not installed at all.
  virtual Result<std::optional<LiveTable>> read() = 0;
  virtual Result<void> remove() = 0;
  // Other firewalls on the same host that drop what this backend allows.
  virtual Result<std::vector<BlockingChain>> blocking_chains() {
    return std::vector<BlockingChain>{};
  }
  // What this backend cannot do here, or what undoes its work.
  virtual Result<std::vector<Caveat>> caveats() { return std::vector<Caveat>{}; }
  // Whether read() brings the kernel's evidence of who connected and who
  // was refused (LiveTable::evidence); else why not.
  virtual Result<void> records_evidence() const {
    return make_error("not available with the " + std::string(name()) + " backend");
  }
  // What of `allowlist` this backend can put in force here: the kernel is
  // checked against this, so what it cannot do is not drift.
  virtual Allowlist enforceable(const Allowlist& allowlist) { return allowlist; }
  // From another thread: while on, an apply or remove in progress stops at
  // its next step with an error (tetherd is stopping; the next apply
  // resumes from what the kernel holds). Backends that finish at once
  // ignore it.
  virtual void interrupt(bool /*on*/) {}
};

}  // namespace tetherd::firewall
