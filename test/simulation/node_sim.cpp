#include "test/simulation/node_sim.h"

#include <algorithm>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include "agent/adapters/file_watch.h"
#include "agent/adapters/state_dir.h"
#include "agent/adapters/x509.h"
#include "agent/app/daemon.h"
#include "agent/app/firewall_keeper.h"
#include "agent/app/issuer_rotation.h"
#include "agent/app/local_cluster.h"
#include "agent/app/node_health.h"
#include "agent/app/resume_detector.h"
#include "agent/app/tether.h"
#include "agent/config/config_loader.h"
#include "agent/config/kubeconfig_writer.h"
#include "agent/core/backoff.h"
#include "agent/core/base64.h"
#include "agent/core/kube_time.h"
#include "agent/core/lease.h"
#include "agent/core/linkerd_objects.h"
#include "agent/core/node_conditions.h"
#include "agent/core/node_csr.h"
#include "agent/core/node_status.h"
#include "agent/core/service_notifier.h"
#include "agent/core/sleep_signal.h"
#include "agent/core/tether_session.h"
#include "agent/kube/api_error.h"
#include "agent/kube/https_client.h"
#include "agent/kube/kube_client.h"
#include "agent/kube/retry.h"
#include "firewall/cidr.h"
#include "test/simulation/seeds.h"
#include "test/simulation/tail_log.h"
#include "test/support/api_server/rest_api.h"
#include "test/support/fake_backend.h"
#include "test/support/fake_sleep_signal.h"
#include "test/support/linkerd_pki.h"
#include "test/support/sim_clock.h"
#include "test/support/temp_dir.h"
#include "test/support/test_pki.h"

namespace tetherd::sim::node {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace json = boost::json;
namespace api = tetherd::test::apiserver;
using asio::awaitable;

const std::string kNs = "tetherd-system";
const std::string kNode = "node-a";
const std::string kServer = "https://cloud.example:6443";
const std::string kEdgeNodes = kube::collection_path(kube::kEdgeNodes, kNs);
const std::string kNodePath = kube::object_path(kube::kEdgeNodes, kNs, kNode);
const std::string kLeasePath = kube::object_path(kube::kLeases, kNs, lease_name(kNode));
const std::string kLeasesPath = kube::collection_path(kube::kLeases, kNs);
// spec.linkerd's objects in the node's namespace in the cloud: two issuer
// Secrets the operator can switch between, and the trust bundle's ConfigMap.
const std::string kSecretsPath = kube::collection_path(kube::kSecrets, kNs);
const std::string kConfigMapsPath = kube::collection_path(kube::kConfigMaps, kNs);
const std::string kIssuers[] = {"", "linkerd-issuer-a", "linkerd-issuer-b"};
const std::string kBundle = "linkerd-bundle";
// The node's file: a static source (one of two, as reloads change it) and
// alwaysAllow the kernel must always hold, a heartbeat reloads change, and
// limits a spec can exceed.
const std::string kAllows[] = {"203.0.113.0/28", "203.0.113.128/28"};
const std::string kAlwaysAllow = "10.42.0.0/16";

// How long K3sReady may lag k3s: two rounds a minute apart
// (health.threshold, health.interval), the first up to a minute after the
// change, then the status writer's next tick.
constexpr Duration kK3sClaim = 3min;
constexpr Duration kRecovery = 2min;  // the issue's bound after a fault ends
// The same with the certificate expired: the renewal's next try (at most
// RenewalTiming::cut_off_backoff's cap, 5 minutes, after a failure), the
// approval (the world's next minute), then the bound.
constexpr Duration kCutOffRecovery = 5min + 1min + kRecovery;
constexpr Duration kIdle = 150s;           // kube::WatchOptions::idle
constexpr Duration kReadTimeout = 30s;     // kube::ClientLimits::read_timeout
constexpr Duration kSlowAnswer = 5s;       // a slow server
constexpr Duration kBookmarkPeriod = 60s;  // about kube-apiserver's
constexpr Duration kLeaseDuration = 40s;   // the file's default
constexpr Duration kDownClaim = 4min;      // idle, a read timeout, and the Lease's life
// An open watch's timeout (drawn up to twice timeoutSeconds' 5 minutes), and
// 2 minutes more.
constexpr Duration kBrownoutClaim = 12min;
constexpr Duration kLogindDelay = 5s;    // InhibitDelayMaxSec
constexpr Duration kRedial = 30s;        // a resume to the session's new watch
constexpr Duration kResumeTick = 10s;    // the daemon's resume check without logind
constexpr std::size_t kTenMinutes = 70;  // 7 a minute at steady state
// One steady minute: 6 Lease renewals, a renewal of each of the three
// watches (their timeouts are drawn apart, and can meet in one minute), and
// two status writes (a spec applied). Seed 113 met 11 (10 before).
constexpr std::size_t kAnyMinute = 11;
// The Lease's 60, the session's tries (a 410 after every list: a list and a
// watch each 30 s on average) and the two followers' while they back off to
// their cap of 5 minutes. A loop that does not back off makes thousands.
constexpr std::size_t kTenMinutesInAFault = 150;
// The session's and the two followers' (spec.linkerd's objects), each
// with one being replaced.
// And a CSR's while a renewal waits for its certificate.
constexpr std::size_t kMaxWatches = 7;
constexpr std::size_t kMaxTimers = 16;
const WallTime kStart = WallTime(std::chrono::hours(24 * 365 * 56));
// The node's client certificate (issue 21), as enroll writes it: a life of
// 20 days (Scenario::certificate_life), renewed 14 to 18 days in, so that
// a sleep of up to 10 days can outlive one; then the bootstrap
// kubeconfig's token asks for the next.
const std::string kBootstrapToken = "abcdef.0123456789abcdef";
// Nothing stood in the renewal's way for this long before a certificate
// expired (the node awake, its clock right, the cloud well): it should
// have been renewed (due two days before at the latest, a failure's
// backoff at most an hour, the approval within the minute).
constexpr Duration kRenewalCalm = 2h;
// Decided CSRs are deleted an hour on, pending ones a day on
// (kube-controller-manager's cleaner).
constexpr Duration kCsrLife = 1h;
constexpr Duration kPendingLife = 24h;
// After a denial the renewal asks again within its backoff's cap
// (RenewalTiming::backoff).
constexpr Duration kRefusedBackoff = 1h;
constexpr std::size_t kRequestsADay = 4;
// linkerd in the node's k3s, the Daemon's issuer rotation as linkerd.*
// configures it: a week's issuer, renewed two days before its end, under
// an anchor of ten years whose key is on the node; the cloud's issuers
// (cert-manager's, under the same anchor) live a month.
constexpr Duration kIssuerValidity = 168h;
constexpr Duration kIssuerRotateBefore = 48h;
constexpr Duration kCloudIssuerLife = 30 * 24h;
// How long k3s's issuer may be out of force, or another than the cloud's
// the session holds, once it could be put right (the node awake, k3s
// answering, the clock right, the session well and its view unchanged): a
// resume's pass runs at once, a pass k3s did not answer is tried again
// within 5 minutes (IssuerRotationTiming::retry's cap).
constexpr Duration kIssuerBound = 6min;
// Requests to k3s for linkerd's objects (the health rounds' probes apart):
// an hour's passes, reload confirmations and retries; a loop makes thousands.
constexpr std::size_t kLinkerdRequestsAnHour = 150;
// The health rounds' MeshWatch lists this node's meshed pods once a round
// (a minute), and again when poked (a resume, a new trust bundle).
constexpr std::size_t kPodListsAnHour = 75;
const std::string kLinkerdNs = "linkerd";

// A kubeconfig whose user presents a bearer token, its cluster, user and
// context all named `name`: the bootstrap credential's, and k3s's here.
std::string token_kubeconfig(const std::string& name, const std::string& server,
                             const std::string& ca_pem, const std::string& token) {
  return "apiVersion: v1\nkind: Config\nclusters:\n- name: " + name +
         "\n  cluster:\n    server: " + server +
         "\n    certificate-authority-data: " + encode_base64(ca_pem) +
         "\nusers:\n- name: " + name + "\n  user:\n    token: " + token +
         "\ncontexts:\n- name: " + name + "\n  context:\n    cluster: " + name +
         "\n    user: " + name + "\ncurrent-context: " + name + "\n";
}

// `dir` is the state directory, and holds the node's credentials as
// `tetherctl enroll` writes them, and k3s's kubeconfig (`k3s`, from which
// the daemon's LocalCluster makes its clients of k3s). `linkerd`: with
// that section (linkerd's issuer).
std::string config_text(const Event& e, const std::string& dir, const std::string& k3s,
                        bool linkerd) {
  if (!e.valid) return "firewall:\n  maxSources: -3\n  allow: [\"203.0.113.0/28\"\n";
  return "state:\n  dir: \"" + dir + "\"\ncontrolPlane:\n  kubeconfig: \"" + dir +
         "/controlplane.kubeconfig\"\n  bootstrapKubeconfig: \"" + dir +
         "/bootstrap.kubeconfig\"\n  namespace: " + kNs +
         "\n  heartbeatInterval: " + std::to_string(e.length / std::chrono::seconds(1)) +
         "s\nfirewall:\n  maxSources: 8\n  allow: [\"" + kAllows[e.allow] +
         "\"]\n  alwaysAllow: [\"" + kAlwaysAllow + "\"]\n" +
         // No metrics listener and no probe of linkerd's gateway: real
         // sockets on this machine's ports 9477 and 4191 (a parallel test's,
         // or a tetherd's running here), not the simulated world.
         "metrics:\n  listen: null\nhealth:\n  linkerdGateway: \"\"\n" +
         "cluster:\n  kubeconfig: \"" + dir + "/" + k3s + "\"\n" +
         (linkerd ? "linkerd:\n  rotateBefore: " + std::to_string(kIssuerRotateBefore / 1h) +
                        "h\n  issuerValidity: " + std::to_string(kIssuerValidity / 1h) +
                        "h\n  trustAnchorKey: \"" + dir + "/anchor.key\"\n"
                  : "");
}
const std::string kIssuerPath = kube::object_path(kube::kSecrets, kLinkerdNs, kIssuerSecretName);
const std::string kIdentityPath =
    kube::object_path(kube::kDeployments, kLinkerdNs, kIdentityDeploymentName);

bool down_fault(Fault f) {
  switch (f) {
    case Fault::kRefused:
    case Fault::kReset:
    case Fault::kStalled:
    case Fault::k500:
    case Fault::k503:
    case Fault::k429:
    case Fault::kResetAfterOk:
      return true;
    default:
      return false;
  }
}

std::string status_body(unsigned code, const std::string& reason, const std::string& message) {
  return json::serialize(json::object{{"kind", "Status"},
                                      {"apiVersion", "v1"},
                                      {"metadata", json::object{}},
                                      {"status", "Failure"},
                                      {"message", message},
                                      {"reason", reason},
                                      {"code", code}});
}

// As the real client says them (https_client.cpp's io_error): no reason,
// a deadline is kTimeout.
kube::ApiError transport(const std::string& message) {
  return kube::ApiError{kube::ErrorKind::kTransport, 0, {}, kServer + ": " + message, std::nullopt};
}
kube::ApiError disconnected() {  // as the real client's close
  return kube::ApiError{kube::ErrorKind::kTransport, 0, "Disconnected",
                        kServer + ": connection closed by tetherd", std::nullopt};
}
kube::ApiError timed_out(const std::string& message) {
  return kube::ApiError{kube::ErrorKind::kTimeout, 0, {}, kServer + ": " + message, std::nullopt};
}

json::array sources_json(const std::vector<std::string>& sources) {
  json::array a;
  for (const auto& s : sources)
    a.emplace_back(s);
  return a;
}

// systemd's watchdog (WatchdogSec=30s in the packaged unit): the daemon
// must ping it from its loop at least this often while it runs awake.
constexpr Duration kWatchdog = 30s;

// systemd's side of sd_notify: the longest the watchdog went without a
// ping since the daemon started.
class Notifier final : public ServiceNotifier {
 public:
  Notifier(const Clock& clock, bool watchdog) : clock_(clock), watchdog_(watchdog) {}
  void notify(std::string_view assignments) override {
    if (assignments.find("WATCHDOG=1") == std::string_view::npos) return;
    longest_ = std::max(longest_, clock_.monotonic() - pinged_);
    pinged_ = clock_.monotonic();
  }
  std::optional<Duration> watchdog_timeout() const override {
    return watchdog_ ? std::optional(kWatchdog) : std::nullopt;
  }
  // A daemon starts: systemd's count begins.
  void started() {
    pinged_ = clock_.monotonic();
    longest_ = {};
  }
  // The longest gap between pings, the one still open included.
  Duration longest_gap() const { return std::max(longest_, clock_.monotonic() - pinged_); }

