// tetherctl: the operator's CLI. Most commands read the host directly (the
// configuration, the state directory, the kernel's rules, the local k3s),
// so they work whether or not tetherd runs; `status` asks the daemon over
// its local socket. Only `certs rotate` writes (linkerd's issuer Secret,
// with its resourceVersion, so it is safe beside a running tetherd).

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <getopt.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/serialize.hpp>

#include "agent/adapters/local_http_client.h"
#include "agent/adapters/node_addresses.h"
#include "agent/adapters/system_clock.h"
#include "agent/app/certs_report.h"
#include "agent/app/enrollment.h"
#include "agent/app/firewall_keeper.h"
#include "agent/app/firewall_report.h"
#include "agent/app/local_linkerd.h"
#include "agent/app/preflight.h"
#include "agent/app/status_view.h"
#include "agent/config/config_loader.h"
#include "agent/config/kubeconfig.h"
#include "agent/core/clock_jump.h"
#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitProblem = 1;  // not in sync, a check failed
constexpr int kExitError = 2;    // could not find out
constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

constexpr const char* kUsage =
    "usage: tetherctl [--config PATH] [-o table|json] COMMAND\n"
    "\n"
    "commands:\n"
    "  status          what tetherd reports: conditions, certificates, node facts;\n"
    "                  exit 0 Ready, 1 not Ready, 2 cannot reach or understand tetherd;\n"
    "                  -o json prints the document exactly as tetherd sent it\n"
    "  firewall show   the live rules and sources against what tetherd wants;\n"
    "                  and when each cloud source last connected on each port;\n"
    "                  exit 0 in sync, 1 not in sync, 2 cannot read\n"
    "  firewall refused  the sources refused in the last 10 minutes, most attempts first\n"
    "                  (nftables only); exit 0, 2 cannot read or not available\n"
    "  firewall on-stop  do now what tetherd does to its rules when it stops (firewall.onStop:\n"
    "                  remove deletes them, keep leaves them), for a host where tetherd is not\n"
    "                  running (after a crash; the package's removal); exit 1 while it runs\n"
    "  check           preflight: what would stop tetherd doing its job; exit 1 on a failure\n"
    "  certs check     linkerd's issuer and trust anchors in the local k3s;\n"
    "                  exit 0 valid, 1 not valid, 2 cannot read\n"
    "  certs rotate    write a new issuer now (signed by linkerd.trustAnchorKey), then wait\n"
    "                  for linkerd-identity to load it; exit 0 rotated, 1 refused, 2 error\n"
    "  enroll --server URL --token-file PATH (--ca-file PATH | --ca-cert-hash sha256:HEX)\n"
    "         [--expiration DUR] [--wait DUR] [--force]\n"
    "                  get this node's client certificate from the cloud's API server (a CSR an\n"
    "                  admin approves), write it with its kubeconfig and switch controlPlane on;\n"
    "                  run again to resume a wait; does nothing when enrolled already. exit 0\n"
    "                  enrolled, 2 error, 3 CA does not match or server not verified, 4 token\n"
    "                  refused, 5 request denied or certificate refused, 6 not approved within\n"
    "                  --wait (default 15m), 7 node name not a DNS-1123 subdomain; --force\n"
    "                  replaces a kubeconfig it did not write\n"
    "\n"
    "  -c, --config PATH   configuration file (default /etc/tetherd/tetherd.yaml)\n"
    "  -o, --output FMT    table (default) or json\n"
    "      --socket PATH   tetherd's socket, for status (default /run/tetherd/tetherd.sock)\n"
    "      --timeout DUR   how long status waits for tetherd (default 5s)\n"
    "      --version       print the version and exit\n"
    "\n"
    "tables are coloured only on a terminal; NO_COLOR=1 or TERM=dumb turns colour off\n";

struct Options {
  std::string config = "/etc/tetherd/tetherd.yaml";
  std::string socket = "/run/tetherd/tetherd.sock";
  tetherd::Duration timeout = std::chrono::seconds(5);
  bool json = false;
  std::vector<std::string> command;
};

int usage_error(const std::string& why) {
  std::fprintf(stderr, "tetherctl: %s\n%s", why.c_str(), kUsage);
  return kExitUsage;
}

void print_json(const boost::json::value& v) {
  std::printf("%s\n", boost::json::serialize(v).c_str());
}

// libnftables says only "Operation not permitted"; say what to do.
std::string with_hint(std::string message) {
  if (message.find("Operation not permitted") != std::string::npos)
    message += " (reading the kernel's rules needs root: run tetherctl with sudo)";
  return message;
}

