#pragma once
// The nftables backend, in-process (no `nft` child process). Each apply is
// one transaction: a diff of set elements against the state last reached
// (read() refreshes it from the kernel), through libnftables; or, when the
// table is missing, tampered with or its verdict changes, a replacement of
// the whole table, as one netlink batch (nft_netlink.h).
//
// Why not always replace the whole table, which is also one transaction:
// measured on Linux 6.18, a connection from a source present in both the old
// and the new table was refused or reset while tables were
// being replaced (36 of 1887 connects during 100 replacements), and none
// while only elements changed (nftables_kernel_test.cpp).

#include <memory>
#include <optional>
#include <string>

#include "firewall/backend.h"

struct nft_ctx;

namespace tetherd::firewall {

class NftablesBackend final : public Backend {
 public:
  NftablesBackend();
  ~NftablesBackend() override;

  std::string_view name() const override { return "nftables"; }
  Result<void> records_evidence() const override { return {}; }
  Result<void> apply(const Allowlist& allowlist) override;
  Result<std::optional<LiveTable>> read() override;
  Result<void> remove() override;
  Result<std::vector<BlockingChain>> blocking_chains() override;

  // Runs an nft script (one transaction); with json, output is JSON.
  // Returns the output, or the error nft printed.
  Result<std::string> run(const std::string& script, bool json = false);

 private:
  struct CtxFree {
    void operator()(nft_ctx* ctx) const;
  };
  std::optional<Allowlist> reached_;  // what the kernel holds, as far as we know
  bool known_absent_ = false;         // the table is not there (we removed it)
};

}  // namespace tetherd::firewall
