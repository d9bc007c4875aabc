#include "test/simulation/firewall_sim.h"

#include <algorithm>
#include <deque>
#include <malloc.h>
#include <memory>
#include <random>
#include <sstream>
#include <tuple>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "agent/adapters/state_dir.h"
#include "agent/app/firewall_keeper.h"
#include "agent/config/config_loader.h"
#include "agent/core/spec_intake.h"
#include "firewall/desired_state.h"
#include "firewall/nftables_backend.h"
#include "test/simulation/seeds.h"
#include "test/simulation/tail_log.h"
#include "test/support/fake_backend.h"
#include "test/support/keeper_calls.h"
#include "test/support/netns.h"
#include "test/support/temp_dir.h"

namespace tetherd::sim::firewall {
namespace {

using namespace std::chrono_literals;
namespace fw = tetherd::firewall;
namespace json = boost::json;
using boost::asio::ip::make_address;

constexpr std::uint16_t kTunnelled = 6443;  // tunnel.destinations' default, 127.0.0.1:6443
const std::vector<std::string> kMalformed = {"bogus", "198.51.100.0/33", "300.1.2.3/32",
                                             "2001:db8::/129", ""};

// ---------------------------------------------------------------- the model

// Whether `sources`/`ports` fit `file`, by the model's own reading (the
// generator's markers and the texts' prefix lengths), not the code's.
bool fits(const std::vector<std::string>& sources, const std::vector<std::uint16_t>& ports,
          const File& file) {
  if (sources.size() > file.max_sources) return false;
  for (std::uint16_t p : ports)
    if (std::find(file.ports.begin(), file.ports.end(), p) == file.ports.end()) return false;
  for (const std::string& s : sources) {
    if (std::find(kMalformed.begin(), kMalformed.end(), s) != kMalformed.end()) return false;
    const unsigned prefix = static_cast<unsigned>(std::stoi(s.substr(s.find('/') + 1)));
    if (prefix < (s.find(':') != std::string::npos ? file.min_v6 : file.min_v4)) return false;
  }
  return true;
}

File default_file() {
  return File{.ports = {6443, 4143, 4191},
              .max_sources = 4096,
              .always_allow = {"10.42.0.0/16", "10.43.0.0/16"},
              .allow = {},
              .min_v4 = 8,
              .min_v6 = 32};
}

std::string list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const auto& i : items)
    out += (out.size() > 1 ? ", " : "") + i;
  return out + "]";
}

std::string yaml_of(const File& f) {
  std::string ports = "[";
  for (auto p : f.ports)
    ports += (ports.size() > 1 ? ", " : "") + std::to_string(p);
  ports += "]";
  return "firewall:\n  ports: " + ports + "\n  maxSources: " + std::to_string(f.max_sources) +
         "\n  alwaysAllow: " + list(f.always_allow) + "\n  allow: " + list(f.allow) +
         "\n  minPrefixLength: {ipv4: " + std::to_string(f.min_v4) +
         ", ipv6: " + std::to_string(f.min_v6) + "}\n";
}

// ------------------------------------------------------------ the generator

class Draw {
 public:
  explicit Draw(std::uint64_t seed) : rng_(seed) {}
  // mt19937_64's numbers are the same on every standard library; its
  // distributions are not, so a seed printed by one replays on another.
  int below(int n) { return static_cast<int>(rng_() % static_cast<std::uint64_t>(n)); }
  bool chance(double p) { return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p; }
  Duration within(Duration span) {
    return Duration(static_cast<Duration::rep>(rng_() % static_cast<std::uint64_t>(span.count())));
  }