tetherd::Result<tetherd::FirewallReport> firewall_report(const tetherd::Config& config) {
  auto backend = tetherd::make_firewall_backend(config.firewall);
  if (!backend) {
    return tetherd::make_error(std::string("firewall.backend ") +
                               tetherd::to_string(config.firewall.backend) +
                               " is not available in this version of tetherd");
  }
  auto report =
      tetherd::make_firewall_report(config.firewall, *backend, tetherd::StateDir(config.state.dir),
                                    tetherd::node_addresses(), tetherd::tunnelled_ports(config));
  if (!report) return tetherd::make_error(with_hint(report.error().message));
  return report;
}

int firewall_show(const tetherd::Config& config, bool json) {
  auto report = firewall_report(config);
  if (!report) {
    std::fprintf(stderr, "tetherctl: %s\n", report.error().message.c_str());
    return kExitError;
  }
  if (json) {
    print_json(tetherd::to_json(*report));
  } else {
    std::fputs(tetherd::render_table(*report).c_str(), stdout);
  }
  return report->ok() ? kExitOk : kExitProblem;
}

int firewall_refused(const tetherd::Config& config, bool json) {
  auto report = firewall_report(config);
  if (!report) {
    std::fprintf(stderr, "tetherctl: %s\n", report.error().message.c_str());
    return kExitError;
  }
  constexpr std::size_t kShown = 20;
  if (json) {
    print_json(tetherd::refused_json(*report));
  } else {
    std::fputs(tetherd::render_refused(*report, kShown).c_str(), stdout);
  }
  return report->evidence ? kExitOk : kExitError;
}

int check(const Options& o) {
  using tetherd::Check;
  std::vector<Check> checks;
  auto loaded = tetherd::load_config_file(o.config, {tetherd::default_host_name()});
  if (auto* errors = std::get_if<tetherd::ConfigErrors>(&loaded)) {
    for (const auto& e : *errors)
      checks.push_back({"configuration", Check::Status::kFail, e.format(o.config)});
  } else {
    const auto& config = std::get<tetherd::Config>(loaded);
    checks.push_back({"configuration", Check::Status::kOk, o.config + " is valid"});
    auto more = tetherd::firewall_checks(config.firewall, firewall_report(config));
    checks.insert(checks.end(), more.begin(), more.end());
  }
  if (o.json) {
    print_json(tetherd::checks_to_json(checks));
  } else {
    std::fputs(tetherd::render_checks(checks).c_str(), stdout);
  }
  return tetherd::passed(checks) ? kExitOk : kExitProblem;
}

// What a pass logs (rotation, reload, restart) goes to stderr as it happens.
class StderrLog final : public tetherd::Log {
 public:
  void write(tetherd::Priority, std::string_view, std::string_view message,
             std::initializer_list<tetherd::LogField>) override {
    std::fprintf(stderr, "tetherctl: %.*s\n", static_cast<int>(message.size()), message.data());
  }
};

template <class T>
T run_on(boost::asio::io_context& io, boost::asio::awaitable<T> coroutine) {
  std::optional<T> out;
  boost::asio::co_spawn(io, std::move(coroutine), [&](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    out = std::move(value);
  });
  io.run();
  io.restart();
  return std::move(*out);
}

// The control plane's clock (its Date), when one is configured and answers
// within a few seconds: `certs rotate` then mints only with a clock it does
// not contradict, by the daemon's rule (ClockWitness, kClockTolerance).
// Nothing heard: the node's clock is all there is, as for the daemon.
tetherd::ClockWitness hear_control_plane(boost::asio::io_context& io, const tetherd::Clock& clock,
                                         const tetherd::Config& config) {
  using namespace tetherd;
  ClockWitness witness;
  if (!config.control_plane) return witness;
  auto not_heard = [&](const std::string& why) {
    std::fprintf(stderr,
                 "tetherctl: the control plane's clock was not heard (%s): the node's clock "
                 "is taken as it is\n",
                 why.c_str());
    return witness;
  };
  auto kubeconfig = load_kubeconfig(config.control_plane->kubeconfig);
  if (!kubeconfig) return not_heard(kubeconfig.error().message);
  constexpr auto kBrief = std::chrono::seconds(5);
  auto http = kube::HttpsClient::create(io.get_executor(), *kubeconfig,
                                        kube::ClientLimits{.resolve_timeout = kBrief,
                                                           .connect_timeout = kBrief,
                                                           .handshake_timeout = kBrief,
                                                           .write_timeout = kBrief,
                                                           .read_timeout = kBrief});
  if (!http) return not_heard(kube::describe(http.error()));
  bool heard = false;
  (*http)->on_server_date([&](std::string_view date) {
    if (auto at = parse_http_date(date)) {
      witness.heard(*at, clock.boottime());
      heard = true;
    }
  });
  // Any answer carries a Date, a refusal too.
  kube::KubeClient kube(**http);
  auto answer = run_on(io, kube.get("/version"));
  if (!heard)
    return not_heard(answer ? std::string("no Date in its answer")
                            : kube::describe(answer.error()));
  return witness;
}

