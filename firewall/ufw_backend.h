#pragma once
// The ufw backend: tetherd's allow rules in ufw (see ufw_rules.h), applied
// by diff against `ufw show added`, one ufw command per changed source.
// Adds come before deletes, so a source that stays allowed under another
// shape (a /32 folded into a /24) is never without a rule.
//
// ufw is a program, not a library: every change is a run of /usr/sbin/ufw
// (about 0.1-0.4 s each). `progress` is called between runs so the daemon
// can tell the watchdog it is busy, not wedged. ufw has no verdict of its
// own for tetherd: its default incoming policy decides (deny or reject).
//
// What ufw cannot cover: ports that k3s publishes through DNAT (servicelb,
// hostPort, NodePort) go through FORWARD after translation, where the port
// the peer dialled is gone, so ufw rules cannot filter them by it. caveats()
// says so, with what else undoes the rules (ufw inactive, a default allow
// policy, a user rule opening a managed port to anyone).
//
// With IPV6=no in /etc/default/ufw (or /etc/ufw/ufw.conf), or a kernel
// without IPv6, ufw refuses every IPv6 rule and drops all IPv6 but loopback: the IPv6 sources are
// skipped (a caveat says so once), not retried for ever, and the check for drift does not count
// them.

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "firewall/backend.h"
#include "firewall/ufw_rules.h"

namespace tetherd::firewall {

class UfwBackend final : public Backend {
 public:
  // Runs ufw with these arguments; stdout on success, or the error (with
  // what ufw printed on stderr).
  using Runner = std::function<Result<std::string>(const std::vector<std::string>& args)>;

  // `defaults` and `conf` are ufw's own settings files, read in that order
  // as ufw reads them (IPV6=).
  UfwBackend(std::vector<std::uint16_t> managed_ports, Runner run,
             std::function<void()> progress = {}, std::string defaults = "/etc/default/ufw",
             std::string conf = "/etc/ufw/ufw.conf");

  std::string_view name() const override { return "ufw"; }
  Result<void> apply(const Allowlist& allowlist) override;
  Result<std::optional<LiveTable>> read() override;
  Result<void> remove() override;
  Result<std::vector<Caveat>> caveats() override;
  Allowlist enforceable(const Allowlist& allowlist) override;
  Result<void> records_evidence() const override {
    return make_error(
        "not available with ufw: its logging is per packet and rate-limited, "
        "so it cannot say who was refused or when the cloud last connected");
  }
  void interrupt(bool on) override { interrupted_ = on; }

 private:
  bool ipv6_enabled() const;
  Result<UfwAdded> show_added();
  Result<void> run_each(const std::vector<std::vector<std::string>>& commands);

  std::vector<std::uint16_t> managed_ports_;
  Runner run_;
  std::function<void()> progress_;
  std::string defaults_;
  std::string conf_;
  std::atomic<bool> interrupted_ = false;
  // IPv6 sources beyond loopback and link-local left out of the last apply
  // (IPV6=no).
  std::size_t skipped_v6_ = 0;
  Verdict verdict_ = Verdict::kDrop;  // as last applied; ufw has its own
  // As last applied: ufw's rules filter what ends on the node, not what it
  // routes to pods (caveats() says so), so there is nothing to read back.
  AddressSet cluster_;
  // As last applied: the ports closed to all but `inner_` (ufw's rules say
  // which sources have which ports, not why).
  std::vector<std::uint16_t> closed_;
  AddressSet inner_;
};

}  // namespace tetherd::firewall
