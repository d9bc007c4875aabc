#include "firewall/nftables_backend.h"

#include <malloc.h>

#include <nftables/libnftables.h>

#include "firewall/nft_netlink.h"

namespace tetherd::firewall {

void NftablesBackend::CtxFree::operator()(nft_ctx* ctx) const {
  nft_ctx_free(ctx);
}

NftablesBackend::NftablesBackend() = default;
NftablesBackend::~NftablesBackend() = default;

Result<std::string> NftablesBackend::run(const std::string& script, bool json) {
  // A context per command: a context keeps the cache of its last command
  // (four 128 KiB hash tables per table listed, every table of the host
  // after "list chains") until the next one, that is for as long as the
  // daemon idles. A new context costs about 55 us.
  std::unique_ptr<nft_ctx, CtxFree> owned(nft_ctx_new(NFT_CTX_DEFAULT));
  nft_ctx* ctx = owned.get();
  if (!ctx) return make_error("cannot create an nftables context");
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  nft_ctx_output_set_flags(ctx, json ? NFT_CTX_OUTPUT_JSON : 0);
  const int rc = nft_run_cmd_from_buffer(ctx, script.c_str());
  std::string output = nft_ctx_get_output_buffer(ctx);
  std::string error = nft_ctx_get_error_buffer(ctx);
  owned.reset();
  // Give back what the command's parser and cache used: the daemon then
  // idles for hours, and glibc would otherwise keep the freed heap.
  malloc_trim(0);
  if (rc != 0) {
    while (!error.empty() && error.back() == '\n')
      error.pop_back();
    return make_error(error.empty() ? "nftables command failed" : error);
  }
  return Result<std::string>(boost::system::in_place_value, std::move(output));
}

Result<void> NftablesBackend::apply(const Allowlist& allowlist) {
  // First apply after start: learn what the kernel holds (a table kept from
  // before a restart), so that even this apply is a diff.
  if (!reached_ && !known_absent_ && !read()) reached_.reset();
  if (reached_ && reached_->verdict == allowlist.verdict) {
    const std::string script = render_update(*reached_, allowlist);
    if (script.empty() || run(script)) {
      reached_ = allowlist;
      return {};
    }
    // The kernel was not what we thought (someone changed it): replace.
  }
  reached_.reset();
  // The whole table, as one netlink batch (nft_netlink.h): what nft would
  // make of render_replace(allowlist), without parsing it.
  auto r = replace_table(allowlist);
  if (!r) return make_error("applying table inet tetherd: " + r.error().message);
  reached_ = allowlist;
  known_absent_ = false;
  return {};
}

Result<std::optional<LiveTable>> NftablesBackend::read() {
  auto r = run("list table inet tetherd", true);
  if (!r) {
    // nft says "No such file or directory" for a table that does not exist.
    if (r.error().message.find("No such file or directory") != std::string::npos) {
      reached_.reset();
      known_absent_ = true;
      return std::optional<LiveTable>();
    }
    return make_error("reading table inet tetherd: " + r.error().message);
  }
  auto live = parse_live_table(*r);
  if (!live) {
    // Our table, listed, but not as tetherd writes it (an element with a
    // comment, a set of another type): tampered with, so replaced whole by
    // the next apply, rather than a read that fails at every check.
    reached_.reset();
    known_absent_ = false;
    LiveTable tampered;
    tampered.rules_intact = false;
    return std::optional<LiveTable>(std::move(tampered));
  }
  reached_ = live->rules_intact ? std::optional<Allowlist>(live->allowlist) : std::nullopt;
  known_absent_ = false;
  return std::optional<LiveTable>(std::move(*live));
}

Result<void> NftablesBackend::remove() {
  auto r = run(render_remove());
  if (!r) return make_error("removing table inet tetherd: " + r.error().message);
  reached_.reset();
  known_absent_ = true;
  return {};
}

}  // namespace tetherd::firewall

namespace tetherd::firewall {

Result<std::vector<BlockingChain>> NftablesBackend::blocking_chains() {
  // Chains only, not their rules: cheap even beside kube-proxy's thousands.
  auto r = run("list chains", true);
  if (!r) return make_error("listing nftables chains: " + r.error().message);
  return parse_blocking_chains(*r);
}

}  // namespace tetherd::firewall