int certs(const Options& o, bool rotate) {
  using namespace tetherd;
  auto loaded = load_config_file(o.config, {default_host_name()});
  if (auto* errors = std::get_if<ConfigErrors>(&loaded)) {
    for (const auto& e : *errors)
      std::fprintf(stderr, "%s\n", e.format(o.config).c_str());
    return kExitConfig;
  }
  const Config& config = std::get<Config>(loaded);
  if (!config.linkerd) {
    std::fprintf(stderr,
                 "tetherctl: %s has no linkerd section: tetherd does not look after "
                 "linkerd's issuer on this node\n",
                 o.config.c_str());
    return kExitConfig;
  }
  StderrLog log;
  SystemClock clock;
  boost::asio::io_context io(1);
  auto linkerd = LocalLinkerd::create(io, clock, log, config);
  if (!linkerd) {
    std::fprintf(stderr, "tetherctl: %s\n", linkerd.error().message.c_str());
    return kExitError;
  }
  IssuerRotation& rotation = (*linkerd)->rotation();
  if (!rotate) {
    const IssuerReport report = run_on(io, rotation.check());
    if (o.json) {
      print_json(certs_to_json(report));
    } else {
      std::fputs(render_certs(report).c_str(), stdout);
    }
    if (report.verdict.issuer == IssuerState::kUnreadable) return kExitError;
    return report.verdict.valid ? kExitOk : kExitProblem;
  }
  const ClockWitness witness = hear_control_plane(io, clock, config);
  rotation.use_clock_witness([&] { return witness.error(clock.wall(), clock.boottime()); });
  const RotationResult result = run_on(io, rotation.run(RotationTrigger::kManual, true));
  // With -o json one document, printed once both passes are known.
  boost::json::object document = rotation_to_json(result);
  if (!o.json) std::fputs(render_rotation(result).c_str(), stdout);
  bool written = result.rotated;
  WallTime written_at = result.written_at;
  if (!written && result.answer_lost) {
    // The write may have taken (k3s stalled past the deadline, the
    // connection dropped): one more pass looks (its force spent if it
    // finds it), and writes again if not.
    const RotationResult looked = run_on(io, rotation.run(RotationTrigger::kManual, true));
    document["lookedAgain"] = rotation_to_json(looked);
    if (looked.found_written || looked.rotated) {
      written = true;
      written_at = looked.found_written.value_or(looked.written_at);
      if (!o.json)
        std::fputs(looked.found_written
                       ? "its answer was lost, but the new issuer is in the Secret\n"
                       : "written again: the new issuer is in the Secret\n",
                   stdout);
    }
  }
  if (o.json) print_json(document);
  if (!written)
    return result.before.verdict.issuer == IssuerState::kUnreadable ? kExitError : kExitProblem;
  if (!o.json) std::fputs("waiting for linkerd-identity to load it...\n", stdout);
  std::fflush(stdout);
  const ReloadOutcome reloaded = run_on(io, rotation.confirm_reload(written_at));
  const bool reload_made_sure =
      reloaded == ReloadOutcome::kConfirmed || reloaded == ReloadOutcome::kRestarted;
  return reload_made_sure ? kExitOk : kExitError;
}

// Colour is for a person at a terminal: never into a pipe or a file, and
// not when NO_COLOR (no-color.org: any non-empty value) or TERM=dumb asks.
bool colour_wanted() {
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  if (no_color != nullptr && *no_color != '\0') return false;
  if (term != nullptr && std::string(term) == "dumb") return false;
  return isatty(STDOUT_FILENO) == 1;
}