  std::string source() {
    switch (below(6)) {
      case 0:
        return "203.0.113." + std::to_string(below(256)) + "/32";
      case 1:
        return "198.51.100." + std::to_string(16 * below(16)) + "/28";
      case 2:
        return "10." + std::to_string(below(256)) + ".0.0/16";
      case 3:
        return "100." + std::to_string(64 + 16 * below(4)) + ".0.0/12";  // too wide at /16
      case 4:
        return "2001:db8:" + hex(below(65536)) + "::/48";
      default:
        return "2001:db8:1:" + hex(below(65536)) + "::/64";
    }
  }
  std::vector<std::uint16_t> ports() {
    switch (below(5)) {
      case 0:
        return {};
      case 1:
        return {6443};
      case 2:
        return {4143, 4191};
      case 3:
        return {6443, 4143, 4191};
      default:
        return {8443};  // managed only by some files
    }
  }
  File file() {
    File f = default_file();
    if (chance(0.3)) f.ports.push_back(8443);
    const std::uint32_t sizes[] = {4096, 5000, 100, 50};
    f.max_sources = sizes[below(4)];
    if (chance(0.3)) f.always_allow.push_back("192.0.2.128/25");
    if (chance(0.3)) f.allow.push_back("203.0.113.200/32");
    f.min_v4 = chance(0.3) ? 16 : 8;
    f.min_v6 = chance(0.3) ? 48 : 32;
    return f;
  }
  std::string bad_file() {
    switch (below(5)) {
      case 0:
        return "firewall:\n  ports: [70000]\n";
      case 1:
        return "firewall:\n  allow: [bogus]\n";
      case 2:
        return "firewall:\n  maxSources: 0\n";
      case 3:
        return "extra: 1\nfirewall: {}\n";
      default:
        return "firewall: [\n";
    }
  }

 private:
  static std::string hex(int v) {
    char out[16];
    std::snprintf(out, sizeof out, "%x", v);
    return out;
  }
  std::mt19937_64 rng_;
};

// `rotate`: spec.linkerd.rotate, another part of the spec (none if empty).
std::string edge_node(std::int64_t generation, const std::string& firewall,
                      const std::string& rotate = "") {
  return R"({"apiVersion":"tetherd.io/v1alpha1","kind":"EdgeNode","metadata":{"name":"node-a",)"
         R"("namespace":"edge","generation":)" +
         std::to_string(generation) + R"(},"spec":{"firewall":)" + firewall +
         (rotate.empty() ? "" : R"(,"linkerd":{"rotate":")" + rotate + "\"}") + "}}";
}

std::string firewall_json(const std::vector<std::string>& sources,
                          const std::vector<std::uint16_t>& ports) {
  json::object f;
  json::array s, p;
  for (const auto& x : sources)
    s.emplace_back(x);
  for (auto x : ports)
    p.emplace_back(x);
  f["allowedSources"] = std::move(s);
  if (!ports.empty()) f["ports"] = std::move(p);
  return json::serialize(f);
}

// An EdgeNode of a kind drawn by the spec mix; `huge`: a huge set's size.
void make_spec(Draw& d, Event& e, int huge, std::int64_t generation) {
  const int r = d.below(100);
  e.spec = r < 70   ? SpecClass::kValid
           : r < 76 ? SpecClass::kHuge
           : r < 82 ? SpecClass::kUndecodable
           : r < 88 ? SpecClass::kMalformedSource
           : r < 92 ? SpecClass::kTooMany
           : r < 96 ? SpecClass::kTooWide
                    : SpecClass::kPort;
  int n = 1 + d.below(40);
  if (e.spec == SpecClass::kHuge) n = huge - d.below(huge / 3);
  if (e.spec == SpecClass::kTooMany) n = 5001 + d.below(100);  // the largest maxSources is 5000
  for (int i = 0; i < n; ++i)
    e.sources.push_back(e.spec == SpecClass::kHuge || e.spec == SpecClass::kTooMany
                            ? "2001:db8:2:" + std::to_string(i) + "::/64"
                            : d.source());
  e.ports = d.ports();
  if (e.spec == SpecClass::kMalformedSource)
    e.sources[static_cast<std::size_t>(d.below(n))] = kMalformed[d.below(5)];
  if (e.spec == SpecClass::kTooWide)
    e.sources.push_back(d.chance(0.5) ? "0.0.0.0/0" : "2001:db8::/16");
  if (e.spec == SpecClass::kPort) e.ports = {22};
  std::string firewall = firewall_json(e.sources, e.ports);
  if (e.spec == SpecClass::kUndecodable) {
    firewall = d.chance(0.5) ? R"({"allowedSources":"198.51.100.0/24"})"
                             : R"({"allowedSources":[],"ports":[70000]})";
    e.sources.clear();
    e.ports.clear();
  }
  e.text = edge_node(generation, firewall);
}

