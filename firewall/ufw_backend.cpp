#include "firewall/ufw_backend.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

namespace tetherd::firewall {

UfwBackend::UfwBackend(std::vector<std::uint16_t> managed_ports, Runner run,
                       std::function<void()> progress, std::string defaults, std::string conf)
    : managed_ports_(std::move(managed_ports)),
      run_(std::move(run)),
      progress_(std::move(progress)),
      defaults_(std::move(defaults)),
      conf_(std::move(conf)) {
  std::sort(managed_ports_.begin(), managed_ports_.end());
}

bool UfwBackend::ipv6_enabled() const {
  // As ufw's use_ipv6(): the settings say yes (ufw.conf read after the
  // defaults, so it wins) and the kernel has IPv6 (not ipv6.disable=1).
  // A few hundred bytes each; what cannot be read is ufw's to complain of.
  std::string text;
  for (const std::string* path : {&defaults_, &conf_}) {
    std::ifstream in(*path);
    std::string part(64 << 10, '\0');
    in.read(part.data(), static_cast<std::streamsize>(part.size()));
    part.resize(static_cast<std::size_t>(in.gcount()));
    text += part + "\n";
  }
  std::error_code ec;
  return ufw_ipv6_enabled(text) && std::filesystem::exists("/proc/sys/net/ipv6", ec);
}

namespace {
Allowlist without_ipv6(const Allowlist& allowlist) {
  Allowlist out = allowlist;
  out.sources = AddressSet(allowlist.sources.cidrs_v4());
  out.inner = AddressSet(allowlist.inner.cidrs_v4());
  return out;
}
}  // namespace

Allowlist UfwBackend::enforceable(const Allowlist& allowlist) {
  Allowlist out = ipv6_enabled() ? allowlist : without_ipv6(allowlist);
  out.cloud = {};  // no evidence with ufw (its logging is per packet)
  // The inner sources are told apart by their rules only while a port is
  // closed (they name more ports than the others' then); with no port left
  // open, the others have no rule at all.
  if (out.closed_ports.empty()) out.inner = {};
  if (!out.closed_ports.empty() && out.closed_ports.size() == out.ports.size())
    out.sources = out.inner;
  return out;
}

Result<UfwAdded> UfwBackend::show_added() {
  auto out = run_({"show", "added"});
  if (!out) return make_error("ufw show added: " + out.error().message);
  return parse_ufw_added(*out, managed_ports_);
}

Result<void> UfwBackend::run_each(const std::vector<std::vector<std::string>>& commands) {
  for (const auto& args : commands) {
    if (interrupted_) {
      return make_error("interrupted with " + std::to_string(commands.size()) +
                        " ufw commands left to run");
    }
    if (auto r = run_(args); !r) {
      std::string line = "ufw";
      for (const auto& a : args)
        line += " " + a;
      return make_error(line + ": " + r.error().message);
    }
    if (progress_) progress_();
  }
  return {};
}

Result<void> UfwBackend::apply(const Allowlist& allowlist) {
  auto added = show_added();
  if (!added) return added.error();
  const bool v6 = ipv6_enabled();
  const Allowlist enforced = v6 ? allowlist : without_ipv6(allowlist);
  // Loopback passes ufw anyway, and link-local addresses are the node's
  // own links: only the rest is lost.
  skipped_v6_ = 0;
  for (const Cidr& c : v6 ? std::vector<Cidr>{} : allowlist.sources.cidrs_v6()) {
    if (!c.network.to_v6().is_loopback() && !c.network.to_v6().is_link_local()) ++skipped_v6_;
  }
  const std::vector<UfwRule> want = ufw_rules_for(enforced);
  std::vector<std::vector<std::string>> commands;
  for (const UfwRule& r : want) {
    // Already there: ours, or the user's own identical rule (which ufw would
    // merge a second one into, taking it over).
    if (!std::binary_search(added->ours.begin(), added->ours.end(), r) &&
        !std::binary_search(added->others.begin(), added->others.end(), r)) {
      commands.push_back(ufw_add_args(r));
    }
  }
  for (const UfwRule& r : added->ours) {
    // With IPv6 off ufw can delete no IPv6 rule either.
    if (!std::binary_search(want.begin(), want.end(), r) && (v6 || r.source.is_v4()))
      commands.push_back(ufw_delete_args(r));
  }
  if (auto r = run_each(commands); !r) return r;
  verdict_ = allowlist.verdict;
  cluster_ = allowlist.cluster;
  closed_ = allowlist.closed_ports;
  inner_ = allowlist.inner;
  return {};
}

Result<std::optional<LiveTable>> UfwBackend::read() {
  auto added = show_added();
  if (!added) return added.error();
  if (added->ours.empty()) return std::optional<LiveTable>();
  LiveTable live;
  live.allowlist.verdict = verdict_;
  live.allowlist.cluster = cluster_;
  live.rules_intact = true;
  const bool v6 = ipv6_enabled();  // off: IPv6 rules are inert, ufw drops all IPv6
  // The ports are those the rules name; which of them are closed is what
  // tetherd last applied (the rules say which sources have which ports,
  // not why): the inner sources' rules name them all, the others' only
  // the open ones.
  std::vector<std::uint16_t> every;
  for (const UfwRule& r : added->ours) {
    std::vector<std::uint16_t> merged;
    std::set_union(every.begin(), every.end(), r.ports.begin(), r.ports.end(),
                   std::back_inserter(merged));
    every = std::move(merged);
  }
  live.allowlist.ports = every;
  for (std::uint16_t p : closed_)
    if (std::binary_search(every.begin(), every.end(), p)) live.allowlist.closed_ports.push_back(p);
  const bool closed = !live.allowlist.closed_ports.empty();
  std::vector<std::uint16_t> open;
  std::set_difference(every.begin(), every.end(), live.allowlist.closed_ports.begin(),
                      live.allowlist.closed_ports.end(), std::back_inserter(open));
  for (const UfwRule& r : added->ours) {
    if (!v6 && !r.source.is_v4()) continue;
    live.allowlist.sources.add(r.source);
    if (closed && r.ports == every) live.allowlist.inner.add(r.source);
    if (r.ports != every && !(closed && r.ports == open)) live.rules_intact = false;
  }
  // The user's identical rules allow those sources just the same (an inner
  // one's stands for tetherd's; one that gives a closed port to any other
  // source is a caveat, not tetherd's to change).
  for (const UfwRule& r : added->others) {
    if (!v6 && !r.source.is_v4()) continue;
    if (r.ports == every || (closed && r.ports == open)) live.allowlist.sources.add(r.source);
    if (closed && r.ports == every && inner_.covers(r.source)) live.allowlist.inner.add(r.source);
  }
  return std::optional<LiveTable>(std::move(live));
}

Result<void> UfwBackend::remove() {
  auto added = show_added();
  if (!added) return added.error();
  std::vector<std::vector<std::string>> commands;
  // With IPv6 off ufw neither lists nor deletes IPv6 rules (README, Known
  // limits: those added while it was on stay in user6.rules).
  const bool v6 = ipv6_enabled();
  for (const UfwRule& r : added->ours)
    if (v6 || r.source.is_v4()) commands.push_back(ufw_delete_args(r));
  return run_each(commands);
}

Result<std::vector<Caveat>> UfwBackend::caveats() {
  std::vector<Caveat> out;
  if (skipped_v6_ > 0 && !ipv6_enabled()) {
    out.push_back({true, "ufw's IPv6 is off (IPV6=no in " + defaults_ + " or " + conf_ +
                             ", or a kernel without IPv6): ufw drops all IPv6 but loopback and "
                             "takes no IPv6 rule, so " +
                             std::to_string(skipped_v6_) +
                             " IPv6 source networks of the allowlist are not applied and the cloud "
                             "must reach the node over IPv4; set IPV6=yes and run `ufw reload` to "
                             "allow them"});
  }
  auto status = run_({"status", "verbose"});
  if (!status) return make_error("ufw status verbose: " + status.error().message);
  if (status->find("Status: active") == std::string::npos) {
    out.push_back({true,
                   "ufw is inactive: nothing filters the managed ports and anyone can reach "
                   "them; run `ufw enable` (with your own rules for SSH first)",
                   true});
  } else if (status->find("allow (incoming)") != std::string::npos) {
    out.push_back({true,
                   "ufw's default incoming policy is allow: tetherd's allow rules change "
                   "nothing and anyone can reach the managed ports; run `ufw default deny "
                   "incoming`",
                   true});
  }
  auto added = show_added();
  if (!added) return added.error();
  // firewall.closeWhenTunnelled: a rule of the user's that gives a closed
  // port to a source tetherd closes it to.
  for (const UfwRule& r : added->others) {
    std::vector<std::uint16_t> named;
    std::set_intersection(r.ports.begin(), r.ports.end(), closed_.begin(), closed_.end(),
                          std::back_inserter(named));
    if (named.empty() || inner_.covers(r.source)) continue;
    std::string ports;
    for (std::uint16_t p : named)
      ports += (ports.empty() ? "" : ",") + std::to_string(p);
    out.push_back({true, "your ufw rule for " + r.source.to_string() + " (not tetherd's) opens " +
                             ports +
                             ", which firewall.closeWhenTunnelled closes to all but the node, "
                             "its cluster and alwaysAllow while the tunnel is up; tetherd never "
                             "changes your own ufw rules"});
  }
  for (const auto& rule : added->open_to_anyone) {
    out.push_back({true, "the rule `" + rule +
                             "` (not tetherd's) opens a managed port to anyone; tetherd never "
                             "changes your own ufw rules"});
  }
  out.push_back({false,
                 "ufw filters host sockets only: it sees a NodePort or ClusterIP translated to "
                 "this node's 6443 as 6443, but connections k3s forwards to pods (a NodePort, "
                 "LoadBalancer or ClusterIP to the linkerd gateway pod, or the pod's address "
                 "routed through the node) pass ufw's routed chain, where tetherd has no "
                 "rules; use firewall.backend: nftables to filter those"});
  return out;
}

}  // namespace tetherd::firewall