int status(const Options& o) {
  const auto body =
      tetherd::http_get_unix(o.socket, "/v1/status", o.timeout, tetherd::kMaxStatusDocumentBytes);
  if (!body) {
    std::fprintf(stderr, "tetherctl: %s\n", body.error().message.c_str());
    return kExitError;
  }
  const auto document = tetherd::parse_status_document(*body);
  if (!document) {
    std::fprintf(stderr, "tetherctl: cannot understand tetherd's answer: %s\n",
                 document.error().message.c_str());
    return kExitError;
  }
  if (o.json) {
    // As received, checked: a script sees what tetherd said, new keys included.
    std::fwrite(body->data(), 1, body->size(), stdout);
    if (body->empty() || body->back() != '\n') std::fputc('\n', stdout);
  } else {
    const std::string table = tetherd::render_status(
        *document, document->time.value_or(tetherd::SystemClock().wall()), colour_wanted());
    std::fputs(table.c_str(), stdout);
  }
  return tetherd::status_exit_code(*document);
}

bool set_timeout(Options& o, const std::string& text) {
  const auto d = tetherd::parse_duration(text);
  if (!d || *d <= tetherd::Duration::zero()) return false;
  o.timeout = *d;
  return true;
}

}  // namespace

// What tetherd's stop does to the rules (FirewallKeeper::stop), for when it
// cannot: tetherd was killed or crashed, or the package is being removed. A
// running tetherd would put the rules straight back, so it is refused then.
int firewall_on_stop(const Options& o, const tetherd::Config& config) {
  if (tetherd::http_get_unix(o.socket, "/v1/status", std::chrono::seconds(2), 1 << 20)) {
    std::fprintf(stderr,
                 "tetherctl: tetherd is running (%s answers); stop it instead "
                 "(systemctl stop tetherd), which applies firewall.onStop itself\n",
                 o.socket.c_str());
    return kExitProblem;
  }
  if (config.firewall.backend == tetherd::FirewallBackend::kNone) {
    std::printf("firewall.backend is none: tetherd has no rules\n");
    return kExitOk;
  }
  if (config.firewall.on_stop == tetherd::OnStop::kKeep) {
    std::printf("firewall.onStop is keep: tetherd's %s rules stay in force\n",
                tetherd::to_string(config.firewall.backend));
    return kExitOk;
  }
  if (auto r = tetherd::make_firewall_backend(config.firewall)->remove(); !r) {
    std::fprintf(stderr, "tetherctl: %s\n", with_hint(r.error().message).c_str());
    return kExitError;
  }
  std::printf("tetherd's %s rules removed (firewall.onStop: remove)\n",
              tetherd::to_string(config.firewall.backend));
  return kExitOk;
}

int enroll(const Options& o) {
  using namespace tetherd;
  EnrollOptions e;
  std::error_code ec;
  // Absolute: the kubeconfig's path is made from it, and the loader wants
  // absolute paths.
  e.config_path = std::filesystem::absolute(o.config, ec).lexically_normal().string();
  for (std::size_t i = 1; i < o.command.size(); ++i) {
    const std::string& flag = o.command[i];
    if (flag == "--force") {
      e.force = true;
      continue;
    }
    if (i + 1 >= o.command.size()) return usage_error("enroll: " + flag + " needs a value");
    const std::string& value = o.command[++i];
    if (flag == "--server") {
      e.server = value;
    } else if (flag == "--token-file") {
      e.token_file = value;
    } else if (flag == "--ca-file") {
      e.ca_file = value;
    } else if (flag == "--ca-cert-hash") {
      e.ca_cert_hash = value;
    } else if (flag == "--expiration" || flag == "--wait") {
      auto d = parse_duration(value);
      if (!d || *d <= Duration::zero())
        return usage_error("enroll: " + flag + ": not a duration: " + value);
      (flag == "--wait" ? e.wait : e.expiration.emplace()) = *d;
      // kube-controller-manager's cap (--cluster-signing-duration, a year
      // by default): a longer life asked for would come back shorter, and
      // be refused as not the certificate asked for.
      if (flag == "--expiration" &&
          (*d < std::chrono::minutes(10) || *d > std::chrono::hours(8760)))
        return usage_error(
            "enroll: --expiration: from 10m to 8760h (a year, the signer's usual cap)");
    } else {
      return usage_error("enroll: unknown flag " + flag);
    }
  }
  if (e.server.empty() || e.token_file.empty())
    return usage_error("enroll: --server and --token-file are needed");
  if (e.ca_file.empty() == e.ca_cert_hash.empty())
    return usage_error("enroll: give the cloud's CA: --ca-file or --ca-cert-hash, one of them");
  auto loaded = load_config_file(e.config_path, {default_host_name()});
  if (auto* errors = std::get_if<ConfigErrors>(&loaded)) {
    bool name = false;
    for (const auto& err : *errors) {
      std::fprintf(stderr, "%s\n", err.format(o.config).c_str());
      name = name || err.message.starts_with("node.name");
    }
    if (name)
      std::fprintf(stderr, "tetherctl: enroll: set node.name in %s to this node's name\n",
                   o.config.c_str());
    return name ? static_cast<int>(EnrollExit::kBadNodeName) : kExitConfig;
  }
  boost::asio::io_context io;
  SystemClock clock;
  const EnrollOutcome out =
      run_on(io, tetherd::enroll(io.get_executor(), e, std::get<Config>(loaded), clock,
                                 [](const std::string& line) {
                                   std::printf("%s\n", line.c_str());
                                   std::fflush(stdout);
                                 }));
  std::fprintf(out.exit == EnrollExit::kEnrolled ? stdout : stderr, "%s%s\n",
               out.exit == EnrollExit::kEnrolled ? "" : "tetherctl: enroll: ", out.message.c_str());
  return static_cast<int>(out.exit);
}