// ------------------------------------------------------------- the world

// The keeper's backend: the one kernel of the run (it outlives a keeper,
// as the table outlives a restart with onStop: keep), and a kernel that
// refuses when told.
class Kernel final : public fw::Backend {
 public:
  Kernel(fw::Backend& real, bool* refuse, bool* removed)
      : real_(real), refuse_(refuse), removed_(removed) {}
  // The real kernel: a backend of its own, with no state from before.
  Kernel(std::unique_ptr<fw::Backend> owned, bool* refuse, bool* removed)
      : owned_(std::move(owned)), real_(*owned_), refuse_(refuse), removed_(removed) {}
  std::string_view name() const override { return real_.name(); }
  Result<void> apply(const fw::Allowlist& a) override {
    if (*refuse_) return make_error("the kernel refused the transaction (simulated)");
    return real_.apply(a);
  }
  Result<std::optional<fw::LiveTable>> read() override { return real_.read(); }
  Result<void> remove() override {
    *removed_ = true;
    return real_.remove();
  }
  fw::Allowlist enforceable(const fw::Allowlist& a) override { return real_.enforceable(a); }
  void interrupt(bool on) override { real_.interrupt(on); }

 private:
  std::unique_ptr<fw::Backend> owned_;
  fw::Backend& real_;
  bool* refuse_;
  bool* removed_;
};

FirewallConfig config_of(const std::string& yaml) {
  auto parsed = parse_config(yaml, LoadOptions{.host_name = "node-a"});
  return std::get<Config>(parsed).firewall;
}

std::vector<boost::asio::ip::address> addresses_of(const std::vector<std::string>& texts) {
  std::vector<boost::asio::ip::address> out;
  for (const auto& t : texts)
    out.push_back(make_address(t));
  return out;
}

class World {
 public:
  World(Mode mode, bool sabotage) : mode_(mode), sabotage_(sabotage) {
    if (mode_ == Mode::kNftables) {
      netns_ = "tetherd-sim-" + std::to_string(getpid());
      test::sh("ip netns add " + netns_);
      inside_.emplace(netns_);
      checker_ = std::make_unique<fw::NftablesBackend>();
    }
    file_ = default_file();
    start(yaml_of(file_));
  }
  ~World() {
    if (keeper_) keeper_->stop();
    keeper_.reset();
    checker_.reset();
    inside_.reset();
    if (!netns_.empty()) std::system(("ip netns delete " + netns_ + " 2>/dev/null").c_str());
  }

  // One event, then everything it queued, then the invariants.
  std::optional<std::string> step(const Event& e, Totals& totals) {
    switch (e.kind) {
      case Kind::kSpec: {
        current_ = e;
        refuse_ = e.kernel_refuses;
        deliver(/*retry=*/false, totals);
        test::drain(io_);
        refuse_ = false;
        break;
      }
      case Kind::kBurst:
        // Each judged while the one before is queued or applying: joined,
        // overtaken, or refused while another lands.
        for (const Event& one : e.burst) {
          current_ = one;
          deliver(/*retry=*/false, totals);
        }
        test::drain(io_);
        break;
      case Kind::kEcho:
        if (!current_) return std::nullopt;
        deliver(/*retry=*/true, totals);
        test::drain(io_);
        break;
      case Kind::kFlush:
        if (mode_ == Mode::kMemory) {
          fake_.live.reset();
        } else {
          test::sh("ip netns exec " + netns_ + " nft flush ruleset");
        }
        if (sabotage_) break;  // the checker's own test: the monitor deaf
        reconcile(totals);
        break;
      case Kind::kDrift:
        if (mode_ == Mode::kMemory) {
          if (fake_.live) fake_.live->allowlist.sources.add(*fw::parse_cidr("203.0.113.66/32"));
        } else {
          // Fails when the table is gone or the address already allowed:
          // then there is nothing to drift.
          std::ignore = std::system(("ip netns exec " + netns_ +
                                     " nft add element inet tetherd allowed4 '{ 203.0.113.66 }'"
                                     " >/dev/null 2>&1")
                                        .c_str());
        }
        reconcile(totals);
        break;
      case Kind::kReconcile:
        reconcile(totals);
        break;
      case Kind::kReload:
        reload(e, totals);
        break;
      case Kind::kRestart:
        keeper_->stop();
        keeper_.reset();
        if (e.file) file_ = *e.file;
        start(yaml_of(file_));
        // The model: the saved set if it fits the file, else the static
        // allowlist alone; the session starts afresh and lists again.
        in_force_ =
            saved_ && fits(saved_->sources, saved_->ports, file_) ? *saved_ : fw::DesiredSources{};
        closed_ = false;
        if (current_) {
          deliver(/*retry=*/false, totals);
          test::drain(io_);
        }
        break;
      case Kind::kAddresses:
        addresses_ = e.addresses;
        keeper_->set_node_addresses(addresses_of(addresses_));
        test::drain(io_);
        break;
      case Kind::kTunnel:
        closed_ = e.on;
        keeper_->set_closed_ports(
            e.on ? std::vector<std::uint16_t>{kTunnelled} : std::vector<std::uint16_t>{},
            e.on ? "the tunnel holds its servers" : "the tunnel is down");
        test::drain(io_);
        break;
    }
    totals.largest = std::max(totals.largest, keeper_->in_force().sources.size());
    return check();
  }