 private:
  const Clock& clock_;
  bool watchdog_;
  MonoTime pinged_{};
  Duration longest_{};
};

class World {
 public:
  World(const Scenario& s, Sabotage sabotage) : scenario_(s), sabotage_(sabotage) {}

  // A stop that failed left parts whose work still refers to the world.
  bool parts_left() const { return parts_left_; }

  Verdict run() {
    setup();
    struct Point {
      Duration at;
      std::size_t event;
      bool end;
    };
    std::vector<Point> points;
    for (std::size_t i = 0; i < scenario_.events.size(); ++i) {
      const Event& e = scenario_.events[i];
      points.push_back({e.at, i, false});
      if ((e.kind == Kind::kOutage || e.kind == Kind::kK3sDown || e.kind == Kind::kClockWrong) &&
          e.length > Duration::zero())
        points.push_back({e.at + e.length, i, true});
    }
    std::stable_sort(points.begin(), points.end(),
                     [](const Point& a, const Point& b) { return a.at < b.at; });
    Verdict v;
    std::size_t last = 0;  // the highest event begun: shrinking keeps all up to it
    for (const Point& p : points) {
      if (!violation_) advance_to(p.at);
      if (!violation_) {
        last = std::max(last, p.event);
        apply(scenario_.events[p.event], p.end);
        settle();
        check();
      }
      if (violation_) {
        v.step = last;
        break;
      }
    }
    if (!violation_) {
      advance_to(std::chrono::hours(24) * scenario_.days);
      if (violation_ && !scenario_.events.empty()) v.step = scenario_.events.size() - 1;
    }
    stop();
    if (violation_) v.violation = *violation_ + " (at " + clock_text(now()) + ")" + log_.tail();
    v.totals = totals_;
    return v;
  }

 private:
  // ------------------------------------------------------------ the world

  // True time (the cloud's): the node's wall clock is off by `offset_`
  // while a kClockWrong lasts.
  Duration now() const { return clock_.wall() - offset_ - kStart; }

  api::Response call(const std::string& method, const std::string& target, std::string body = {},
                     std::string content_type = "application/json") {
    api::Request q{method,
                   target,
                   std::move(content_type),
                   std::move(body),
                   "application/json",
                   "cloud.example:6443"};
    return std::get<api::Response>(rest_.handle(admin_, q));
  }

  // The EdgeNode's spec: the latest sources and spec.linkerd's references.
  json::object spec() const {
    json::object spec{
        {"firewall", json::object{{"allowedSources", sources_json(latest_.sources)}}}};
    json::object linkerd;
    if (issuer_ref_ != 0)
      linkerd["issuerSecretRef"] = json::object{{"name", kIssuers[issuer_ref_]}};
    if (bundle_ref_) linkerd["trustBundleRef"] = json::object{{"name", kBundle}};
    if (!linkerd.empty()) spec["linkerd"] = std::move(linkerd);
    return spec;
  }

  void write_spec() {
    json::object node = json::parse(call("GET", kNodePath).body).as_object();
    node["spec"] = spec();
    call("PUT", kNodePath, json::serialize(node));
  }

  // cert-manager renewing an issuer Secret (1, 2: a new issuer under the
  // node's anchor), trust-manager rewriting the bundle (3: the anchor), or
  // either deleted: a new resourceVersion each time.
  void write_linkerd_object(int which, bool deleted) {
    const bool secret = which != 3;
    const std::string collection = secret ? kSecretsPath : kConfigMapsPath;
    const std::string name = secret ? kIssuers[which] : kBundle;
    if (deleted) {
      call("DELETE", collection + "/" + name);
      return;
    }
    const std::string version = std::to_string(++linkerd_version_);
    const api::Response got = call("GET", collection + "/" + name);
    json::object object;
    if (got.status == 200) {
      object = json::parse(got.body).as_object();
    } else {
      object = {{"apiVersion", "v1"},
                {"kind", secret ? "Secret" : "ConfigMap"},
                {"metadata", json::object{{"name", name}, {"namespace", kNs}}}};
      if (secret) object["type"] = "kubernetes.io/tls";
    }
    object["metadata"].as_object()["annotations"] = json::object{{"example.com/renewal", version}};
    if (secret) {
      const test::PemPair issuer =
          test::make_linkerd_issuer(anchor_, {true_wall() - 1h, true_wall() + kCloudIssuerLife});
      cloud_issuers_.emplace(issuer.cert_pem, true_wall() + kCloudIssuerLife);
      object = issuer_secret_update(std::move(object), IssuerLayout::kTls, issuer.cert_pem,
                                    issuer.key_pem, anchor_.cert_pem);
    } else {
      object = trust_roots_update(std::move(object), anchor_.cert_pem);
    }
    if (got.status == 200)
      call("PUT", collection + "/" + name, json::serialize(object));
    else
      call("POST", collection, json::serialize(object));
  }

  void setup() {
    const std::vector<std::string> first{"192.0.2.0/28"};
    latest_ = spec_event(now(), first);
    write_linkerd_object(1, false);
    write_linkerd_object(3, false);
    call("POST", kEdgeNodes,
         json::serialize(
             json::object{{"apiVersion", "tetherd.io/v1alpha1"},
                          {"kind", "EdgeNode"},
                          {"metadata", json::object{{"name", kNode}, {"namespace", kNs}}},
                          {"spec", spec()}}));
    valid_seen_.insert(first);
    changed_at_ = now();
    healthy_since_ = now();
    enroll();
    install_linkerd();
    Event file;
    file.length = 10s;
    write_file(file_text(file));
    start();
  }

  // `tetherctl enroll`'s files (issue 21): the node's key and certificate,
  // its kubeconfig naming them, and the bootstrap kubeconfig (a token) the
  // renewal falls back to once the certificate has expired.
  void enroll() {
    test::LeafOptions leaf;
    leaf.common_name = node_user(kNode);
    leaf.organizations = {std::string(kNodesGroup)};
    leaf.lifetime = std::chrono::duration_cast<std::chrono::seconds>(scenario_.certificate_life);
    leaf.now = true_wall();
    leaf.server_auth = false;
    const test::IssuedCert cert = cloud_ca_.issue(leaf);
    NodeKubeconfig k;
    k.server = kServer;
    k.ca_pem = cloud_ca_.cert_pem();
    k.client_certificate = dir_.write("node.crt", cert.cert_pem);
    k.client_key = dir_.write("node.key", cert.key_pem);
    k.user = node_user(kNode);
    dir_.write("controlplane.kubeconfig", render_kubeconfig(k));
    dir_.write("bootstrap.kubeconfig",
               token_kubeconfig("bootstrap", kServer, cloud_ca_.cert_pem(), kBootstrapToken));
  }

  // linkerd as `linkerd install` leaves it in k3s: the trust roots (the
  // anchor), an issuer of a week, the identity controller's Deployment;
  // the anchor's key on the node (linkerd.trustAnchorKey).
  void install_linkerd() {
    dir_.write("anchor.key", anchor_.key_pem);
    // k3s's kubeconfig, as k3s writes it at its first start (a token here:
    // the in-process answers judge no credential).
    dir_.write("k3s.yaml", token_kubeconfig("default", "https://127.0.0.1:6443",
                                            cloud_ca_.cert_pem(), "k3s-admin"));
    const test::PemPair issuer =
        test::make_linkerd_issuer(anchor_, {true_wall() - 1h, true_wall() + kIssuerValidity});
    const auto post = [this](const kube::Resource& r, json::object object) {
      object["metadata"].as_object()["namespace"] = kLinkerdNs;
      const api::Response a =
          k3s_call("POST", kube::collection_path(r, kLinkerdNs), json::serialize(object));
      if (a.status != 201) fail("setup: k3s: " + a.body);
    };
    post(kube::kConfigMaps, trust_roots_update({{"apiVersion", "v1"},
                                                {"kind", "ConfigMap"},
                                                {"metadata", {{"name", kTrustRootsConfigMapName}}}},
                                               anchor_.cert_pem));
    post(kube::kSecrets, issuer_secret_update({{"apiVersion", "v1"},
                                               {"kind", "Secret"},
                                               {"type", "kubernetes.io/tls"},
                                               {"metadata", {{"name", kIssuerSecretName}}}},
                                              IssuerLayout::kTls, issuer.cert_pem, issuer.key_pem,
                                              anchor_.cert_pem));
    post(kube::kDeployments, {{"apiVersion", "apps/v1"},
                              {"kind", "Deployment"},
                              {"metadata", {{"name", kIdentityDeploymentName}}},
                              {"spec", {{"template", {{"metadata", json::object{}}}}}}});
  }

  // What the approver does with the node's next CSR: the scenario's, or
  // drawn.
  Approval draw_approval() {
    const Approver& a = scenario_.approver;
    if (made_requests_ < a.first.size()) return a.first[made_requests_++];
    ++made_requests_;
    if (a.denied == 0 && a.late == 0) return {};
    const double u = unit_of(rng_);
    if (u < a.denied) return {.after = {}, .denied = true};
    if (u < a.denied + a.late)
      return {.after = 1h + std::chrono::duration_cast<Duration>(29h * unit_of(rng_)),
              .denied = false};
    return {};
  }

  // The node's CSRs approved (or denied) when the scenario's approver says
  // (an admin's `kubectl certificate approve`, or an approver): at the next
  // minute, or hours on; signed at once by the cloud's signer on its own
  // clock. Deleted an hour after the decision, or a day after they were
  // made if still pending, whether or not the node, asleep, fetched them.
  void approve_requests() {
    for (auto& r : requests_) {
      if (r.decided || now() - r.at < r.verdict.after || r.verdict.after >= kPendingLife) continue;
      const api::Response got = call("GET", std::string(kCsrCollection) + "/" + r.name);
      if (got.status != 200) continue;
      r.decided = true;
      decided_at_ = now();
      json::value csr = json::parse(got.body);
      csr.as_object()["status"] = json::object{
          {"conditions",
           json::array{json::object{{"type", r.verdict.denied ? "Denied" : "Approved"},
                                    {"status", "True"},
                                    {"reason", r.verdict.denied ? "Policy" : "NodeRenewal"},
                                    {"message", "the node's own request"}}}}};
      const api::Response put = call(
          "PUT", std::string(kCsrCollection) + "/" + r.name + "/approval", json::serialize(csr));
      if (put.status != 200) return fail("setup: deciding " + r.name + ": " + put.body);
      if (r.verdict.denied) {
        ++totals_.requests_denied;
        approver_clear_at_ = std::max(approver_clear_at_, now() + kRefusedBackoff);
      } else {
        ++totals_.certificates_signed;
        if (r.verdict.after > Duration::zero()) ++totals_.approvals_late;
        approver_clear_at_ = std::max(approver_clear_at_, now());
      }
    }
    std::erase_if(requests_, [&](const Request& r) {
      const bool gone =
          r.decided ? now() - r.at - r.verdict.after >= kCsrLife : now() - r.at >= kPendingLife;
      if (!gone) return false;
      call("DELETE", std::string(kCsrCollection) + "/" + r.name);
      if (!r.decided) {
        ++totals_.requests_expired;
        approver_clear_at_ = std::max(approver_clear_at_, now());
      }
      return true;
    });
  }

