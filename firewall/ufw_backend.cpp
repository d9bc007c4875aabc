#include "firewall/ufw_backend.h"

#include <algorithm>
#include <iterator>
#include <set>

namespace tetherd::firewall {

UfwBackend::UfwBackend(std::vector<std::uint16_t> managed_ports, Runner run,
                       std::function<void()> progress)
    : managed_ports_(std::move(managed_ports)),
      run_(std::move(run)),
      progress_(std::move(progress)) {
  std::sort(managed_ports_.begin(), managed_ports_.end());
}

Result<UfwAdded> UfwBackend::show_added() {
  auto out = run_({"show", "added"});
  if (!out) return make_error("ufw show added: " + out.error().message);
  return parse_ufw_added(*out, managed_ports_);
}

Result<void> UfwBackend::run_each(const std::vector<std::vector<std::string>>& commands) {
  for (const auto& args : commands) {
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
  const std::vector<UfwRule> want = ufw_rules_for(allowlist);
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
    if (!std::binary_search(want.begin(), want.end(), r)) commands.push_back(ufw_delete_args(r));
  }
  if (auto r = run_each(commands); !r) return r;
  verdict_ = allowlist.verdict;
  cluster_ = allowlist.cluster;
  return {};
}

Result<std::optional<LiveTable>> UfwBackend::read() {
  auto added = show_added();
  if (!added) return added.error();
  if (added->ours.empty()) return std::optional<LiveTable>();
  LiveTable live;
  live.allowlist.ports = added->ours.front().ports;
  live.allowlist.verdict = verdict_;
  live.allowlist.cluster = cluster_;
  live.rules_intact = true;
  for (const UfwRule& r : added->ours) {
    live.allowlist.sources.add(r.source);
    if (r.ports != live.allowlist.ports) live.rules_intact = false;
  }
  // The user's identical rules allow those sources just the same.
  for (const UfwRule& r : added->others) {
    if (r.ports == live.allowlist.ports) live.allowlist.sources.add(r.source);
  }
  return std::optional<LiveTable>(std::move(live));
}

Result<void> UfwBackend::remove() {
  auto added = show_added();
  if (!added) return added.error();
  std::vector<std::vector<std::string>> commands;
  for (const UfwRule& r : added->ours)
    commands.push_back(ufw_delete_args(r));
  return run_each(commands);
}

Result<std::vector<Caveat>> UfwBackend::caveats() {
  std::vector<Caveat> out;
  auto status = run_({"status", "verbose"});
  if (!status) return make_error("ufw status verbose: " + status.error().message);
  if (status->find("Status: active") == std::string::npos) {
    out.push_back({true,
                   "ufw is inactive: nothing filters the managed ports and anyone can reach "
                   "them; run `ufw enable` (with your own rules for SSH first)"});
  } else if (status->find("allow (incoming)") != std::string::npos) {
    out.push_back({true,
                   "ufw's default incoming policy is allow: tetherd's allow rules change "
                   "nothing and anyone can reach the managed ports; run `ufw default deny "
                   "incoming`"});
  }
  auto added = show_added();
  if (!added) return added.error();
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