  // The set in force and the last spec seen are small (40 sources at most).
  bool holds_small_sets() const {
    return keeper_->in_force().sources.size() <= 40 &&
           (!current_ || current_->sources.size() <= 40);
  }

 private:
  void start(const std::string& yaml) {
    keeper_ = std::make_unique<FirewallKeeper>(
        log_, StateDir(dir_.path()),
        [this](const FirewallConfig&) -> std::unique_ptr<fw::Backend> {
          if (mode_ == Mode::kMemory) return std::make_unique<Kernel>(fake_, &refuse_, &removed_);
          return std::make_unique<Kernel>(std::make_unique<fw::NftablesBackend>(), &refuse_,
                                          &removed_);
        },
        addresses_of(addresses_), io_.get_executor(), FirewallKeeper::Worker::kLoop);
    if (auto r = keeper_->start(config_of(yaml)); !r)
      started_ = "the keeper did not start: " + r.error().message;
    intake_ = {};
  }

  // Tether::take's handling of decide_spec, for the firewall's part.
  void deliver(bool retry, Totals& totals) {
    const Event& e = *current_;
    // The model first: a spec that decodes and fits, and differs from the
    // set in force, is applied unless the kernel refuses.
    const bool decodes = e.spec != SpecClass::kUndecodable;
    const bool ok = decodes && fits(e.sources, e.ports, file_);
    const fw::DesiredSources asked{e.sources, e.ports};
    // A re-delivery is judged again only after a failed apply.
    if (ok && asked != in_force_ && (!retry || apply_failed_model_)) {
      if (refuse_) {
        apply_failed_model_ = true;
        ++totals.kernel_refused;
      } else {
        saved_ = in_force_ = asked;
        if (retry) ++totals.retried;
        apply_failed_model_ = false;
      }
    } else if (!retry || !ok) {
      apply_failed_model_ = false;
    }
    if (!retry && !ok) ++totals.refused;
    refused_model_ = decodes && !ok ? std::optional<Event>(e) : std::nullopt;

    // Then the code.
    boost::system::error_code ec;
    const json::value parsed = json::parse(e.text, ec);
    if (ec || !parsed.is_object()) return;  // the watch's decoder drops it before
    take(parsed.as_object(), totals);
  }