  // The node's newest CSR waits on the approver (past the world's next
  // minute): nothing the node does can renew its certificate meanwhile.
  bool waiting_for_approver() const {
    return !requests_.empty() && !requests_.back().decided &&
           requests_.back().verdict.after > Duration::zero();
  }

  // tetherd's start, as tetherd_main makes it: the file read, the parts
  // made, and the real Daemon started with them (the firewall first, the
  // saved state applied, then the session, the resume detector and the
  // health rounds).
  void start() {
    config_ = std::get<Config>(read_file());
    keeper_ = std::make_unique<FirewallKeeper>(
        log_, StateDir(dir_.path()),
        [this](const FirewallConfig&) -> std::unique_ptr<firewall::Backend> {
          return std::make_unique<Kernel>(kernel_);
        },
        std::vector<asio::ip::address>{asio::ip::make_address("192.0.2.1")}, io_.get_executor(),
        FirewallKeeper::Worker::kLoop);
    // The session, made by the daemon from the kubeconfig on disk (as
    // tetherd_main's make_tether, on clients answered in process), and
    // made again when its credentials cannot be used any more.
    DaemonFactories factories;
    factories.tether = [this](const Config& c,
                              const Kubeconfig& k) -> Result<std::unique_ptr<Tether>> {
      TetherTiming timing;
      timing.retry = kube::default_retry_context(clock_);
      timing.retry->random = [this] { return unit_of(rng_); };
      account_tether();
      auto made = std::make_unique<Tether>(io_, clock_, log_, *keeper_, conditions_,
                                           cloud_client(k, true), c, std::move(timing));
      // As make_tether: a second client for spec.linkerd's objects.
      if (sabotage_ != Sabotage::kNoObjectsClient) made->follow_objects_with(cloud_client(k, true));
      made_ = made.get();
      made_stats_ = {};
      return made;
    };
    // The node's certificate renewed on the world's clients, its times
    // drawn from the world's generator (a seed replays).
    factories.renewal.random = [this] { return unit_of(rng_); };
    factories.renewal.connect =
        [this](const Kubeconfig& k) -> kube::ApiResult<std::unique_ptr<kube::HttpsClient>> {
      if (sabotage_ == Sabotage::kNoRenewal)
        return kube::make_api_error(kube::ErrorKind::kInvalid, "sabotaged: no client");
      return cloud_client(k, false);
    };
    // k3s's clients and linkerd's issuer, made by the daemon's LocalCluster
    // from the file's `cluster` and `linkerd` sections and k3s's kubeconfig,
    // as in production; its clients answered in process, its times drawn
    // from the world's generator.
    factories.local = [this](const Config& c) {
      IssuerRotationTiming timing;
      timing.random = [this] { return unit_of(rng_); };
      return std::make_unique<LocalCluster>(
          io_, clock_, log_, c, timing,
          [this](const Kubeconfig&) -> kube::ApiResult<std::unique_ptr<kube::HttpsClient>> {
            return k3s_client();
          });
    };
    // The health rounds (the firewall read back and repaired, the clock,
    // the node's vitals, k3s's client as the daemon hands it from its
    // LocalCluster), their conditions written through the Tether the
    // daemon hands them.
    health_ = std::make_unique<NodeHealth>(io_, clock_, log_, config_, *keeper_, conditions_,
                                           nullptr, nullptr);
    // Sleeps and wakes from logind's signal, or the clocks alone when it is
    // lost; the checker's test gives the daemon no detector at all.
    if (sabotage_ != Sabotage::kForgetResumes) {
      auto logind = std::make_unique<test::FakeSleepSignal>();
      logind_ = logind.get();
      resume_ = std::make_unique<ResumeDetector>(io_, clock_, log_, std::move(logind));
    }
    if (sabotage_ != Sabotage::kNoFileWatch) files_ = std::make_unique<FileWatch>(io_, clock_);
    daemon_ = std::make_unique<Daemon>(
        io_, clock_, log_, notifier_, *keeper_, file_path(), [this] { return read_file(); },
        config_,
        DaemonParts{.resume = resume_.get(),
                    .state = &state_,
                    .health = health_.get(),
                    .files = files_.get(),
                    .conditions = &conditions_},
        std::move(factories));
    notifier_.started();
    if (auto r = daemon_->start(); !r)
      fail("firewall-holds-the-static-allowlist: the daemon did not start: " + r.error().message);
    quiet_since_ = clock_.monotonic();
    settle();
  }

  // The configuration file, as the admin writes it and tetherd reads it.
  std::string file_path() const { return dir_.path() + "/tetherd.yaml"; }
  // Its text for a reload (the checker's tests: naming a kubeconfig of
  // k3s that is not there, or without linkerd's section).
  std::string file_text(const Event& e) const {
    return config_text(e, dir_.path(),
                       sabotage_ == Sabotage::kNoK3sClient ? "no-k3s.yaml" : "k3s.yaml",
                       sabotage_ != Sabotage::kNoIssuer);
  }
  void write_file(std::string text) {
    file_text_ = std::move(text);
    std::ofstream out(file_path(), std::ios::trunc);
    out << file_text_;
    if (!out.flush()) fail("setup: cannot write " + file_path());
  }
  std::variant<Config, ConfigErrors> read_file() const {
    return load_config_file(file_path(), LoadOptions{.host_name = kNode});
  }

  // tetherd stopped (the rules stay: onStop keep).
  void stop() {
    if (!daemon_) return;  // stopped already (a stop that failed left the parts as they were)
    // k3s's stalled answers end with the process's connections.
    for (Timer* t : k3s_stalls_)
      t->cancel();
    settle();
    snapshot_tether();
    daemon_->stop("SIGTERM");
    // What is under way ends: a stalled answer waits out its deadline.
    for (int i = 0; i < 60 && !(daemon_->finished() && health_->finished()); ++i)
      clock_.run_for(io_, 1s);
    if (!health_->finished() || !daemon_->finished()) {
      fail(std::string("bounded-memory: the ") +
           (!health_->finished() && !daemon_->finished() ? "health rounds and the daemon's parts"
            : health_->finished()
                ? "daemon's parts (the sessions, the certificate's renewal, linkerd's issuer)"
                : "health rounds") +
           " did not finish a minute after stop()");
      // Their coroutines still refer to them, and they to the daemon and
      // the keeper: all left, none freed under them.
      static_cast<void>(daemon_.release());
      static_cast<void>(resume_.release());
      static_cast<void>(files_.release());
      static_cast<void>(health_.release());
      static_cast<void>(keeper_.release());
      logind_ = nullptr;
      parts_left_ = true;
      return;
    }
    // The daemon lets go of the health rounds as it goes: before them.
    daemon_.reset();
    files_.reset();
    resume_.reset();
    logind_ = nullptr;
    totals_.health_rounds += health_->stats().rounds;
    health_.reset();
    account_tether();
    settle();
    keeper_.reset();
  }

  // A CSR made (201), or decided by the approver, in the last 10 minutes:
  // its requests (and the new certificate's) are not steady state. (A
  // create the server refuses is not: a loop of them is caught.)
  bool renewing() const {
    return (!asked_.empty() && now() - asked_.back() <= 10min) ||
           (decided_at_ && now() - *decided_at_ <= 10min);
  }
  // The session the daemon holds (none while its certificate is expired).
  Tether* session() const { return daemon_ ? daemon_->tether() : nullptr; }
  // The counts of the session the factory made last, as last seen while
  // the daemon used it, added up when it is replaced or tetherd stops.
  void snapshot_tether() {
    if (made_ != nullptr && session() == made_) made_stats_ = made_->stats();
  }
  void account_tether() {
    snapshot_tether();
    totals_.specs_applied += made_stats_.specs_applied;
    totals_.specs_rejected += made_stats_.specs_rejected;
    totals_.status_writes += made_stats_.status_writes;
    made_stats_ = {};
    made_ = nullptr;
  }

  // A client of the node's k3s, answered in process: /readyz and this
  // node's Ready condition, linkerd's objects (the test API server's REST
  // semantics), or refused while it is down.
  std::unique_ptr<kube::HttpsClient> k3s_client() {
    // (A lambda that calls a member coroutine: the frame holds `this`, not
    // a reference to a closure the client owns.)
    return kube::HttpsClient::create_in_process(
        io_.get_executor(), "https://127.0.0.1:6443",
        [this](kube::HttpRequest r) { return k3s_exchange(std::move(r)); });
  }
  asio::awaitable<kube::ApiResult<kube::HttpResponse>> k3s_exchange(kube::HttpRequest r) {
    ++totals_.k3s_requests;
    if (k3s_stalled_ > 0 && k3s_down_ == 0) {
      // Taken, never answered: the probe's deadline (on the simulated
      // clock) ends the probe, which abandons this; a minute on, or at
      // tetherd's stop, it ends.
      Timer stall(io_, clock_);
      stall.expires_after(1min);
      k3s_stalls_.push_back(&stall);
      co_await stall.async_wait(asio::as_tuple(asio::use_awaitable));
      std::erase(k3s_stalls_, &stall);
      co_return kube::ApiError{kube::ErrorKind::kTimeout, 0, "Timeout", "127.0.0.1:6443: no answer",
                               std::nullopt};
    }
    if (k3s_down_ > 0)
      co_return kube::ApiError{kube::ErrorKind::kTransport, 0, "ConnectionRefused",
                               "127.0.0.1:6443: connection refused", std::nullopt};
    if (r.target == "/readyz") co_return kube::HttpResponse{200, "ok", "", ""};
    if (r.target == "/api/v1/nodes/" + std::string(kNode))
      co_return kube::HttpResponse{
          200,
          json::serialize(
              json::object{{"kind", "Node"},
                           {"apiVersion", "v1"},
                           {"metadata", {{"name", kNode}}},
                           {"status",
                            {{"conditions",
                              json::array{json::object{{"type", "Ready"}, {"status", "True"}}}}}}}),
          "", ""};
    const std::string method(boost::beast::http::to_string(r.verb));
    const std::string path = r.target.substr(0, r.target.find('?'));
    if (path == "/api/v1/pods" && method == "GET")
      count_pod_list();
    else
      count_linkerd_request(method + " " + path);
    // What the rotation takes now: a write while it holds the cloud's
    // issuer must be the cloud's.
    const IssuerRotation* const rotation = daemon_ ? daemon_->issuer() : nullptr;
    const bool from_cloud = rotation && rotation->cloud().issuer_from_cloud();
    api::Response a = k3s_call(method, r.target, std::move(r.body), r.content_type);
    if (path == kIssuerPath && method != "GET" && a.status == 200) issuer_written(from_cloud);
    if (path == kIdentityPath && method == "PATCH" && a.status == 200) {
      ++totals_.identity_restarts;
      // Only a controller that did not say it loaded the last issuer
      // written is restarted (it says so within 90 s awake, unless k3s is
      // down then).
      if (last_write_said_)
        fail(
            "identity-restarted-only-when-unconfirmed: deploy/linkerd-identity restarted "
            "though it said IssuerUpdated for the issuer written at " +
            clock_text(last_issuer_write_));
    }
    co_return kube::HttpResponse{a.status, std::move(a.body),
                                 a.retry_after ? std::to_string(*a.retry_after) : "", ""};
  }

  api::Response k3s_call(const std::string& method, const std::string& target,
                         std::string body = {}, std::string content_type = "application/json") {
    api::Request q{
        method,          target, std::move(content_type), std::move(body), "application/json",
        "127.0.0.1:6443"};
    return std::get<api::Response>(k3s_rest_.handle(admin_, q));
  }

