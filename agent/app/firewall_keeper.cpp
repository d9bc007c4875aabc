#include "agent/app/firewall_keeper.h"

#include <algorithm>
#include <type_traits>

#include <boost/asio/post.hpp>

#include "agent/adapters/subprocess.h"
#include "firewall/desired_state.h"
#include "firewall/nftables_backend.h"
#include "firewall/none_backend.h"
#include "firewall/ufw_backend.h"

namespace tetherd {

namespace asio = boost::asio;

firewall::Policy firewall_policy(const FirewallConfig& c) {
  firewall::Policy p;
  p.ports = c.ports;
  p.always_allow = c.always_allow;
  p.allow = c.allow;
  p.cluster_networks = c.cluster_networks;
  p.max_sources = c.max_sources;
  p.min_prefix_v4 = c.min_prefix_v4;
  p.min_prefix_v6 = c.min_prefix_v6;
  p.verdict = c.verdict;
  return p;
}

Result<std::string> run_ufw(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"/usr/sbin/ufw"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_command(argv, {.timeout = std::chrono::seconds(60), .max_output = 16 << 20});
  if (!r) return r.error();
  if (r->exit_code != 0) {
    std::string said = r->err.empty() ? r->out : r->err;
    while (!said.empty() && (said.back() == '\n' || said.back() == ' '))
      said.pop_back();
    return make_error("exit code " + std::to_string(r->exit_code) + ": " + said);
  }
  return Result<std::string>(boost::system::in_place_value, std::move(r->out));
}

std::unique_ptr<firewall::Backend> make_firewall_backend(const FirewallConfig& config,
                                                         std::function<void()> progress) {
  switch (config.backend) {
    case FirewallBackend::kNftables:
      return std::make_unique<firewall::NftablesBackend>();
    case FirewallBackend::kNone:
      return std::make_unique<firewall::NoneBackend>();
    case FirewallBackend::kUfw:
      return std::make_unique<firewall::UfwBackend>(config.ports, run_ufw, std::move(progress));
  }
  return nullptr;
}

Result<std::optional<firewall::DesiredSources>> read_saved_desired(const StateDir& state) {
  using Saved = std::optional<firewall::DesiredSources>;
  const std::string where = state.path() + "/" + std::string(firewall::kDesiredStateFile);
  boost::system::error_code ec;
  auto text = state.read(firewall::kDesiredStateFile, ec);
  if (!text) {
    if (ec == boost::system::errc::no_such_file_or_directory) return Saved();
    return make_error("cannot read " + where + ": " + ec.message());
  }
  auto desired = firewall::decode_desired(*text);
  if (!desired) return make_error(where + ": " + desired.error().message);
  return Saved(std::move(*desired));
}

FirewallKeeper::FirewallKeeper(Log& log, StateDir state, BackendFactory make_backend,
                               std::vector<boost::asio::ip::address> node_addresses,
                               boost::asio::any_io_executor loop, Worker worker)
    : log_(log),
      state_(std::move(state)),
      make_backend_(std::move(make_backend)),
      node_addresses_(std::move(node_addresses)),
      loop_(std::move(loop)) {
  if (worker == Worker::kThread) {
    thread_.emplace(1);
    work_ = thread_->get_executor();
  } else {
    work_ = loop_;
  }
}

FirewallKeeper::~FirewallKeeper() {
  // Never stopped (a failed start): the rules stay, the thread ends.
  if (!stopped_.exchange(true)) interrupt(true);
  if (thread_) thread_->join();
}

void FirewallKeeper::interrupt(bool on) {
  std::lock_guard lock(backend_mutex_);
  if (backend_) backend_->interrupt(on);
  if (incoming_) incoming_->interrupt(on);
}

template <class Job, class Done>
void FirewallKeeper::run(Job job, Done done) {
  using R = std::invoke_result_t<Job&>;
  ++in_flight_;
  asio::post(work_, [this, job = std::move(job), done = std::move(done)]() mutable {
    // On the worker: the backend and firewall_ only, no logging.
    std::optional<R> result;
    Snapshot s;
    if (!stopped_) {
      result.emplace(job());
      s = snapshot();
    }
    asio::post(loop_, [this, result = std::move(result), s = std::move(s),
                       done = std::move(done)]() mutable {
      --in_flight_;
      // Work done is reported even after stop (a repair just
      // before SIGTERM is logged); work skipped is not.
      if (!result) return;
      take(std::move(s));
      done(std::move(*result));
    });
  });
}

FirewallKeeper::Snapshot FirewallKeeper::snapshot() const {
  if (!firewall_) return {};
  const auto& d = firewall_->desired();
  return {firewall_->last_good(), d.ports.size(), d.sources.cidrs().size(),
          std::string(backend_->name())};
}

void FirewallKeeper::take(Snapshot s) {
  if (!s.backend.empty()) backend_name_ = std::move(s.backend);
  in_force_ = std::move(s.in_force);
  allowed_ports_ = s.ports;
  allowed_sources_ = s.sources;
}

Result<void> FirewallKeeper::start(const FirewallConfig& config) {
  config_ = config;
  backend_ = make_backend_(config);
  if (!backend_) {
    return make_error(std::string("firewall.backend ") + to_string(config.backend) +
                      " is not available in this version of tetherd");
  }
  firewall_ = std::make_unique<firewall::Firewall>(*backend_, policy_for(config), node_addresses_);

  // The last good desired state, if any: a bad file is reported and set
  // aside (not deleted: it is evidence), and the static allowlist applies.
  auto saved = read_saved_desired(state_);
  if (!saved) {
    log_.error("firewall-state-invalid",
               "ignoring " + saved.error().message + "; applying the static allowlist only");
  } else if (*saved) {
    if (auto r = firewall_->update(**saved); !r) {
      log_.error("firewall-state-invalid",
                 "the saved desired state no longer fits the configuration: " + r.error().message +
                     "; applying the static allowlist only");
    } else {
      take(snapshot());
      log_.notice("firewall-applied", "firewall applied from the saved desired state: " + summary(),
                  {{"BACKEND", std::string(backend_->name())}});
      return {};
    }
  }
  auto r = firewall_->reconcile();
  if (!r) return r.error();
  take(snapshot());
  log_.notice("firewall-applied", "firewall applied: " + summary(),
              {{"BACKEND", std::string(backend_->name())}});
  return {};
}

void FirewallKeeper::update(firewall::DesiredSources desired,
                            std::function<void(Result<void>)> done) {
  const std::uint64_t seq = ++latest_update_;
  wanted_ = desired;
  run(
      [this, seq, desired]() -> std::optional<Result<void>> {
        if (latest_update_ != seq) return std::nullopt;  // overtaken before it started
        return firewall_->update(desired);
      },
      [this, seq, desired, done = std::move(done)](std::optional<Result<void>> r) {
        if (!r) return;
        if (latest_update_ == seq) wanted_.reset();
        if (!*r && stopped_) {
          log_.notice("firewall-interrupted",
                      "stopped while applying an update (" + r->error().message +
                          "); after the next start the control plane's spec is applied again");
        } else if (!*r) {
          log_.warning("firewall-rejected", r->error().message);
        } else {
          if (auto ec =
                  state_.replace(firewall::kDesiredStateFile, firewall::encode_desired(desired))) {
            // The rules are in force; only a restart before the next update
            // would fall back to the previous saved state.
            log_.error("firewall-state-unsaved", "cannot save the desired state: " + ec.message());
          }
          log_.notice("firewall-applied", "firewall updated: " + summary(),
                      {{"BACKEND", backend_name_}});
        }
        if (done) done(std::move(*r));
      });
}

void FirewallKeeper::set_node_addresses(std::vector<boost::asio::ip::address> addresses,
                                        std::function<void()> changed) {
  if (addresses == node_addresses_) return;
  // What came and went, for the log (a pod's start brings its veth's
  // link-local address: the line names that one, not all of them).
  std::string added, removed;
  for (const auto& a : addresses)
    if (std::find(node_addresses_.begin(), node_addresses_.end(), a) == node_addresses_.end())
      added += (added.empty() ? "" : " ") + a.to_string();
  for (const auto& a : node_addresses_)
    if (std::find(addresses.begin(), addresses.end(), a) == addresses.end())
      removed += (removed.empty() ? "" : " ") + a.to_string();
  node_addresses_ = std::move(addresses);
  if (backend_name_.empty()) return;  // not started
  run([this, addresses = node_addresses_] { return firewall_->set_node_addresses(addresses); },
      [this, added, removed, changed = std::move(changed)](Result<void> r) {
        if (!r) {
          log_.error("firewall-failed", "cannot apply the node's new addresses: " +
                                            r.error().message + "; the periodic check tries again");
          return;
        }
        log_.info(
            "node-addresses-changed",
            "the node's own addresses changed, and with them the allowed set:" +
                (added.empty() ? "" : " added " + added) +
                (removed.empty() ? "" : (added.empty() ? " removed " : "; removed ") + removed),
            {{"ADDED", added}, {"REMOVED", removed}});
        if (changed) changed();
      });
}

Result<void> FirewallKeeper::reconfigure(const FirewallConfig& config,
                                         std::function<void(Result<void>)> done) {
  firewall::Policy policy = policy_for(config);
  // The desired state in force must still fit (ports, size, prefixes), and
  // so must the one being applied, which the worker has before this.
  for (const firewall::DesiredSources* d : {&std::as_const(in_force_), &wanted()}) {
    if (auto fits = firewall::validate(*d, policy); !fits) {
      return make_error("new firewall settings reject the current desired state: " +
                        fits.error().message);
    }
  }
  if (config.backend != config_.backend) return hand_over(config, std::move(done));
  config_ = config;
  ++reconfigures_;
  run([this,
       policy = std::move(policy)]() mutable { return firewall_->set_policy(std::move(policy)); },
      [this, done = std::move(done)](Result<void> r) {
        if (!r) {
          log_.error("firewall-failed", "cannot apply the new firewall settings: " +
                                            r.error().message + "; the periodic check tries again");
        } else {
          log_.notice("firewall-applied",
                      "firewall updated for the new configuration: " + summary(),
                      {{"BACKEND", backend_name_}});
        }
        if (done) done(std::move(r));
      });
  return {};
}

firewall::Policy FirewallKeeper::policy_for(const FirewallConfig& config) const {
  firewall::Policy policy = firewall_policy(config);
  policy.closed_ports = closed_ports_;
  return policy;
}

void FirewallKeeper::set_closed_ports(std::vector<std::uint16_t> ports, std::string why,
                                      std::function<void(Result<void>)> done) {
  if (ports == closed_ports_) return;
  closed_ports_ = std::move(ports);
  if (backend_name_.empty()) return;  // not started: start() applies them
  std::string list;
  for (std::uint16_t p : closed_ports_)
    list += (list.empty() ? "" : ", ") + std::to_string(p);
  run([this,
       policy = policy_for(config_)]() mutable { return firewall_->set_policy(std::move(policy)); },
      [this, list, why = std::move(why), done = std::move(done)](Result<void> r) {
        if (!r) {
          log_.error("firewall-failed", "cannot " + std::string(list.empty() ? "reopen" : "close") +
                                            " the tunnelled ports: " + r.error().message +
                                            "; the periodic check tries again");
        } else if (list.empty()) {
          log_.notice("firewall-tunnel-opened",
                      "the tunnelled ports are open again to the allowed sources: " + why,
                      {{"BACKEND", backend_name_}});
        } else {
          log_.notice(
              "firewall-tunnel-closed",
              "port " + list +
                  " closed to all but loopback, the node, the cluster and alwaysAllow: " + why,
              {{"BACKEND", backend_name_}, {"PORTS", list}});
        }
        if (done) done(std::move(r));
      });
}

namespace {
FirewallBackend to_backend(std::string_view name) {
  for (auto b : {FirewallBackend::kNftables, FirewallBackend::kUfw, FirewallBackend::kNone})
    if (name == to_string(b)) return b;
  return FirewallBackend::kNone;
}
}  // namespace

Result<void> FirewallKeeper::hand_over(const FirewallConfig& config,
                                       std::function<void(Result<void>)> done) {
  std::unique_ptr<firewall::Backend> next = make_backend_(config);
  if (!next) {
    return make_error(std::string("firewall.backend ") + to_string(config.backend) +
                      " is not available in this version of tetherd");
  }
  config_ = config;
  ++reconfigures_;
  const std::string from = backend_name_;
  const std::string to = to_string(config.backend);
  // The outcome: the old backend's removal may fail after the new one took
  // over (its rules then linger, allowing what the new one allows).
  // (The backend the worker found in force, and any trouble removing it.)
  struct Handed {
    std::string from;
    std::string lingering;
  };
  using Outcome = Result<Handed>;
  run(
      [this, next = std::move(next), policy = policy_for(config),
       addresses = node_addresses_]() mutable -> Outcome {
        // An earlier handover to this kind failed, or a later reload came
        // back to it: the backend in force stays, with the new settings.
        // (Its twin's remove() would delete the very rules just applied.)
        if (next->name() == backend_->name()) {
          if (auto r = firewall_->set_policy(std::move(policy)); !r) return r.error();
          return Handed{std::string(backend_->name()), ""};
        }
        {
          std::lock_guard lock(backend_mutex_);
          incoming_ = next.get();
        }
        auto fw = std::make_unique<firewall::Firewall>(*next, policy, addresses);
        auto applied = fw->update(firewall_->last_good());
        // A backend that filters nothing (ufw inactive, or its default
        // allow) would leave the ports open once the old rules go.
        if (applied) {
          if (auto caveats = next->caveats()) {
            for (const auto& c : *caveats)
              if (c.open) applied = make_error(c.message);
          }
        }
        std::unique_ptr<firewall::Backend> old;
        {
          std::lock_guard lock(backend_mutex_);
          incoming_ = nullptr;
          if (applied) {
            // The new backend is in force: from here it is the one in use.
            old = std::exchange(backend_, std::move(next));
            firewall_ = std::move(fw);
          }
        }
        // The clean-up runs to its end even when tetherd is stopping (an
        // interrupted one would leave stray rules nothing removes later).
        if (!applied) {
          next->interrupt(false);
          (void)next->remove();  // whatever part of the rules it added
          return applied.error();
        }
        old->interrupt(false);
        Handed handed{std::string(old->name()), ""};
        if (auto removed = old->remove(); !removed) handed.lingering = removed.error().message;
        return handed;
      },
      [this, from, to, done = std::move(done)](Outcome r) {
        if (!r) {
          // The backend in force stays, and config() says so, whatever came
          // since: a reload with the same file tries again.
          config_.backend = to_backend(backend_name_);
          log_.error("firewall-handover-failed",
                     "cannot hand the firewall over from " + from + " to " + to + ": " +
                         r.error().message + "; " + from + " stays in force",
                     {{"BACKEND", from}});
          if (done) done(r.error());
          return;
        }
        if (r->from == backend_name_) {
          log_.notice("firewall-applied",
                      "firewall updated for the new configuration: " + summary(),
                      {{"BACKEND", backend_name_}});
          if (done) done(Result<void>());
          return;
        }
        log_.notice(
            "firewall-handed-over",
            "firewall handed over from " + r->from + " to " + backend_name_ +
                " (the new rules were in force before the old ones were removed): " + summary(),
            {{"BACKEND", backend_name_}, {"PREVIOUS_BACKEND", r->from}});
        if (!r->lingering.empty()) {
          log_.warning("firewall-remove-failed",
                       "cannot remove the rules " + r->from + " kept: " + r->lingering +
                           "; they allow no more than " + backend_name_ + " does",
                       {{"BACKEND", r->from}});
        }
        if (done) done(Result<void>());
      });
  return {};
}

void FirewallKeeper::reconcile(std::function<void(Result<firewall::Firewall::Drift>)> done) {
  using Drift = firewall::Firewall::Drift;
  std::chrono::seconds watched{0};
  if (clock_) {
    const MonoTime now = clock_->monotonic();
    if (!evidence_since_) evidence_since_ = now;
    watched = std::chrono::duration_cast<std::chrono::seconds>(now - *evidence_since_);
  }
  struct Checked {
    Result<Drift> drift;
    std::optional<AddressChangeHint> hint;
    std::optional<EvidenceSummary> summary;
    std::uint64_t table = 0;    // the kernel's handle of the table read
    bool held_seen = false;     // the stranger held has a refused record
    bool held_allowed = false;  // the allowlist lets it through now (the fix)
    bool cloud_back = false;    // the cloud connected within quiet_after
  };
  // A finding holds while its stranger keeps trying at all: its record
  // starts again at one attempt every 10 minutes (nft's `add`), and the
  // finding must not end and start again with it (a log line and a status
  // write each time).
  HintPolicy policy = hint_policy(config_.cloud_address_hint);
  if (address_change_) policy.prefer = address_change_->stranger;
  run(
      [this, watched, policy = std::move(policy), judge = clock_ != nullptr] {
        Checked c{firewall_->reconcile(), std::nullopt, std::nullopt};
        // On the worker, where the allowlist is: not copied for this.
        if (judge && firewall_->evidence()) {
          const firewall::Evidence& e = *firewall_->evidence();
          const firewall::Allowlist& desired = firewall_->desired();
          c.table = e.table;
          const std::vector<firewall::Cidr> networks = firewall_->cloud_sources();
          c.hint = address_change_hint(e, desired, watched, policy, networks);
          c.summary = summarize(e, desired, networks);
          c.cloud_back = std::any_of(e.accepted.begin(), e.accepted.end(), [&](const auto& s) {
            return s.ago < policy.quiet_after && desired.cloud.contains(s.source);
          });
          if (policy.prefer) {
            c.held_allowed = desired.sources.contains(*policy.prefer);
            c.held_seen = std::any_of(e.refused.begin(), e.refused.end(),
                                      [&](const auto& s) { return s.source == *policy.prefer; });
          }
        }
        return c;
      },
      [this, done = std::move(done), posted_since = evidence_since_,
       quiet_after = policy.quiet_after](Checked c) {
        Result<Drift>& r = c.drift;
        if (r && clock_) {
          // A table made anew (a repair, a verdict change, a handover, an
          // update the kernel refused, someone's `nft -f` of the same
          // table) has an empty record: watched from now. And a round
          // posted before that judged with the old watch.
          const MonoTime now = clock_->monotonic();
          const bool afresh = *r != Drift::kNone || c.table != table_seen_;
          table_seen_ = c.table;
          if (afresh) evidence_since_ = now;
          if (afresh || evidence_since_ != posted_since) c.hint.reset();
          if (c.hint || c.held_seen) held_seen_at_ = now;
          // A finding ends when the admin allows its stranger, when the
          // cloud connects again, or when the stranger has had no record
          // for a whole record's span (10 minutes: it stopped trying). Not
          // while a record restarted (a repair) is too young to judge,
          // nor between the end of one of its records and its next packet.
          const bool young = now - *evidence_since_ < quiet_after;
          const bool trying = now - held_seen_at_ < firewall::kEvidenceSets[0].timeout;
          const bool hold =
              !c.hint && address_change_ && !c.held_allowed && !c.cloud_back && (young || trying);
          if (!hold) take_hint(std::move(c.hint));
          evidence_ = std::move(c.summary);
          evidence_read_at_ = clock_->wall();
        }
        if (!r) {
          // Once per failure streak, not once per check (STYLE.md).
          if (!reconcile_failing_)
            log_.error("firewall-reconcile-failed",
                       "cannot check the firewall: " + r.error().message);
          reconcile_failing_ = true;
        } else {
          if (reconcile_failing_)
            log_.notice("firewall-reconciled", "the firewall can be checked again");
          reconcile_failing_ = false;
          if (*r == Drift::kMissing) {
            log_.warning(
                "firewall-repaired",
                "tetherd's rules had been removed by someone else; applied again: " + summary(),
                {{"BACKEND", backend_name_}, {"DRIFT", "missing"}});
          } else if (*r == Drift::kRepaired) {
            log_.warning("firewall-repaired",
                         "tetherd's rules had been changed by someone else; restored: " + summary(),
                         {{"BACKEND", backend_name_}, {"DRIFT", "changed"}});
          }
        }
        if (done) done(std::move(r));
      });
}

void FirewallKeeper::take_hint(std::optional<AddressChangeHint> hint) {
  if (hint && (!address_change_ || !address_change_->same_finding(*hint))) {
    std::string ports;
    for (const auto p : hint->ports)
      ports += (ports.empty() ? "" : ",") + std::to_string(p);
    log_.warning("cloud-address-changed", hint->message(),
                 {{"SOURCE", hint->stranger.to_string()}, {"PORTS", ports}});
    // Refused since its first packet in the record that named it.
    address_change_since_ = clock_ ? clock_->wall() - hint->trying : WallTime{};
  } else if (!hint && address_change_) {
    log_.notice(
        "cloud-address-changed-cleared",
        address_change_->stranger.to_string() + " is no longer refused while the cloud is quiet");
  }
  // The same finding stays as first found (its ports and since: the
  // status does not change with its counts).
  if (!hint || !address_change_ || !address_change_->same_finding(*hint))
    address_change_ = std::move(hint);
}

std::optional<RefusedRecently> FirewallKeeper::refused_recently() const {
  if (!address_change_) return std::nullopt;
  return RefusedRecently{address_change_->stranger.to_string(), address_change_->ports,
                         address_change_since_};
}

void FirewallKeeper::stop() {
  if (stopped_.exchange(true) || backend_name_.empty()) return;
  // What is queued is skipped; what runs stops at its next step.
  interrupt(true);
  if (thread_) thread_->join();
  interrupt(false);
  if (config_.on_stop == OnStop::kKeep) {
    // The tunnel ends with tetherd: the ports it closed open again to the
    // allowed sources, so the cloud keeps a way in.
    // What the worker applied (a reopen queued at the stop was skipped).
    if (!closed_ports_.empty() || !firewall_->desired().closed_ports.empty()) {
      closed_ports_.clear();
      if (auto r = firewall_->set_policy(policy_for(config_)); !r) {
        log_.error("firewall-failed",
                   "cannot reopen the tunnelled ports as tetherd stops: " + r.error().message);
      } else {
        log_.notice("firewall-tunnel-opened",
                    "the tunnelled ports are open again to the allowed sources: tetherd is "
                    "stopping, and the tunnel with it",
                    {{"BACKEND", backend_name_}});
      }
    }
    log_.info("firewall-kept", "firewall rules stay in force after stop (onStop: keep)");
    return;
  }
  if (auto r = backend_->remove(); !r) {
    log_.error("firewall-remove-failed", r.error().message);
  } else {
    log_.notice("firewall-removed", "firewall rules removed (onStop: remove)");
  }
}

void FirewallKeeper::check_surroundings() {
  using Found = std::pair<Result<std::vector<firewall::Caveat>>,
                          Result<std::vector<firewall::BlockingChain>>>;
  run([this] { return Found(backend_->caveats(), backend_->blocking_chains()); },
      [this](Found found) {
        auto& [caveats, blocking] = found;
        if (caveats && *caveats != caveats_) {
          for (const auto& c : *caveats) {
            if (std::find(caveats_.begin(), caveats_.end(), c) != caveats_.end()) continue;
            log_.write(c.serious ? Priority::kWarning : Priority::kNotice, "firewall-caveat",
                       c.message, {{"BACKEND", backend_name_}});
          }
          caveats_ = std::move(*caveats);
        }
        if (!blocking) return;  // a read failure is the reconcile's to report
        if (*blocking == blocking_) return;
        for (const auto& chain : *blocking) {
          if (std::find(blocking_.begin(), blocking_.end(), chain) != blocking_.end()) continue;
          log_.warning("firewall-blocked-elsewhere", firewall::explain(chain, config_.ports),
                       {{"TABLE", chain.family + " " + chain.table}, {"CHAIN", chain.chain}});
        }
        if (blocking->empty())
          log_.notice("firewall-unblocked", "no other firewall drops the managed ports any more");
        blocking_ = std::move(*blocking);
      });
}

Result<void> FirewallKeeper::check(const firewall::DesiredSources& desired) const {
  auto sources = firewall::validate(desired, firewall_policy(config_));
  if (!sources) return sources.error();
  return {};
}

std::string_view FirewallKeeper::backend_name() const {
  return backend_name_.empty() ? std::string_view("none") : std::string_view(backend_name_);
}

std::string FirewallKeeper::summary() const {
  if (backend_name_.empty()) return "not applied";
  return backend_name_ + ", " + std::to_string(allowed_ports_) + " ports, " +
         std::to_string(allowed_sources_) + " source networks";
}

}  // namespace tetherd