  void take(const json::object& object, Totals& totals) {
    const SpecDecision d = decide_spec(
        {.object = object,
         .last_spec = intake_.last_spec ? &*intake_.last_spec : nullptr,
         .apply_failed = intake_.apply_failed,
         .rotate = "",
         .wanted = keeper_->wanted(),
         .in_force = keeper_->in_force(),
         .busy = keeper_->busy(),
         .fits = [this](const fw::DesiredSources& asked) { return keeper_->check(asked); }});
    if (d.action == SpecAction::kNothing) return;
    if (d.action == SpecAction::kJoin) ++totals.joined;
    const json::value* spec = object.if_contains("spec");
    intake_.last_spec = spec ? *spec : json::value(nullptr);
    intake_.apply_failed = false;
    intake_.rejected.reset();
    if (d.action == SpecAction::kRefused) intake_.rejected = object;
    if (d.action != SpecAction::kApply) return;
    ++totals.overtaken;  // until it answers
    keeper_->update(d.spec->firewall, [this, &totals](Result<void> r) {
      --totals.overtaken;
      if (!r) {
        intake_.apply_failed = true;
        return;
      }
      ++totals.applied;
    });
  }

  void reconcile(Totals& totals) {
    auto r = test::reconcile(io_, *keeper_);
    if (r && *r != fw::Firewall::Drift::kNone) ++totals.repairs;
  }

  void reload(const Event& e, Totals& totals) {
    auto parsed = parse_config(e.text, LoadOptions{.host_name = "node-a"});
    if (std::holds_alternative<ConfigErrors>(parsed) != !e.file_good) {
      reload_surprise_ = e.file_good ? "a good file was rejected: " +
                                           std::get<ConfigErrors>(parsed).front().message
                                     : "a bad file was taken";
      return;
    }
    if (!e.file_good) {
      ++totals.reloads_rejected;
      return;
    }
    const FirewallConfig next = std::get<Config>(parsed).firewall;
    if (next == keeper_->config()) return;
    const bool model_fits = fits(in_force_.sources, in_force_.ports, *e.file);
    const Result<void> taken = keeper_->reconfigure(next);
    if (static_cast<bool>(taken) != model_fits) {
      reload_surprise_ = std::string("the keeper ") + (taken ? "took" : "refused") +
                         " a file the set in force " + (model_fits ? "fits" : "does not fit") +
                         (taken ? std::string() : ": " + taken.error().message);
      return;
    }
    if (!taken) {
      ++totals.reloads_rejected;
      return;
    }
    file_ = *e.file;
    // Tether::firewall_policy_changed: the spec refused by the old limits,
    // judged anew.
    if (refused_model_ && fits(refused_model_->sources, refused_model_->ports, file_)) {
      saved_ = in_force_ = fw::DesiredSources{refused_model_->sources, refused_model_->ports};
      refused_model_.reset();
      apply_failed_model_ = false;
      ++totals.rejudged;
    }
    if (intake_.rejected) {
      const json::object object = std::move(*intake_.rejected);
      intake_.rejected.reset();
      intake_.last_spec.reset();
      take(object, totals);
    }
    test::drain(io_);
  }

  // The contract: the last spec the control plane sent, when it decodes
  // and fits the file, is in force, unless its apply failed and nothing
  // has delivered it again since.
  std::optional<std::string> latest_in_force() {
    if (!current_ || apply_failed_model_) return std::nullopt;
    const Event& e = *current_;
    if (e.spec == SpecClass::kUndecodable || !fits(e.sources, e.ports, file_)) return std::nullopt;
    const fw::DesiredSources asked{e.sources, e.ports};
    if (keeper_->in_force() != asked)
      return "latest-valid-spec-in-force: the control plane's spec (" +
             std::to_string(e.sources.size()) + " sources) fits, but " +
             std::to_string(keeper_->in_force().sources.size()) + " sources are in force";
    return std::nullopt;
  }

  static bool same(const fw::AddressSet& a, const fw::AddressSet& b) {
    fw::AddressSet extra = a, missing = b;
    extra.remove(b);
    missing.remove(a);
    return extra.empty() && missing.empty();
  }