  void count_pod_list() {
    while (!pod_lists_.empty() && now() - pod_lists_.front() >= 1h)
      pod_lists_.pop_front();
    pod_lists_.push_back(now());
    if (pod_lists_.size() == kPodListsAnHour + 1)
      fail("linkerd-requests-bounded: " + std::to_string(pod_lists_.size()) +
           " lists of this node's meshed pods in an hour");
  }
  void count_linkerd_request(std::string what) {
    while (!linkerd_requests_.empty() && now() - linkerd_requests_.front().first >= 1h)
      linkerd_requests_.pop_front();
    linkerd_requests_.emplace_back(now(), std::move(what));
    if (linkerd_requests_.size() == kLinkerdRequestsAnHour + 1) {
      std::string first;
      for (std::size_t i = 0; i < 10; ++i)
        first += ", " + linkerd_requests_[i].second;
      fail("linkerd-requests-bounded: " + std::to_string(linkerd_requests_.size()) +
           " requests to k3s for linkerd's objects in an hour, the first" + first);
    }
  }

  // The Secret's issuer as k3s holds it (its PEM, its dates), read again
  // only when its resourceVersion moves.
  struct Issuer {
    std::string version;
    std::string pem;
    WallTime not_before{}, not_after{};
  };
  std::optional<Issuer> issuer_in_k3s() {
    const api::Response got = k3s_call("GET", kIssuerPath);
    if (got.status != 200) return std::nullopt;
    const json::value secret = json::parse(got.body);
    const std::string version(secret.at("metadata").at("resourceVersion").as_string());
    if (k3s_issuer_.version == version) return k3s_issuer_;
    Issuer i{version, {}, {}, {}};
    if (auto decoded = decode_issuer_secret(secret.as_object()); decoded)
      i.pem = std::move(decoded->cert_pem);
    if (auto certs = x509::parse_certificates(i.pem, "tls.crt"); certs && !certs->empty()) {
      const CertificateInfo info = x509::describe(certs->front());
      i.not_before = info.not_before;
      i.not_after = info.not_after;
    }
    k3s_issuer_ = i;
    return i;
  }

  // tetherd wrote the issuer Secret: never one of its own while it holds
  // the cloud's; and linkerd's identity controller, which watches it, loads
  // it and says IssuerUpdated 5 to 90 s on, unless k3s is down by then
  // (tetherd restarts it after 120 s without a word).
  void issuer_written(bool from_cloud) {
    const auto written = issuer_in_k3s();
    last_issuer_write_ = now();
    last_write_said_ = false;
    const std::size_t write = ++issuer_writes_;
    const bool cloud = written && cloud_issuers_.contains(written->pem);
    ++(cloud ? totals_.cloud_issuers_taken : totals_.issuers_minted);
    if (from_cloud && !cloud)
      return fail(
          "no-mint-under-the-cloud's-issuer: tetherd wrote an issuer of its own while "
          "spec.linkerd names the cloud's");
    Say& say = controller_.emplace_back();
    say.timer = std::make_unique<Timer>(io_, clock_);
    say.timer->expires_after(5s + std::chrono::seconds(rng_() % 86));
    say.timer->async_wait([this, fired = say.fired, write](const boost::system::error_code& ec) {
      *fired = true;
      if (ec || k3s_down_ > 0 || k3s_stalled_ > 0) return;
      ++controller_said_;
      if (write == issuer_writes_) last_write_said_ = true;
      k3s_call("POST", kube::collection_path(kube::kEvents, kLinkerdNs),
               json::serialize(
                   json::object{{"apiVersion", "v1"},
                                {"kind", "Event"},
                                {"metadata",
                                 {{"name", "linkerd-identity." + std::to_string(controller_said_)},
                                  {"namespace", kLinkerdNs}}},
                                {"reason", kIssuerUpdatedReason},
                                {"type", "Normal"},
                                {"message", "Updated identity issuer"},
                                {"lastTimestamp", format_kube_time(clock_.wall())},
                                {"involvedObject",
                                 {{"kind", "Deployment"},
                                  {"namespace", kLinkerdNs},
                                  {"name", kIdentityDeploymentName}}}}));
    });
  }

  // What the EdgeNode's status in the store says of each condition, by
  // type (one read a check).
  std::map<std::string, std::string, std::less<>> conditions_in_store() {
    std::map<std::string, std::string, std::less<>> said;
    const api::Response got = call("GET", kNodePath);
    if (got.status != 200) return said;
    const json::object node = json::parse(got.body).as_object();
    const auto* status = node.if_contains("status");
    if (!status) return said;
    const auto* conditions = status->as_object().if_contains("conditions");
    if (!conditions) return said;
    for (const auto& c : conditions->as_array())
      said.emplace(c.at("type").as_string(), c.at("status").as_string());
    return said;
  }

  // What a client presents to the cloud: a certificate's validity, or a
  // bootstrap token.
  struct Presented {
    WallTime not_before{};
    WallTime not_after{};
    std::string token;
  };
  static Presented presented_by(const Kubeconfig& k) {
    Presented p;
    p.token = k.token;
    if (auto certs = x509::parse_certificates(k.client_cert_pem, k.path);
        certs && !certs->empty()) {
      const CertificateInfo info = x509::describe(certs->front());
      p.not_before = info.not_before;
      p.not_after = info.not_after;
    }
    return p;
  }
  // A client of the cloud, answered in process, presenting `k`'s
  // credentials and then those use_credentials() gives it. A `session`
  // client's certificate is the one judged by certificate-renewed-in-time.
  std::unique_ptr<kube::HttpsClient> cloud_client(const Kubeconfig& k, bool session) {
    auto presented = std::make_shared<Presented>(presented_by(k));
    if (session && presented->token.empty()) {
      session_born_ = presented->not_before;
      session_cert_ = presented->not_after;
    }
    return kube::HttpsClient::create_in_process(
        io_.get_executor(), kServer,
        [this, presented](kube::HttpRequest r) { return exchange(std::move(r), presented); },
        [this, presented](kube::HttpRequest r, Duration idle, kube::HttpsClient::BodySink sink,
                          std::function<void()> on_open, kube::HttpsClient::Cut on_cut) {
          return watch(std::move(r), presented, idle, std::move(sink), std::move(on_open),
                       std::move(on_cut));
        },
        [this, presented, session](const Kubeconfig& now) {
          *presented = presented_by(now);
          if (session && presented->token.empty()) {
            session_born_ = presented->not_before;
            session_cert_ = presented->not_after;
          }
        });
  }
  // The cloud's word on a client's credentials, as kube-apiserver's
  // authenticators: a certificate outside its validity (by the cloud's
  // clock) or an unknown token is 401 Unauthorized.
  std::optional<kube::HttpResponse> unauthorized(const Presented& p) {
    const WallTime t = true_wall();
    const bool ok =
        p.token.empty() ? p.not_before <= t && t < p.not_after : p.token == kBootstrapToken;
    if (ok) return std::nullopt;
    ++totals_.unauthorized;
    return kube::HttpResponse{401, status_body(401, "Unauthorized", "Unauthorized"), "", date()};
  }
  WallTime true_wall() const { return kStart + now(); }

  void settle() { clock_.run_for(io_, Duration::zero()); }

  void fail(std::string what) {
    if (!violation_) violation_ = std::move(what);
  }

  // The kernel: the in-memory one, which a test of the checker could break.
  class Kernel final : public firewall::Backend {
   public:
    explicit Kernel(test::FakeBackend& real) : real_(real) {}
    std::string_view name() const override { return "nftables"; }
    Result<void> apply(const firewall::Allowlist& a) override { return real_.apply(a); }
    Result<std::optional<firewall::LiveTable>> read() override { return real_.read(); }
    Result<void> remove() override { return real_.remove(); }

   private:
    test::FakeBackend& real_;
  };

  // ------------------------------------------------------- the control plane

  // A fault the node cannot be connected through (a slow server and a
  // rival writer of the Lease leave it connected).
  bool unwell() const {
    return !active_.empty() && active_.back() != Fault::kSlow &&
           active_.back() != Fault::kLeaseConflict;
  }

  std::optional<Fault> fault() const {
    if (active_.empty()) return std::nullopt;
    return active_.back();
  }

  // A request, counted under what it asks for (a failure says which).
  void count_request(const kube::HttpRequest& r, bool watch) {
    ++totals_.requests;
    recent_.push_back(clock_.monotonic());
    const std::string path = r.target.substr(0, r.target.find('?'));
    std::string what = path == kLeasePath                  ? "Lease"
                       : path.starts_with(kNodePath)       ? "EdgeNode"
                       : path.starts_with(kEdgeNodes)      ? "EdgeNodes"
                       : path.starts_with(kSecretsPath)    ? "Secret"
                       : path.starts_with(kConfigMapsPath) ? "ConfigMap"
                       : path.starts_with(kCsrCollection)  ? "CSR"
                                                           : path;
    what = std::string(boost::beast::http::to_string(r.verb)) + " " + what;
    if (watch) what += " watch";
    recent_what_.push_back(std::move(what));
  }

  struct Refusal {
    std::optional<kube::ApiError> error;  // a transport error
    unsigned status = 0;                  // or an answer
    std::string body;
    std::string retry_after;
  };
  // What the faults make of a request before the API server sees it (a
  // reset after the 200 is the caller's: the server has acted). A wait is
  // on `timer`, which a cut of a watch cancels.
  awaitable<Refusal> refusal(Timer& timer) {
    const auto f = fault();
    if (!f) co_return Refusal{};
    switch (*f) {
      case Fault::kRefused:
        co_return Refusal{transport("connection refused"), 0, {}, {}};
      case Fault::kReset:
        co_return Refusal{transport("connection reset by peer"), 0, {}, {}};
      case Fault::kStalled: {
        timer.expires_after(kReadTimeout);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return Refusal{timed_out("no answer within 30 s"), 0, {}, {}};
      }
      case Fault::kSlow: {
        timer.expires_after(kSlowAnswer);
        co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return Refusal{};
      }
      case Fault::k500:
      case Fault::k503:
      case Fault::k429: {
        const unsigned code = *f == Fault::k500 ? 500 : *f == Fault::k503 ? 503 : 429;
        const std::string reason = code == 500   ? "InternalError"
                                   : code == 503 ? "ServiceUnavailable"
                                                 : "TooManyRequests";
        const auto after = std::chrono::duration_cast<std::chrono::seconds>(retry_after_).count();
        // A client may wait what it was told and a jittered share more,
        // even past the fault's end (core/backoff.h's retry_delay at its
        // largest, as the session simulation bounds it).
        if (after > 0) {
          constexpr unsigned kCapped = 64;
          honour_until_ = std::max(honour_until_, now() + retry_delay(SessionPolicy{}.backoff,
                                                                      kCapped, retry_after_, 1.0));
        }
        co_return Refusal{std::nullopt, code, status_body(code, reason, "the server is unwell"),
                          after > 0 ? std::to_string(after) : ""};
      }
      default:
        co_return Refusal{};
    }
  }