int main(int argc, char** argv) {
  Options o;
  enum { kVersion = 1000, kSocket, kTimeout };
  const option longopts[] = {{"config", required_argument, nullptr, 'c'},
                             {"output", required_argument, nullptr, 'o'},
                             {"socket", required_argument, nullptr, kSocket},
                             {"timeout", required_argument, nullptr, kTimeout},
                             {"version", no_argument, nullptr, kVersion},
                             {"help", no_argument, nullptr, 'h'},
                             {nullptr, 0, nullptr, 0}};
  for (;;) {
    const int c = getopt_long(argc, argv, "+c:o:h", longopts, nullptr);
    if (c == -1) break;
    switch (c) {
      case 'c':
        o.config = optarg;
        break;
      case 'o':
        if (std::string(optarg) != "json" && std::string(optarg) != "table")
          return usage_error(std::string("unknown output format: ") + optarg);
        o.json = std::string(optarg) == "json";
        break;
      case kSocket:
        o.socket = optarg;
        break;
      case kTimeout:
        if (!set_timeout(o, optarg)) return usage_error(std::string("bad timeout: ") + optarg);
        break;
      case kVersion:
        std::printf("tetherctl %s\n", TETHERD_VERSION);
        return kExitOk;
      case 'h':
        std::fputs(kUsage, stdout);
        return kExitOk;
      default:
        std::fputs(kUsage, stderr);
        return kExitUsage;
    }
  }
  // Options may also follow the command: `tetherctl firewall show -o json`.
  for (int i = optind; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "-o" || a == "--output") && i + 1 < argc) {
      const std::string f = argv[++i];
      if (f != "json" && f != "table") return usage_error("unknown output format: " + f);
      o.json = f == "json";
    } else if ((a == "-c" || a == "--config") && i + 1 < argc) {
      o.config = argv[++i];
    } else if (a == "--socket" && i + 1 < argc) {
      o.socket = argv[++i];
    } else if (a == "--timeout" && i + 1 < argc) {
      if (!set_timeout(o, argv[++i])) return usage_error(std::string("bad timeout: ") + argv[i]);
    } else {
      o.command.push_back(a);
    }
  }

  if (!o.command.empty() && o.command[0] == "enroll") return enroll(o);
  if (o.command == std::vector<std::string>{"status"}) return status(o);
  if (o.command == std::vector<std::string>{"check"}) return check(o);
  if (o.command == std::vector<std::string>{"certs", "check"}) return certs(o, false);
  if (o.command == std::vector<std::string>{"certs", "rotate"}) return certs(o, true);
  const bool show = o.command == std::vector<std::string>{"firewall", "show"};
  const bool refused = o.command == std::vector<std::string>{"firewall", "refused"};
  if (show || refused || o.command == std::vector<std::string>{"firewall", "on-stop"}) {
    auto loaded = tetherd::load_config_file(o.config, {tetherd::default_host_name()});
    if (auto* errors = std::get_if<tetherd::ConfigErrors>(&loaded)) {
      for (const auto& e : *errors)
        std::fprintf(stderr, "%s\n", e.format(o.config).c_str());
      return kExitConfig;
    }
    const auto& config = std::get<tetherd::Config>(loaded);
    if (refused) return firewall_refused(config, o.json);
    return show ? firewall_show(config, o.json) : firewall_on_stop(o, config);
  }
  if (o.command.empty()) return usage_error("no command given");
  std::string given;
  for (const auto& w : o.command)
    given += (given.empty() ? "" : " ") + w;
  return usage_error("unknown command: " + given);
}