  std::optional<std::string> check() {
    if (!started_.empty()) return "firewall-in-force: " + started_;
    if (!reload_surprise_.empty()) return "reload-judged-as-expected: " + reload_surprise_;
    // The kernel: present, the ports, the sources (exactly the static ones,
    // the node's, loopback and the set in force), the closed ports.
    if (removed_) return "firewall-in-force: the keeper removed the table (onStop is keep)";
    auto live = mode_ == Mode::kMemory ? fake_.read() : checker_->read();
    if (!live) return "firewall-in-force: cannot read the kernel: " + live.error().message;
    if (!*live) return "firewall-in-force: no tetherd table in the kernel" + log_.tail();
    const fw::Allowlist& a = (**live).allowlist;
    std::vector<std::uint16_t> ports = file_.ports;
    std::sort(ports.begin(), ports.end());
    if (a.ports != ports) return "firewall-is-the-desired-set: other ports filtered";
    fw::AddressSet want;
    for (const char* l : {"127.0.0.0/8", "::1/128"})
      want.add(*fw::parse_cidr(l));
    for (const auto& l : {file_.always_allow, file_.allow, in_force_.sources})
      for (const auto& s : l)
        want.add(*fw::parse_cidr(s));
    for (const auto& s : default_file().always_allow)  // clusterNetworks' default
      want.add(*fw::parse_cidr(s));
    for (const auto& s : addresses_)
      want.add(*fw::parse_cidr(s + (s.find(':') != std::string::npos ? "/128" : "/32")));
    if (!same(a.sources, want))
      return "firewall-is-the-desired-set: the allowed sources are not the static ones, the "
             "node's and the " +
             std::to_string(in_force_.sources.size()) + " in force (" +
             std::to_string(a.sources.cidrs().size()) + " ranges in the kernel)" + log_.tail();
    // Who still reaches a closed port (loopback, the node, the cluster,
    // alwaysAllow), and whose connections are the cloud's (allow and the
    // set in force, less loopback, the node and the cluster).
    fw::AddressSet own;
    for (const char* l : {"127.0.0.0/8", "::1/128"})
      own.add(*fw::parse_cidr(l));
    for (const auto& s : default_file().always_allow)  // clusterNetworks' default
      own.add(*fw::parse_cidr(s));
    for (const auto& s : addresses_)
      own.add(*fw::parse_cidr(s + (s.find(':') != std::string::npos ? "/128" : "/32")));
    fw::AddressSet inner = own, cloud;
    for (const auto& s : file_.always_allow)
      inner.add(*fw::parse_cidr(s));
    for (const auto& l : {file_.allow, in_force_.sources})
      for (const auto& s : l)
        cloud.add(*fw::parse_cidr(s));
    cloud.remove(own);
    if (!same(a.inner, inner))
      return "firewall-is-the-desired-set: who reaches a closed port is not loopback, the "
             "node, the cluster and alwaysAllow" +
             log_.tail();
    if (!same(a.cloud, cloud))
      return "firewall-is-the-desired-set: the cloud's sources are not allow and the set in "
             "force" +
             log_.tail();
    const bool managed =
        std::find(file_.ports.begin(), file_.ports.end(), kTunnelled) != file_.ports.end();
    const std::vector<std::uint16_t> closed =
        closed_ && managed ? std::vector<std::uint16_t>{kTunnelled} : std::vector<std::uint16_t>{};
    if (a.closed_ports != closed)
      return std::string("firewall-is-the-desired-set: 6443 ") +
             (closed.empty() ? "closed with the tunnel down" : "open with the tunnel up");
    if (auto v = latest_in_force()) return v;
    if (keeper_->in_force() != in_force_)
      return "keeper-agrees: the keeper holds " +
             std::to_string(keeper_->in_force().sources.size()) + " sources, the model " +
             std::to_string(in_force_.sources.size()) + log_.tail();
    // The saved state: parses, and is the last set applied.
    boost::system::error_code ec;
    auto text = StateDir(dir_.path()).read(fw::kDesiredStateFile, ec);
    if (!saved_) {
      if (text) return "state-file-agrees: a state file with nothing ever applied";
      return std::nullopt;
    }
    if (!text) return "state-file-agrees: no state file after an apply";
    auto decoded = fw::decode_desired(*text);
    if (!decoded)
      return "state-file-agrees: the state file does not parse: " + decoded.error().message;
    if (*decoded != *saved_)
      return "state-file-agrees: the state file holds " + std::to_string(decoded->sources.size()) +
             " sources, the last set applied " + std::to_string(saved_->sources.size());
    return std::nullopt;
  }

  struct Intake {
    std::optional<json::value> last_spec;
    bool apply_failed = false;
    std::optional<json::object> rejected;
  };