  awaitable<kube::ApiResult<kube::HttpResponse>> exchange(kube::HttpRequest r,
                                                          std::shared_ptr<Presented> presented) {
    const WallTime sent = clock_.wall();  // the node's clock
    count_request(r, false);
    // The session's list of its EdgeNode, asked anew and refused (401:
    // an expired certificate) answers the resume too; one that lists and
    // never watches again does not.
    const bool list = r.verb == boost::beast::http::verb::get &&
                      r.target.substr(0, r.target.find('?')) == kEdgeNodes;
    Timer timer(io_, clock_);
    Refusal refused = co_await refusal(timer);
    if (refused.error) co_return *refused.error;
    if (refused.status != 0)
      co_return kube::HttpResponse{refused.status, std::move(refused.body), refused.retry_after,
                                   date()};
    if (auto no = unauthorized(*presented)) {
      if (list) resumed_at_.reset();
      co_return std::move(*no);
    }
    const std::string method(boost::beast::http::to_string(r.verb));
    const std::string path = r.target.substr(0, r.target.find('?'));
    if (fault() == Fault::kLeaseConflict && path == kLeasePath && method == "PUT")
      conflicted_ = !conflicted_;
    if (fault() == Fault::kLeaseConflict && path == kLeasePath && method == "PUT" && conflicted_) {
      // Someone else's write lands first (every other time: the Lease's
      // GET and PUT again after a 409 get through).
      const api::Response got = call("GET", kLeasePath);
      if (got.status == 200) {
        json::object lease = json::parse(got.body).as_object();
        lease["metadata"].as_object()["annotations"] =
            json::object{{"example.com/touched", std::to_string(totals_.requests)}};
        call("PUT", kLeasePath, json::serialize(lease));
      }
    }
    api::Response a = call(method, r.target, std::move(r.body), r.content_type);
    if (a.status == 201 && method == "POST" && path == kCsrCollection) {
      // The admin (or an approver) decides it at the next minute, or later.
      const json::value csr = json::parse(a.body);
      requests_.push_back({.name = std::string(csr.at("metadata").at("name").as_string()),
                           .at = now(),
                           .verdict = draw_approval(),
                           .decided = false});
      totals_.renewals_with_token += !presented->token.empty();
      // A certificate of 20 days is asked for again once in 14 to 18 days;
      // a request gone, refused or cut off asks again, but not in a loop.
      asked_.push_back(now());
      while (now() - asked_.front() > 24h)
        asked_.pop_front();
      if (asked_.size() > kRequestsADay)
        fail("renewals-bounded: " + std::to_string(asked_.size()) +
             " certificate requests made in a day");
    }
    if (a.status / 100 == 2 &&
        ((method == "PUT" && path == kLeasePath) || (method == "POST" && path == kLeasesPath)))
      lease_written(json::parse(a.body).as_object(), sent);
    // The server acted; the answer is lost on the way.
    if (fault() == Fault::kResetAfterOk) co_return transport("connection closed mid-body");
    co_return kube::HttpResponse{a.status, std::move(a.body),
                                 a.retry_after ? std::to_string(*a.retry_after) : "", date()};
  }
  // The cloud's Date header: true time, which the daemon's clock witness
  // hears.
  std::string date() const {
    return api::utc_time(std::chrono::system_clock::to_time_t(true_wall()),
                         "%a, %d %b %Y %H:%M:%S GMT");
  }

  // The Lease as the server stored it (the answer may be lost on the way):
  // its renewTime is the node's clock when it was sent, as kubelet's is,
  // and a change of it is a renewal, seen on the cloud's clock.
  void lease_written(const json::object& lease, WallTime sent) {
    if (lease.at("metadata").at("name").as_string() != lease_name(kNode)) return;
    const json::value* renew = lease.at("spec").as_object().if_contains("renewTime");
    const std::string said = renew && renew->is_string() ? std::string(renew->as_string()) : "";
    const auto at = parse_kube_time(said);
    if (!at || *at > sent || sent - *at > 1s)
      return fail("lease-renew-time-is-node-clock: the Lease's renewTime '" + said +
                  "' is not this node's clock (" + format_kube_micro_time(sent) + ")");
    if (said == renew_time_) return;
    renew_time_ = said;
    renewed_at_ = now();
  }

  struct Watch {
    Watch(asio::io_context& io, const Clock& clock) : timer(io, clock) {}
    Timer timer;
    std::deque<std::shared_ptr<const api::StoreEvent>> queue;
    bool cut = false;     // the client closed it
    bool reset = false;   // the server did
    bool silent = false;  // dead, and nobody said (a sleep, a NAT, a stall)
  };

