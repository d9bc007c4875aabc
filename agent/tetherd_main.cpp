// tetherd: the host daemon. See DESIGN.md for the contracts.

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <getopt.h>
#include <iostream>
#include <string>

#include <boost/asio/io_context.hpp>

#include "agent/adapters/address_monitor.h"
#include "agent/adapters/journal_log.h"
#include "agent/adapters/nft_monitor.h"
#include "agent/adapters/node_addresses.h"
#include "agent/adapters/sd_notifier.h"
#include "agent/adapters/state_dir.h"
#include "agent/adapters/system_clock.h"
#include "agent/app/daemon.h"
#include "agent/app/local_cluster.h"
#include "agent/config/config_loader.h"
#include "agent/config/kubeconfig.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG: the unit's RestartPreventExitStatus

constexpr const char* kUsage =
    "usage: tetherd [--config PATH] [--check-config] [--version]\n"
    "\n"
    "  -c, --config PATH   configuration file (default /etc/tetherd/tetherd.yaml)\n"
    "      --check-config  validate the configuration, print every problem, exit 0 or 78\n"
    "      --version       print the version and exit\n";

struct Options {
  std::string config = "/etc/tetherd/tetherd.yaml";
  bool check_config = false;
  bool version = false;
};

bool parse_args(int argc, char** argv, Options& o) {
  enum { kCheck = 1000, kVersion };
  const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                             {"check-config", no_argument, nullptr, kCheck},
                             {"version", no_argument, nullptr, kVersion},
                             {"help", no_argument, nullptr, 'h'},
                             {nullptr, 0, nullptr, 0}};
  for (;;) {
    const int c = getopt_long(argc, argv, "c:h", longopts, nullptr);
    if (c == -1) break;
    switch (c) {
      case 'c':
        o.config = optarg;
        break;
      case kCheck:
        o.check_config = true;
        break;
      case kVersion:
        o.version = true;
        break;
      case 'h':
        std::fputs(kUsage, stdout);
        std::exit(kExitOk);
      default:
        return false;
    }
  }
  if (optind != argc) {
    std::fprintf(stderr, "tetherd: unexpected argument: %s\n", argv[optind]);
    return false;
  }
  return true;
}

// The session with the control plane, or why its kubeconfig cannot be used.
tetherd::Result<std::unique_ptr<tetherd::Tether>> make_tether(
    boost::asio::io_context& io, const tetherd::Clock& clock, tetherd::Log& log,
    tetherd::FirewallKeeper& firewall, tetherd::NodeConditions& conditions,
    const tetherd::Config& config, const tetherd::Kubeconfig& kubeconfig) {
  using namespace tetherd;
  auto http = kube::HttpsClient::create(io.get_executor(), kubeconfig);
  if (!http) return make_error(kube::describe(http.error()));
  auto objects = kube::HttpsClient::create(io.get_executor(), kubeconfig);
  if (!objects) return make_error(kube::describe(objects.error()));
  auto tether =
      std::make_unique<Tether>(io, clock, log, firewall, conditions, std::move(*http), config);
  tether->follow_objects_with(std::move(*objects));
  return tether;
}

// systemd's RuntimeDirectory=tetherd gives /run/tetherd (and says so in
// $RUNTIME_DIRECTORY); outside systemd the directory is made here.
std::string status_socket_path() {
  const char* runtime = std::getenv("RUNTIME_DIRECTORY");
  std::string dir = runtime && *runtime ? std::string(runtime) : "/run/tetherd";
  dir = dir.substr(0, dir.find(':'));  // several directories: the first
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return dir + "/tetherd.sock";
}