  Mode mode_;
  bool sabotage_;
  std::string netns_;
  std::optional<test::InNetns> inside_;
  // Reads the kernel for the checks: not the keeper's backend, whose read
  // would refresh what it believes is in force.
  std::unique_ptr<fw::NftablesBackend> checker_;
  bool removed_ = false;
  test::FakeBackend fake_;
  bool refuse_ = false;
  boost::asio::io_context io_{1};
  test::TempDir dir_;
  TailLog log_;
  std::unique_ptr<FirewallKeeper> keeper_;
  Intake intake_;
  std::string started_, reload_surprise_;

  // The model.
  File file_;
  fw::DesiredSources in_force_;
  std::optional<fw::DesiredSources> saved_;
  bool closed_ = false;
  bool apply_failed_model_ = false;
  std::optional<Event> refused_model_;
  std::vector<std::string> addresses_ = {"192.0.2.1", "2001:db8:a::1"};
  std::optional<Event> current_;
};

std::optional<long> heap_in_use() {
#if defined(__SANITIZE_ADDRESS__)
  return std::nullopt;  // ASan's allocator: mallinfo2 does not see it
#else
  return static_cast<long>(mallinfo2().uordblks);
#endif
}

}  // namespace

const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::kSpec:
      return "spec";
    case Kind::kEcho:
      return "re-delivery";
    case Kind::kBurst:
      return "burst of specs";
    case Kind::kFlush:
      return "someone flushes the ruleset";
    case Kind::kDrift:
      return "someone adds 203.0.113.66";
    case Kind::kReconcile:
      return "reconcile";
    case Kind::kReload:
      return "reload";
    case Kind::kRestart:
      return "restart";
    case Kind::kAddresses:
      return "node addresses";
    case Kind::kTunnel:
      return "tunnel";
  }
  return "?";
}

Scenario generate(std::uint64_t seed, int days, Mode mode) {
  Draw d(seed);
  Scenario s{.days = days, .events = {}};
  const Duration span = std::chrono::hours(24) * days;
  const auto scaled = [&](int per_year) {
    return std::max(1, static_cast<int>(static_cast<long>(per_year) * days / 365));
  };
  const std::pair<Kind, int> mix[] = {
      {Kind::kSpec, 1500},     {Kind::kEcho, 3000},  {Kind::kBurst, 200}, {Kind::kReconcile, 1000},
      {Kind::kReload, 200},    {Kind::kRestart, 50}, {Kind::kFlush, 100}, {Kind::kDrift, 100},
      {Kind::kAddresses, 300}, {Kind::kTunnel, 200}};
  for (const auto& [kind, per_year] : mix)
    for (int i = scaled(per_year); i > 0; --i) {
      Event e;
      e.at = d.within(span);
      e.kind = kind;
      s.events.push_back(std::move(e));
    }
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const Event& a, const Event& b) { return a.at < b.at; });

  const int huge = mode == Mode::kMemory ? 3000 : 1000;
  std::int64_t generation = 0;
  for (Event& e : s.events) {
    switch (e.kind) {
      case Kind::kSpec:
        make_spec(d, e, huge, ++generation);
        e.kernel_refuses = d.chance(0.05);
        break;
      case Kind::kBurst:
        for (int n = 2 + d.below(2); n > 0; --n) {
          Event one;
          one.at = e.at;
          one.kind = Kind::kSpec;
          const bool again =
              !e.burst.empty() && e.burst.back().spec != SpecClass::kUndecodable && d.chance(0.3);
          if (again) {
            // The same firewall, another part of the spec changed: it joins
            // the apply in flight.
            one = e.burst.back();
            ++generation;
            one.text = edge_node(generation, firewall_json(one.sources, one.ports),
                                 std::to_string(generation));
          } else {
            make_spec(d, one, huge, ++generation);
          }
          e.burst.push_back(std::move(one));
        }
        break;
      case Kind::kReload:
        e.file_good = d.chance(0.7);
        if (e.file_good) {
          e.file = d.file();
          e.text = yaml_of(*e.file);
        } else {
          e.text = d.bad_file();
        }
        break;
      case Kind::kRestart:
        if (d.chance(0.3)) e.file = d.file();
        break;
      case Kind::kAddresses:
        e.addresses = {"192.0.2." + std::to_string(1 + d.below(100))};
        if (d.chance(0.5)) e.addresses.push_back("2001:db8:a::" + std::to_string(1 + d.below(99)));
        if (d.chance(0.3)) e.addresses.push_back("198.51.100." + std::to_string(1 + d.below(200)));
        break;
      case Kind::kTunnel:
        e.on = d.chance(0.5);
        break;
      default:
        break;
    }
  }
  return s;
}