  awaitable<kube::ApiResult<void>> watch(kube::HttpRequest r, std::shared_ptr<Presented> presented,
                                         Duration idle, kube::HttpsClient::BodySink sink,
                                         std::function<void()> on_open,
                                         kube::HttpsClient::Cut on_cut) {
    auto w = std::make_shared<Watch>(io_, clock_);
    on_cut([w] {
      w->cut = true;
      w->timer.cancel();
    });
    count_request(r, true);
    // The session's watch of its EdgeNode, asked anew.
    if (r.target.starts_with(kEdgeNodes)) resumed_at_.reset();
    ++totals_.watches;
    Refusal refused = co_await refusal(w->timer);
    if (w->cut) co_return disconnected();
    if (refused.error) co_return *refused.error;
    if (refused.status != 0)
      co_return kube::error_from_response(refused.status, refused.body, refused.retry_after);
    if (auto no = unauthorized(*presented)) co_return kube::error_from_response(401, no->body, "");
    api::Request q{"GET", r.target, {}, {}, "application/json", "cloud.example:6443"};
    api::Outcome outcome = rest_.handle(admin_, q);
    if (auto* answer = std::get_if<api::Response>(&outcome))
      co_return kube::error_from_response(
          answer->status, answer->body,
          answer->retry_after ? std::to_string(*answer->retry_after) : std::string());
    api::WatchRequest& request = std::get<api::WatchRequest>(outcome);
    if (on_open) on_open();
    if (fault() == Fault::kResetAfterOk) co_return transport("watch: connection closed mid-stream");
    if (fault() == Fault::kGone) {
      // As kube-apiserver after a compaction: 200, one ERROR event, the end.
      json::object event{
          {"type", "ERROR"},
          {"object", json::parse(status_body(410, "Expired", "too old resource version"))}};
      if (auto fed = sink(json::serialize(event) + "\n"); !fed) co_return fed.error();
      co_return kube::ApiResult<void>{};
    }
    auto started = store_.watch(request.filter, request.from,
                                [w](std::shared_ptr<const api::StoreEvent> event) {
                                  w->queue.push_back(std::move(event));
                                  w->timer.cancel();
                                });
    if (!started.ok()) {
      json::object event{{"type", "ERROR"}, {"object", started.error().status}};
      if (auto fed = sink(json::serialize(event) + "\n"); !fed) co_return fed.error();
      co_return kube::ApiResult<void>{};
    }
    const std::uint64_t id = started.value().id;
    std::uint64_t version = started.value().resource_version;
    const std::uint64_t start_version = version;
    watches_.emplace(id, w.get());
    struct Unwatch {
      World* world;
      std::uint64_t id;
      ~Unwatch() {
        world->store_.unwatch(id);
        world->watches_.erase(id);
      }
    } unwatch{this, id};
    const auto feed = [&](const std::string& line) -> kube::ApiResult<bool> { return sink(line); };
    MonoTime idle_at = clock_.monotonic() + idle;
    for (const std::string& line : started.value().initial) {
      auto fed = feed(line);
      if (!fed) co_return fed.error();
      if (*fed) idle_at = clock_.monotonic() + idle;
    }
    const Duration timeout = request.timeout > 0s ? Duration(request.timeout) : Duration(300s);
    const MonoTime end_at = clock_.monotonic() + timeout;
    MonoTime bookmark_at = clock_.monotonic() + kBookmarkPeriod;
    for (;;) {
      if (w->cut) co_return disconnected();
      if (w->reset) co_return transport("watch: connection closed mid-stream");
      while (!w->queue.empty() && !w->cut) {
        auto event = std::move(w->queue.front());
        w->queue.pop_front();
        if (w->silent || event->resource_version <= start_version) continue;
        version = std::max(version, event->resource_version);
        if (auto line = request.filter.event_line(*event)) {
          auto fed = feed(*line);
          if (!fed) co_return fed.error();
          if (*fed) idle_at = clock_.monotonic() + idle;
        }
      }
      if (w->cut) co_return disconnected();
      const MonoTime t = clock_.monotonic();
      if (!w->silent && t >= end_at) co_return kube::ApiResult<void>{};
      if (t >= idle_at)
        co_return timed_out("watch idle: nothing complete for " + std::to_string(idle / 1s) + " s");
      if (!w->silent && request.bookmarks && t >= bookmark_at) {
        json::object event{
            {"type", "BOOKMARK"},
            {"object", json::object{{"kind", request.filter.type->kind},
                                    {"apiVersion", request.filter.type->api_version()},
                                    {"metadata",
                                     json::object{{"resourceVersion", std::to_string(version)}}}}}};
        auto fed = feed(json::serialize(event) + "\n");
        if (!fed) co_return fed.error();
        if (*fed) idle_at = t + idle;
        bookmark_at = t + kBookmarkPeriod;
      }
      MonoTime next = idle_at;
      if (!w->silent) next = std::min({next, end_at, request.bookmarks ? bookmark_at : end_at});
      w->timer.expires_after(next - t);
      co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  // Each watch is dead; it ends by its idle deadline at the latest.
  void silence_watches() {
    silent_until_ = now() + kIdle;
    for (auto& [id, w] : watches_) {
      w->silent = true;
      w->timer.cancel();
    }
  }
  void reset_watches() {
    for (auto& [id, w] : watches_) {
      w->reset = true;
      w->timer.cancel();
    }
  }

  // ------------------------------------------------------------- the events

  void apply(const Event& e, bool end) {
    switch (e.kind) {
      case Kind::kSpec:
        ++totals_.specs;
        latest_ = e;
        write_spec();
        changed_at_ = now();
        if (e.valid) valid_seen_.insert(e.sources);
        break;
      case Kind::kLinkerdRefs:
        ++totals_.linkerd_changes;
        // Only a change of the names moves the followers (a new list and
        // watch); the same names written again leave them be.
        if (issuer_ref_ != e.linkerd || bundle_ref_ != e.bundle) refs_at_ = now();
        issuer_ref_ = e.linkerd;
        bundle_ref_ = e.bundle;
        write_spec();
        linkerd_at_ = now();
        break;
      case Kind::kLinkerdObject:
        ++totals_.linkerd_changes;
        write_linkerd_object(e.linkerd, !e.valid);
        linkerd_at_ = now();
        break;
      case Kind::kClockWrong:
        // Nothing else happens: the daemon's tick sees the step
        // (Daemon::check_wall_step), and nothing that waits may wait on it.
        if (!end) ++totals_.clock_steps;
        clock_.step_wall(end ? -e.offset : e.offset);
        offset_ += end ? -e.offset : e.offset;
        if (offset_ == Duration::zero()) clock_right_at_ = now();
        // A step that takes the node's clock past the session's certificate
        // is a fault of its own: the session is held back until a new
        // certificate is in (the bootstrap credential's request, approved
        // within the minute).
        if (!unwell() && session_cert_ && clock_.wall() >= *session_cert_)
          healthy_since_ = std::max(healthy_since_, now());
        break;
      case Kind::kK3sDown:
        if (!end) ++totals_.k3s_outages;
        (e.stalled ? k3s_stalled_ : k3s_down_) += end ? -1 : 1;
        k3s_changed_at_ = now();
        break;
      case Kind::kOutage:
        if (!end) ++totals_.outages;
        if (e.fault == Fault::kNatDrop) {
          silence_watches();
          healthy_since_ = std::max(healthy_since_, silent_until_);
          // Its recovery (every watch redialled at its idle deadline) is
          // not steady state, as after any other fault.
          quiet_since_ = clock_.monotonic() + kIdle;
          break;
        }
        // One fault at a time: one that begins during another is dropped
        // (the cloud cannot be stalled and answer 503 at once).
        if (!end && !active_.empty()) {
          dropped_.insert(&e);
          break;
        }
        if (end && dropped_.erase(&e) > 0) break;
        if (!end) {
          active_.push_back(e.fault);
          fault_since_ = now();
          retry_after_ = e.retry_after;
          if (down_fault(e.fault)) {
            down_since_ = now();
            // A brownout leaves an open watch alone, which ends at its
            // timeout (5 minutes); a broken network ends it at once or by
            // its idle deadline.
            const bool brownout =
                e.fault == Fault::k500 || e.fault == Fault::k503 || e.fault == Fault::k429;
            down_claim_ = brownout ? kBrownoutClaim : kDownClaim;
            if (e.fault == Fault::kStalled) silence_watches();
            if (!brownout && e.fault != Fault::kStalled) reset_watches();
          }
          // A slow server and a rival writer of the Lease still leave the
          // node connected: everything is checked through them.
          if (e.fault != Fault::kSlow && e.fault != Fault::kLeaseConflict)
            healthy_since_ = std::max(healthy_since_, now() + 100 * 24h);  // not until it ends
        } else {
          active_.clear();
          down_since_.reset();
          // A watch silenced by a stall is noticed by its idle deadline.
          healthy_since_ =
              std::max({std::min(healthy_since_, now()), silent_until_, honour_until_});
          quiet_since_ = clock_.monotonic();
        }
        break;
      case Kind::kReload: {
        // The file written and the daemon reloaded (SIGHUP), or the edit
        // alone, seen by the daemon's FileWatch (inotify, its quiet time on
        // the simulated clock). A bad file is put right again by the admin
        // after the daemon refused it, so a restart reads a good one.
        ++totals_.reloads;
        const std::string good = file_text_;
        const Config before = daemon_->config();
        // An edit changes something (the heartbeat when nothing else), or
        // whether the daemon saw it could not be told.
        Event edit = e;
        if (e.by_edit && file_text(edit) == file_text_) edit.length = e.length == 10s ? 20s : 10s;
        write_file(file_text(edit));
        bool taken = false;
        if (e.by_edit) {
          ++totals_.reloads_by_edit;
          clock_.run_for(io_, 2s);
          const auto wanted = read_file();
          taken = std::holds_alternative<Config>(wanted) &&
                  daemon_->config() == std::get<Config>(wanted);
          if (!e.valid && daemon_->config() != before)
            return fail("reload-judged: a bad file's edit changed the configuration in force");
        } else {
          taken = daemon_->reload();
        }
        if (!e.valid) write_file(good);
        if (taken != e.valid)
          return fail(std::string("reload-judged: a ") + (e.valid ? "good" : "bad") + " file was " +
                      (e.valid ? "refused" : "taken"));
        if (e.valid) allow_ = e.allow;
        break;
      }
      case Kind::kRestart:
        ++totals_.restarts;
        stop();
        if (violation_) break;
        start();
        if (!unwell()) healthy_since_ = std::max(healthy_since_, now());
        quiet_since_ = clock_.monotonic();
        break;
      case Kind::kSleep: {
        // One that began while the node slept lasts what is left of it.
        const Duration length = std::min(e.length, e.at + e.length - now());
        if (length <= Duration::zero()) break;
        ++totals_.sleeps;
        const bool told = !e.logind_lost && logind_;
        if (told) {
          // logind's PrepareForSleep(true): the daemon's last status, then
          // the lock let go (or logind's InhibitDelayMaxSec runs out).
          logind_->prepare(true);
          for (Duration waited{}; logind_->holding() && waited < kLogindDelay; waited += 1s)
            clock_.run_for(io_, 1s);
        }
        // The server and the NATs forget every connection while the node
        // sleeps; the node learns it only from a redial.
        silence_watches();
        clock_.suspend(length);
        resumed_at_ = now();
        // A daemon redials at once on a resume (logind's, or its own
        // check's): a watch it kept would die by its deadline only.
        silent_until_ = now();
        if (told) {
          logind_->prepare(false);
        } else if (resume_) {
          // The daemon's tick finds the clocks' jump.
          clock_.run_for(io_, kResumeTick);
        }
        if (!unwell()) healthy_since_ = std::max(healthy_since_, now());
        quiet_since_ = clock_.monotonic();
        trouble_at_ = now();
        break;
      }
    }
  }

  // Runs the node until `t`, checking every simulated minute.
  void advance_to(Duration t) {
    while (!violation_ && now() < t) {
      const Duration next = std::min(t, now() + 1min);
      clock_.run_for(io_, next - now());
      approve_requests();
      check();
    }
  }

  // ---------------------------------------------------------- the invariants

  void check() {
    if (violation_) return;
    ++totals_.checks;
    snapshot_tether();
    // The daemon's loop turns: systemd would kill a daemon that stopped
    // pinging its watchdog.
    if (const Duration gap = notifier_.longest_gap(); gap > kWatchdog)
      return fail("watchdog-pinged: " + std::to_string(gap / 1s) + " s without WATCHDOG=1");
    // A resume redials at once (logind's signal, or the daemon's tick
    // within 10 s): the session's watch is asked anew, not left to die by
    // its idle deadline (90 to 150 s on, as bookmarks fell).
    // (It redials when the fault ends; a session held back for a
    // certificate expired (by the node's clock) dials when a new one is in:
    // connected-soon-after-a-fault.)
    if (resumed_at_ && (unwell() || session() == nullptr)) resumed_at_.reset();
    if (resumed_at_ && now() - *resumed_at_ >= kRedial)
      return fail("session-redials-on-resume: no new watch of the EdgeNode " +
                  std::to_string((now() - *resumed_at_) / 1s) + " s after a resume");
    // The node's certificate expires only when something stood in the
    // renewal's way in the day before (a sleep, set at its resume; the
    // cloud unwell; the node's clock wrong).
    if (waiting_for_approver()) approver_clear_at_ = std::max(approver_clear_at_, now());
    if (unwell() || offset_ != Duration::zero() || now() <= approver_clear_at_) trouble_at_ = now();
    if (session_cert_ && true_wall() >= *session_cert_ && judged_expiry_ != *session_cert_) {
      judged_expiry_ = *session_cert_;
      ++totals_.certificates_expired;
      if (const Duration calm = (*session_cert_ - kStart) - trouble_at_; calm > kRenewalCalm)
        return fail("certificate-renewed-in-time: the session's certificate expired at " +
                    clock_text(*session_cert_ - kStart) + ", " + std::to_string(calm / 1h) +
                    " h after anything last stood in the renewal's way");
    }
    // Nor is it left unrenewed past its latest renewal point (90% of its
    // life, by a clock that is right) through 2 hours with nothing in the way.
    if (session_cert_) {
      const WallTime latest = session_born_ + (*session_cert_ - session_born_) * 9 / 10;
      const Duration since_due = now() - std::max(trouble_at_, Duration(latest - kStart));
      if (true_wall() >= latest && true_wall() < *session_cert_ && since_due >= kRenewalCalm)
        return fail("certificate-renewed-in-time: the session's certificate, due at " +
                    clock_text(latest - kStart) + " at the latest, is not renewed " +
                    std::to_string(since_due / 1min) +
                    " minutes after anything last stood in the renewal's way");
    }
    // The node's wrong clock crossing the session's certificate's end is a
    // fault of its own, as a step past it: the session is held back until
    // a new certificate is in.
    if (offset_ != Duration::zero() && session_cert_ && clock_.wall() >= *session_cert_ &&
        crossed_ != *session_cert_) {
      crossed_ = *session_cert_;
      if (!unwell()) healthy_since_ = std::max(healthy_since_, now());
    }
    // The kernel always holds the static allowlist and alwaysAllow.
    const auto& live = kernel_.live;
    if (!live) return fail("firewall-holds-the-static-allowlist: no table in the kernel");
    for (const std::string& must : {kAllows[allow_], kAlwaysAllow})
      if (!live->allowlist.sources.covers(*firewall::parse_cidr(must)))
        return fail("firewall-holds-the-static-allowlist: " + must + " is not allowed");
    // What a reload took out is out once the keeper has applied it.
    if (const std::string& gone = kAllows[1 - allow_];
        !keeper_->busy() && live->allowlist.sources.covers(*firewall::parse_cidr(gone)))
      return fail("firewall-follows-the-file: " + gone + ", no longer in the file, is allowed");
    // The state file parses, and says what is in force.
    if (!keeper_->busy()) {
      auto saved = read_saved_desired(StateDir(dir_.path()));
      if (!saved) return fail("state-file-agrees: it does not parse: " + saved.error().message);
      if (*saved && **saved != keeper_->in_force())
        return fail("state-file-agrees: the file has " + std::to_string((*saved)->sources.size()) +
                    " sources, the keeper " + std::to_string(keeper_->in_force().sources.size()));
    }
    const Duration since = now() - healthy_since_;
    // With the session's certificate expired, the way back is a new one:
    // the renewal's next try, the approval, then a session.
    // (A certificate issued while the node's clock was behind is refused
    // by the node, as not yet valid, until the clock is right again.)
    // (And the way back waits for the approver: a late approval, a
    // denial's backoff.)
    // A session held back by the node's clock alone (ahead, past the
    // certificate's end by it) comes back the same way, without waiting
    // for the clock: a certificate the cloud issues is valid by a clock up
    // to 10 days ahead (seed 107: the clock put ahead in a sleep, then a
    // restart and a sleep cut the renewal's first tries).
    const bool cut_off = session_cert_ && true_wall() >= *session_cert_;
    // (Not by a clock so far ahead that a new certificate looks expired
    // too: that waits for the clock, and is not judged.)
    const bool held_back = session_cert_ && clock_.wall() >= *session_cert_;
    if (cut_off ? offset_ == Duration::zero() &&
                      now() - std::max({healthy_since_, clock_right_at_, approver_clear_at_}) >=
                          kCutOffRecovery
        : held_back ? offset_ < scenario_.certificate_life / 2 &&
                          now() - std::max(healthy_since_, approver_clear_at_) >= kCutOffRecovery
                    : since >= kRecovery) {
      // Connected, a fresh Lease and the latest valid spec in force.
      Tether* const tether = session();
      if (tether == nullptr || !tether->connected())
        return fail("connected-soon-after-a-fault: not connected " + std::to_string(since / 1s) +
                    " s after the world was well: " +
                    (tether ? tether->summary()
                            : std::string("no session (its certificate expired and not renewed)")));
      // Judged by when its renewTime last changed, on the cloud's clock:
      // what it says is the node's clock, which may be wrong.
      if (!renewed_at_ || now() - *renewed_at_ > kLeaseDuration)
        return fail("lease-fresh: the Lease's renewTime " +
                    (renewed_at_
                         ? "last changed " + std::to_string((now() - *renewed_at_) / 1s) + " s ago"
                         : std::string("never written")));
      const auto said = conditions_in_store();
      const auto in_store = [&](std::string_view type) {
        const auto it = said.find(type);
        return it == said.end() ? std::string() : it->second;
      };
      if (in_store(condition_type::kConnected) != "True")
        return fail("connected-soon-after-a-fault: the EdgeNode's status does not say Connected");
      // The health rounds' word on k3s, judged from the world: once k3s
      // has been down or up for health.threshold rounds and a status
      // tick, the status says so (neither a stale True nor a stale False).
      if (const Duration held = now() - k3s_changed_at_; held >= kK3sClaim && since >= kK3sClaim) {
        const std::string k3s_said = in_store(condition_type::kK3sReady);
        const bool k3s_out = k3s_down_ > 0 || k3s_stalled_ > 0;
        const std::string is = k3s_out ? "False" : "True";
        totals_.k3s_down_judged += k3s_out;
        if (k3s_said != is)
          return fail("k3s-ready-claim: the EdgeNode's status says K3sReady " +
                      (k3s_said.empty() ? std::string("nothing") : k3s_said) +
                      " while k3s has been " + (k3s_out ? "down" : "up") + " for " +
                      std::to_string(held / 1s) + " s");
      }
      // The latest spec in force if the node's limits allow it; if not,
      // the rules in force are kept, and they are a spec the cloud wrote
      // (the last one the node saw before: a sleep may have hidden some).
      const auto& in_force = keeper_->in_force().sources;
      if (now() - changed_at_ >= kRecovery && latest_.valid && in_force != latest_.sources)
        return fail("latest-spec-in-force: " + std::to_string(latest_.sources.size()) +
                    " sources asked " + std::to_string((now() - changed_at_) / 1s) + " s ago, " +
                    std::to_string(in_force.size()) + " in force");
      if (!latest_.valid && !valid_seen_.contains(in_force))
        return fail("latest-spec-in-force: a refused spec is the latest, and the " +
                    std::to_string(in_force.size()) +
                    " sources in force are no spec the cloud wrote");
      // spec.linkerd's references taken with the latest spec (a refused one
      // is not taken), and what they name followed as the cloud holds it:
      // after a fault the server answered (a brownout, a 410), a follower
      // may wait out its own backoff (Tether::kFollowerBackoffCap).
      if (latest_.valid && since >= kRecovery + Tether::kFollowerBackoffCap &&
          now() - std::max(changed_at_, linkerd_at_) >= kRecovery)
        if (auto why = linkerd_unfollowed()) return fail("linkerd-objects-followed: " + *why);
    }
    // No claim the world contradicts.
    if (down_since_ && now() - *down_since_ >= down_claim_ && session() && session()->connected())
      return fail("no-connected-claim-while-down: connected, the control plane down for " +
                  std::to_string((now() - *down_since_) / 1s) + " s");
    // Requests: bounded at steady state, with nothing phase-locked.
    while (!recent_.empty() && clock_.monotonic() - recent_.front() > 10min) {
      recent_.pop_front();
      recent_what_.pop_front();
    }
    const auto last_minute =
        static_cast<std::size_t>(std::count_if(recent_.begin(), recent_.end(), [&](MonoTime t) {
          return clock_.monotonic() - t <= 1min;
        }));
    // A long fault is backed off: after its first 20 minutes (the followers'
    // backoff reaches its cap of 5 minutes in about 10), at most 15 a minute
    // (the Lease's, the session's and the followers' tries).
    if (unwell() && now() - fault_since_ >= 20min && clock_.monotonic() - quiet_since_ >= 20min &&
        recent_.size() > kTenMinutesInAFault)
      return fail("a-long-outage-is-backed-off: " + std::to_string(recent_.size()) +
                  " requests in ten minutes of " + to_string(active_.back()) + ": " +
                  recent_requests());
    // (A renewal of the node's certificate asks a few more, for minutes:
    // renewals-bounded counts them.)
    // While the approver keeps a request waiting, the renewal reads and
    // watches it anew every 5 to 10 minutes (RenewalTiming::watch_timeout).
    const std::size_t waiting = waiting_for_approver() ? 2 : 0;
    if (active_.empty() && clock_.monotonic() - quiet_since_ >= 26min && !renewing()) {
      totals_.busiest_minute =
          std::max(totals_.busiest_minute, std::max(last_minute, waiting) - waiting);
      if (recent_.size() > kTenMinutes + 2 * waiting)
        return fail("requests-bounded: " + std::to_string(recent_.size()) +
                    " requests in ten steady minutes: " + recent_requests());
      // (Not the minute after spec.linkerd names other objects: each new
      // follower lists and watches, up to four requests the spec asked for.
      // Seeds 109 and 111 met it: 11 and 13.)
      if (last_minute > kAnyMinute + waiting && now() - refs_at_ > 1min)
        return fail("requests-bounded: " + std::to_string(last_minute) +
                    " requests in one steady minute: " + recent_requests(1min));
    }
    if (auto why = issuer_out_of_force()) return fail("issuer-in-force: " + *why);
    // Memory: the watches and the timers do not grow with time.
    if (watches_.size() > kMaxWatches)
      return fail("bounded-memory: " + std::to_string(watches_.size()) + " watches open");
    // (k3s's stalled answers and the identity controller's words to come
    // are the world's timers, not tetherd's.)
    controller_.remove_if([](const Say& say) { return *say.fired; });
    const std::size_t world = std::min(clock_.pending(), k3s_stalls_.size() + controller_.size());
    if (const std::size_t armed = clock_.pending() - world; armed > kMaxTimers)
      return fail("bounded-memory: " + std::to_string(armed) + " timers armed");
  }

  // linkerd's issuer, judged from k3s's store once it could be put right
  // for kIssuerBound (the node awake, k3s answering, the clock right, the
  // session well and its view of spec.linkerd unchanged): the cloud's
  // issuer the session holds, when spec.linkerd names one in force by the
  // true clock; with none named, one in force by the true clock (minted
  // here under the anchor's key).
  std::optional<std::string> issuer_out_of_force() {
    const auto in_k3s = issuer_in_k3s();
    if (!in_k3s) return "k3s holds no issuer Secret";  // nobody deletes it here
    const Tether* held = session();
    std::string view;  // the Secret spec.linkerd names and its resourceVersion, as held
    const json::object* object = nullptr;
    if (held) {
      const CloudLinkerd& cloud = held->cloud_linkerd();
      view = cloud.refs.issuer_secret + "@";
      if (cloud.issuer.object) {
        object = &*cloud.issuer.object;
        if (const auto* meta = object->if_contains("metadata"); meta && meta->is_object())
          if (const auto* v = meta->as_object().if_contains("resourceVersion"); v && v->is_string())
            view += v->as_string();
      }
    }
    if (view != linkerd_view_) {
      linkerd_view_ = view;
      linkerd_view_at_ = now();
      linkerd_view_pem_.clear();
      if (object)
        if (auto decoded = decode_issuer_secret(*object, "the cloud's issuer Secret"); decoded)
          linkerd_view_pem_ = std::move(decoded->cert_pem);
    }
    const bool k3s_out = k3s_down_ > 0 || k3s_stalled_ > 0;
    if (!held || k3s_out || unwell() || offset_ != Duration::zero()) return std::nullopt;
    const Duration since =
        std::max({healthy_since_, k3s_changed_at_, clock_right_at_, linkerd_view_at_});
    if (now() - since < kIssuerBound) return std::nullopt;
    const WallTime t = true_wall();
    const std::string& named = held->cloud_linkerd().refs.issuer_secret;
    if (!named.empty()) {
      const auto cloud = cloud_issuers_.find(linkerd_view_pem_);
      if (cloud == cloud_issuers_.end() || t > cloud->second) return std::nullopt;
      if (in_k3s->pem != linkerd_view_pem_)
        return "spec.linkerd names Secret '" + named +
               "', whose issuer k3s's Secret does not hold " +
               std::to_string((now() - since) / 1min) + " minutes after it could";
      return std::nullopt;
    }
    if (t < in_k3s->not_before || t > in_k3s->not_after)
      return "k3s's issuer is in force from " + format_kube_time(in_k3s->not_before) + " to " +
             format_kube_time(in_k3s->not_after) + ", not now, " +
             std::to_string((now() - since) / 1min) + " minutes after it could be put right";
    return std::nullopt;
  }

  std::optional<std::string> linkerd_unfollowed() {
    const CloudLinkerd& seen = session()->cloud_linkerd();
    const std::string& issuer = kIssuers[issuer_ref_];
    const std::string bundle = bundle_ref_ ? kBundle : "";
    if (seen.refs.issuer_secret != issuer || seen.refs.bundle_config_map != bundle)
      return "spec.linkerd names Secret '" + issuer + "' and ConfigMap '" + bundle +
             "', the Tether follows '" + seen.refs.issuer_secret + "' and '" +
             seen.refs.bundle_config_map + "'";
    if (auto why = unfollowed(seen.issuer, kSecretsPath, issuer)) return "Secret " + *why;
    if (auto why = unfollowed(seen.bundle, kConfigMapsPath, bundle)) return "ConfigMap " + *why;
    return std::nullopt;
  }

  // What the Tether holds of `name` against what the store has.
  std::optional<std::string> unfollowed(const kube::FollowedObject& seen,
                                        const std::string& collection, const std::string& name) {
    if (name.empty()) {
      if (seen.object || seen.read) return std::string("followed though no longer named");
      return std::nullopt;
    }
    if (!seen.error.empty()) return name + ": the last read failed: " + seen.error;
    if (!seen.read) return name + " never read";
    const api::Response got = call("GET", collection + "/" + name);
    if (got.status == 404) {
      if (seen.object) return name + " was deleted, the Tether still holds it";
      return std::nullopt;
    }
    const std::string want(json::parse(got.body).at("metadata").at("resourceVersion").as_string());
    if (!seen.object)
      return name + " exists at resourceVersion " + want + ", the Tether holds none";
    const json::value* have = nullptr;
    if (const auto* meta = seen.object->if_contains("metadata"); meta && meta->is_object())
      have = meta->as_object().if_contains("resourceVersion");
    if (!have || !have->is_string() || have->as_string() != want)
      return name + " is at resourceVersion " + want + ", the Tether holds " +
             (have ? json::serialize(*have) : std::string("none"));
    return std::nullopt;
  }

  const Scenario& scenario_;
  Sabotage sabotage_;
  std::mt19937_64 rng_{scenario_.seed ^ 0x5eedULL};
  test::SimClock clock_{kStart};
  asio::io_context io_;
  TailLog log_;
  test::TempDir dir_;
  const StateDir state_{dir_.path()};
  test::FakeBackend kernel_;
  api::Store store_{64};
  api::Authorizer authorizer_;
  api::TokenRegistry tokens_{std::map<std::string, std::string>{}};
  // The cloud's client CA and its kube-apiserver-client signer, on the
  // world's true time.
  test::TestCa cloud_ca_{"the cloud's client CA"};
  api::RestApi rest_{
      store_, authorizer_, tokens_, std::chrono::seconds(300),
      api::CsrSigner{&cloud_ca_, std::chrono::hours(24 * 365), [this] { return true_wall(); }}};
  const api::Identity admin_{"system:admin", {"system:masters"}, ""};
  // The node's k3s: linkerd's objects (the same REST semantics), under an
  // anchor of ten years whose key is on the node; every issuer
  // cert-manager made in the cloud under it (its PEM, its end).
  api::Store k3s_store_{64};
  api::RestApi k3s_rest_{k3s_store_, authorizer_, tokens_, std::chrono::seconds(300)};
  const test::PemPair anchor_ =
      test::make_linkerd_anchor({kStart - 1h, kStart + 10 * 365 * std::chrono::hours(24)});
  std::map<std::string, WallTime> cloud_issuers_;
  // The identity controller's IssuerUpdated to come, each once.
  struct Say {
    std::unique_ptr<Timer> timer;
    std::shared_ptr<bool> fired = std::make_shared<bool>(false);
  };
  std::list<Say> controller_;
  std::size_t controller_said_ = 0;
  std::size_t issuer_writes_ = 0;
  Duration last_issuer_write_{};  // when tetherd last wrote the issuer Secret
  bool last_write_said_ = false;  // and the controller said IssuerUpdated for it
  Issuer k3s_issuer_;             // the Secret's as last read
  std::string linkerd_view_;      // the session's view of spec.linkerd's issuer
  Duration linkerd_view_at_{};    // when it last changed
  std::string linkerd_view_pem_;  // and the issuer it holds
  // linkerd's requests to k3s in the last hour: when, and what.
  std::deque<std::pair<Duration, std::string>> linkerd_requests_;
  std::deque<Duration> pod_lists_;  // the health rounds' MeshWatch's, the last hour
  Config config_;
  NodeConditions conditions_{clock_, 3};
  Notifier notifier_{clock_, sabotage_ != Sabotage::kNoWatchdog};
  std::unique_ptr<FirewallKeeper> keeper_;
  Tether* made_ = nullptr;  // the session the factory made last
  TetherStats made_stats_{};
  // The certificate the session presents (its end), and the last whose
  // end was judged; when anything last stood in the renewal's way.
  std::optional<WallTime> session_cert_;
  WallTime session_born_{};  // and its start
  WallTime crossed_{};       // the last certificate end a wrong clock crossed
  WallTime judged_expiry_{};
  Duration trouble_at_{};
  Duration clock_right_at_{};           // when the node's wall clock was last put right
  std::optional<Duration> resumed_at_;  // a resume not yet followed by a new watch
  struct Request {
    std::string name;
    Duration at{};
    Approval verdict;
    bool decided = false;
  };
  std::deque<Request> requests_;  // the node's CSRs, until deleted
  std::size_t made_requests_ = 0;
  std::optional<Duration> decided_at_;  // the approver's last decision
  // Until when the approver stood in the renewal's way (a late approval,
  // a denial and the backoff after it, a request deleted pending).
  Duration approver_clear_at_{};
  std::deque<Duration> asked_;               // when the node made them, the last day
  std::unique_ptr<NodeHealth> health_;       // freed before the Tether it writes through
  test::FakeSleepSignal* logind_ = nullptr;  // the resume detector's
  std::unique_ptr<ResumeDetector> resume_;
  std::unique_ptr<FileWatch> files_;         // the daemon's inotify, on the world's clock
  std::unique_ptr<Daemon> daemon_;           // freed before the parts it holds
  std::string file_text_;                    // what file_path() holds
  int k3s_down_ = 0;                         // the node's k3s outages under way
  int k3s_stalled_ = 0;                      // and its stalls
  std::vector<Timer*> k3s_stalls_;           // the requests a stall holds
  Duration k3s_changed_at_{};                // when k3s last went down or came back
  std::map<std::uint64_t, Watch*> watches_;  // by the store's id: a fixed order
  std::vector<Fault> active_;
  Duration retry_after_{};
  std::optional<Duration> down_since_;
  Duration offset_{};                   // the node's wall clock is this far off
  std::string renew_time_;              // the Lease's renewTime as last written
  std::optional<Duration> renewed_at_;  // when it last changed, in true time
  Duration healthy_since_{};
  Duration silent_until_{};
  Duration honour_until_{};  // the last Retry-After given runs out
  MonoTime quiet_since_{};
  Duration refs_at_{-std::chrono::hours(1)};       // spec.linkerd's references last changed
  Event latest_;                                   // the spec the cloud wrote last
  std::set<std::vector<std::string>> valid_seen_;  // every spec within the limits
  bool conflicted_ = false;
  std::set<const Event*> dropped_;  // outages begun during another
  Duration fault_since_{};
  Duration down_claim_ = kDownClaim;  // the last Lease PUT in a conflict spell met someone else's
  int allow_ = 0;                     // which of kAllows the file in force has
  int issuer_ref_ = 1;                // spec.linkerd's: which of kIssuers
  bool bundle_ref_ = true;            // and whether it names kBundle
  Duration linkerd_at_{};             // spec.linkerd's references or objects last changed
  std::uint64_t linkerd_version_ = 0;
  Duration changed_at_{};
  std::deque<MonoTime> recent_;
  std::deque<std::string> recent_what_;  // what each of recent_ asked

  // "60 PUT Lease, 2 GET Secret watch, ...", in the last `within`.
  std::string recent_requests(Duration within = 10min) const {
    std::map<std::string, int> by;
    for (std::size_t i = 0; i < recent_.size(); ++i)
      if (clock_.monotonic() - recent_[i] <= within) ++by[recent_what_[i]];
    std::string out;
    for (const auto& [what, n] : by)
      out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + what;
    return out;
  }
  std::optional<std::string> violation_;
  bool parts_left_ = false;
  Totals totals_;
};

}  // namespace

Event sleep_event(Duration at, Duration length, bool logind_lost) {
  Event e;
  e.at = at;
  e.kind = Kind::kSleep;
  e.length = length;
  e.logind_lost = logind_lost;
  return e;
}
Event outage_event(Duration at, Duration length, Fault fault, Duration retry_after) {
  Event e;
  e.at = at;
  e.kind = Kind::kOutage;
  e.length = length;
  e.fault = fault;
  e.retry_after = retry_after;
  return e;
}
Event spec_event(Duration at, std::vector<std::string> sources, bool valid) {
  Event e;
  e.at = at;
  e.kind = Kind::kSpec;
  e.sources = std::move(sources);
  e.valid = valid;
  return e;
}

Event linkerd_refs_event(Duration at, int issuer, bool bundle) {
  Event e;
  e.at = at;
  e.kind = Kind::kLinkerdRefs;
  e.linkerd = issuer;
  e.bundle = bundle;
  return e;
}
Event linkerd_object_event(Duration at, int object, bool deleted) {
  Event e;
  e.at = at;
  e.kind = Kind::kLinkerdObject;
  e.linkerd = object;
  e.valid = !deleted;
  return e;
}

Event clock_wrong_event(Duration at, Duration length, Duration offset) {
  Event e;
  e.at = at;
  e.kind = Kind::kClockWrong;
  e.length = length;
  e.offset = offset;
  return e;
}

Event k3s_down_event(Duration at, Duration length, bool stalled) {
  Event e;
  e.at = at;
  e.kind = Kind::kK3sDown;
  e.length = length;
  e.stalled = stalled;
  return e;
}

Scenario generate(std::uint64_t seed, int days) {
  const sim::Scenario life = sim::generate(seed, days);
  Scenario s;
  s.days = days;
  s.seed = seed;
  for (const Sleep& z : life.sleeps)
    s.events.push_back(sleep_event(z.start, z.length, z.logind_lost));
  for (const Outage& o : life.outages)
    s.events.push_back(outage_event(o.start, o.length, o.fault, o.retry_after));
  std::mt19937_64 r(seed ^ 0x51ecULL);
  const int specs = std::max(1, 1500 * days / 365);
  const Duration span = std::chrono::hours(24) * days;
  for (int i = 0; i < specs; ++i) {
    Event e;
    e.kind = Kind::kSpec;
    e.at = Duration(static_cast<Duration::rep>(r() % static_cast<std::uint64_t>(span.count())));
    // 1 to 8 sources (the file's maxSources), or 9 to 12: refused whole.
    e.valid = r() % 8 != 0;
    const std::size_t n = e.valid ? 1 + r() % 8 : 9 + r() % 4;
    std::vector<int> blocks(64);
    for (int k = 0; k < 64; ++k)
      blocks[static_cast<std::size_t>(k)] = k;
    for (std::size_t k = 0; k < n; ++k) {  // n distinct /30s, drawn as a partial shuffle
      std::swap(blocks[k], blocks[k + r() % (64 - k)]);
      e.sources.push_back("198.51.100." + std::to_string(blocks[k] * 4) + "/30");
    }
    std::sort(e.sources.begin(), e.sources.end());
    s.events.push_back(std::move(e));
  }
  for (int i = 0; i < std::max(1, 200 * days / 365); ++i) {
    Event e;
    e.kind = Kind::kReload;
    e.at = Duration(static_cast<Duration::rep>(r() % static_cast<std::uint64_t>(span.count())));
    e.valid = r() % 4 != 0;
    e.allow = static_cast<int>(r() % 2);
    e.length = r() % 2 ? 10s : 20s;
    s.events.push_back(std::move(e));
  }
  for (int i = 0; i < std::max(1, 20 * days / 365); ++i) {
    Event e;
    e.kind = Kind::kRestart;
    e.at = Duration(static_cast<Duration::rep>(r() % static_cast<std::uint64_t>(span.count())));
    s.events.push_back(std::move(e));
  }
  // A separate draw: the older events keep their times for a seed.
  std::mt19937_64 m(seed ^ 0x11cdULL);
  const auto when = [&] {
    return Duration(static_cast<Duration::rep>(m() % static_cast<std::uint64_t>(span.count())));
  };
  for (int i = 0; i < std::max(1, 24 * days / 365); ++i)
    s.events.push_back(linkerd_refs_event(when(), static_cast<int>(m() % 3), m() % 4 != 0));
  for (int i = 0; i < std::max(1, 300 * days / 365); ++i)
    s.events.push_back(linkerd_object_event(when(), 1 + static_cast<int>(m() % 3), m() % 10 == 0));
  // The node's k3s down (a restart, an upgrade, etcd stuck): 50 times a
  // year, 30 s to 2 hours. Drawn apart too.
  std::mt19937_64 k(seed ^ 0x3c5ULL);
  for (int i = 0; i < std::max(1, 50 * days / 365); ++i) {
    const Duration at =
        Duration(static_cast<Duration::rep>(k() % static_cast<std::uint64_t>(span.count())));
    const Duration length = std::chrono::seconds(30 + k() % 7170);
    s.events.push_back(k3s_down_event(at, length, /*stalled=*/k() % 3 == 0));
  }
  // The node's wall clock wrong 24 times a year, ahead or behind: by
  // seconds (1 to 120), minutes to hours (2 minutes to 6 hours) or days (1
  // to 10), for 10 s to a day before NTP steps it right. Drawn apart too.
  std::mt19937_64 c(seed ^ 0xc10cULL);
  for (int i = 0; i < std::max(1, 24 * days / 365); ++i) {
    const Duration at =
        Duration(static_cast<Duration::rep>(c() % static_cast<std::uint64_t>(span.count())));
    const std::uint64_t scale = c() % 3;
    const Duration by = scale == 0   ? std::chrono::seconds(1 + c() % 120)
                        : scale == 1 ? std::chrono::seconds(120 + c() % (6 * 3600 - 120))
                                     : std::chrono::seconds(86400 + c() % (9 * 86400));
    const Duration length = std::chrono::seconds(10 + c() % 86390);
    s.events.push_back(clock_wrong_event(at, length, c() % 2 ? by : -by));
  }
  std::stable_sort(s.events.begin(), s.events.end(),
                   [](const Event& a, const Event& b) { return a.at < b.at; });
  // Half the reloads are the file's edit alone (FileWatch). Drawn apart too.
  std::mt19937_64 f(seed ^ 0xf11eULL);
  for (Event& e : s.events)
    if (e.kind == Kind::kReload) e.by_edit = f() % 2 == 0;
  s.approver = {.first = {}, .denied = 0.1, .late = 0.15};
  return s;
}

Verdict run(const Scenario& scenario, Sabotage sabotage) {
  auto world = std::make_unique<World>(scenario, sabotage);
  Verdict v = world->run();
  // Parts that did not finish still wait on the world's loop, clock and
  // store: it is left with them, not freed under them.
  if (world->parts_left()) static_cast<void>(world.release());
  return v;
}

Scenario shrink(const Scenario& scenario, Sabotage sabotage, int runs) {
  return shrink_events(
      scenario, [&](const Scenario& s) { return run(s, sabotage); }, invariant, runs);
}

std::string describe(const Scenario& scenario) {
  std::string out;
  for (const Event& e : scenario.events) {
    out += "  " + clock_text(e.at) + " ";
    switch (e.kind) {
      case Kind::kSleep:
        out += "sleep " + std::to_string(e.length / 1s) + " s" +
               (e.logind_lost ? " (logind's signal lost)" : "");
        break;
      case Kind::kOutage:
        out +=
            std::string("outage ") + to_string(e.fault) + " " + std::to_string(e.length / 1s) +
            " s" +
            (e.retry_after > Duration::zero() ? " Retry-After " + std::to_string(e.retry_after / 1s)
                                              : std::string());
        break;
      case Kind::kRestart:
        out += "tetherd restarted";
        break;
      case Kind::kReload:
        out += std::string(e.by_edit ? "edit" : "reload") +
               (e.valid ? ": allow " + kAllows[e.allow] + ", heartbeat " +
                              std::to_string(e.length / 1s) + " s"
                        : std::string(" of a bad file"));
        break;
      case Kind::kSpec:
        out += std::string(e.valid ? "spec" : "refused spec") + " of " +
               std::to_string(e.sources.size()) + " sources";
        break;
      case Kind::kLinkerdRefs:
        out += "spec.linkerd names " +
               (e.linkerd ? "Secret " + kIssuers[e.linkerd] : std::string("no issuer")) +
               (e.bundle ? " and ConfigMap " + kBundle : std::string(" and no bundle"));
        break;
      case Kind::kLinkerdObject:
        out += std::string(e.valid ? "rewritten: " : "deleted: ") +
               (e.linkerd == 3 ? "ConfigMap " + kBundle : "Secret " + kIssuers[e.linkerd]);
        break;
      case Kind::kClockWrong:
        out += "the wall clock " + std::to_string(e.offset / 1s) + " s off for " +
               std::to_string(e.length / 1s) + " s";
        break;
      case Kind::kK3sDown:
        out += std::string(e.stalled ? "k3s stalled " : "k3s down ") +
               std::to_string(e.length / 1s) + " s";
        break;
    }
    out += "\n";
  }
  return out;
}

}  // namespace tetherd::sim::node