int run(const Options& options, tetherd::Log& log, tetherd::ServiceNotifier& notifier) {
  using namespace tetherd;
  const LoadOptions load_options{default_host_name()};
  auto load = [&] { return load_config_file(options.config, load_options); };

  auto loaded = load();
  if (auto* errors = std::get_if<ConfigErrors>(&loaded)) {
    for (const ConfigError& e : *errors) {
      log.error("config-invalid", "configuration error: " + e.format(options.config),
                {{"CONFIG", options.config}});
    }
    notifier.notify("STATUS=configuration invalid: " + options.config);
    return kExitConfig;
  }

  const Config& config = std::get<Config>(loaded);
  StateDir state(config.state.dir);
  if (auto ec = state.ensure()) {
    log.error("state-dir-failed", "cannot use the state directory " + state.path() + ": " +
                                      ec.message() +
                                      "; the desired state will not survive a restart");
  }
  SystemClock clock;
  boost::asio::io_context io(1);
  // A ufw apply runs a program per changed rule, on the keeper's thread:
  // between them it asks systemd for more time to start or stop (each run
  // is bounded at 60 s). The watchdog is the event loop's to ping.
  auto make_backend = [&notifier](const FirewallConfig& c) {
    return make_firewall_backend(c,
                                 [&notifier] { notifier.notify("EXTEND_TIMEOUT_USEC=90000000"); });
  };
  FirewallKeeper firewall(log, state, make_backend, node_addresses(), io.get_executor(),
                          FirewallKeeper::Worker::kThread);
  // The node's conditions: reported to and read from here alone.
  NodeConditions conditions(clock, config.health.threshold);
  // What a configuration describes is made by the daemon, at start and
  // again when a reload changes it.
  DaemonFactories factories{
      .tether =
          [&](const Config& c, const Kubeconfig& k) {
            return make_tether(io, clock, log, firewall, conditions, c, k);
          },
      // k3s and linkerd's issuer, from cluster.kubeconfig: made when usable,
      // so tetherd can start before k3s writes it.
      .local = [&](const Config& c) { return std::make_unique<LocalCluster>(io, clock, log, c); },
      // Only the nftables backend can be watched.
      .monitor = [&](const FirewallConfig& c) -> std::unique_ptr<FirewallMonitor> {
        if (c.backend != FirewallBackend::kNftables) return nullptr;
        return std::make_unique<NftMonitor>(io, log);
      },
      .renewal = {}};
  // logind on the system bus when there is one; the clocks in any case.
  ResumeDetector resume(io, clock, log);
  NodeHealth health(io, clock, log, config, firewall, conditions, nullptr, nullptr);
  health.serve(config.metrics.listen, status_socket_path());
  AddressMonitor addresses(io, log);
  FileWatch files(io, clock);
  DaemonParts parts{.addresses = &addresses,
                    .resume = &resume,
                    .state = &state,
                    .health = &health,
                    .files = &files,
                    .conditions = &conditions};
  Daemon daemon(io, clock, log, notifier, firewall, options.config, load, config, parts,
                std::move(factories));
  if (!daemon.start()) return kExitFailure;
  io.run();
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!parse_args(argc, argv, options)) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  if (options.version) {
    std::printf("tetherd %s\n", TETHERD_VERSION);
    return kExitOk;
  }
  if (options.check_config) {
    auto loaded = tetherd::load_config_file(options.config, {tetherd::default_host_name()});
    if (auto* errors = std::get_if<tetherd::ConfigErrors>(&loaded)) {
      for (const auto& e : *errors)
        std::fprintf(stderr, "%s\n", e.format(options.config).c_str());
      return kExitConfig;
    }
    std::printf("%s: OK\n", options.config.c_str());
    return kExitOk;
  }

  tetherd::JournalLog log(tetherd::JournalLog::detect_sink());
  tetherd::SdNotifier notifier;
  int code = kExitFailure;
  try {
    code = run(options, log, notifier);
  } catch (const std::exception& e) {
    // Only what cannot happen ends up here; say so plainly and exit non-zero
    // so that Restart=on-failure brings the daemon back.
    log.write(tetherd::Priority::kCrit, "crashed", std::string("fatal: ") + e.what());
  }
  // Every exit path tells the manager we are going, even a failed start.
  notifier.notify("STOPPING=1");
  return code;
}