std::string invariant(const std::string& violation) {
  return violation.substr(0, violation.find(':'));
}

Verdict run(const Scenario& scenario, Mode mode, bool sabotage) {
  Verdict v;
  World world(mode, sabotage);
  // The heap's low point in the second tenth of the run against the last
  // tenth's, where the sets held are small: a huge set comes and goes (3 000
  // sources held a few times over are about 1 MiB), a leak stays.
  const std::size_t tenth = scenario.events.size() / 10;
  std::optional<long> early, late;
  const auto low = [](std::optional<long>& at, std::optional<long> now) {
    if (now) at = std::min(at.value_or(*now), *now);
  };
  for (std::size_t i = 0; i < scenario.events.size(); ++i) {
    if (auto bad = world.step(scenario.events[i], v.totals)) {
      v.violation = *bad + " (at " + clock_text(scenario.events[i].at) + ", event " +
                    std::to_string(i) + ": " + to_string(scenario.events[i].kind) + ")";
      v.step = i;
      return v;
    }
    ++v.totals.steps;
    if (!world.holds_small_sets()) continue;
    if (i >= tenth && i < 2 * tenth) low(early, heap_in_use());
    if (i >= scenario.events.size() - tenth) low(late, heap_in_use());
  }
  if (early && late && tenth > 0) v.totals.heap_growth = *late - *early;
  if (mode == Mode::kMemory && v.totals.heap_growth && *v.totals.heap_growth > (512 << 10))
    v.step = scenario.events.size() - 1,
    v.violation = "memory-bounded: the heap's low point grew by " +
                  std::to_string(*v.totals.heap_growth) +
                  " bytes from the run's second tenth to its last";
  return v;
}

Scenario shrink(Scenario s, Mode mode, bool sabotage, int runs) {
  return shrink_events(
      std::move(s), [&](const Scenario& t) { return run(t, mode, sabotage); }, invariant, runs);
}

namespace {
// A spec's line: its kind, its size, and the object's FNV-1a, so two lives
// that differ in one source differ here too.
std::string spec_line(const Event& e) {
  static const char* classes[] = {"valid",
                                  "huge",
                                  "undecodable",
                                  "a malformed source",
                                  "too many sources",
                                  "too wide",
                                  "an unmanaged port"};
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : e.text)
    h = (h ^ c) * 0x100000001b3ULL;
  char digest[32];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(h));
  return std::string(classes[static_cast<int>(e.spec)]) + ", " + std::to_string(e.sources.size()) +
         " sources" + (e.kernel_refuses ? ", the kernel refuses its apply" : "") + " [" + digest +
         "]";
}
}  // namespace

std::string describe(const Scenario& scenario) {
  std::ostringstream out;
  for (const Event& e : scenario.events) {
    out << "  " << clock_text(e.at) << "  " << to_string(e.kind);
    switch (e.kind) {
      case Kind::kSpec:
        out << ": " << spec_line(e);
        break;
      case Kind::kBurst:
        for (const Event& one : e.burst)
          out << "\n      then " << spec_line(one);
        break;
      case Kind::kReload:
        out << ": " << (e.file_good ? "" : "a bad file: ") << e.text.substr(0, 200);
        break;
      case Kind::kRestart:
        out << (e.file ? ", with a new file:\n" + yaml_of(*e.file) : std::string());
        break;
      case Kind::kAddresses:
        out << ": " << list(e.addresses);
        break;
      case Kind::kTunnel:
        out << (e.on ? ": up" : ": down");
        break;
      default:
        break;
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace tetherd::sim::firewall
