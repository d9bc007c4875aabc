// linkerd's issuer kept valid, against the test API server standing in for
// the local k3s (admin over mTLS), with a linkerd PKI made the way linkerd's
// docs make it. The clock is a FakeClock: a three-day suspend is a call.
#include "agent/app/issuer_rotation.h"

#include <fstream>
#include <sys/stat.h>

#include "agent/adapters/linkerd_supply.h"
#include "agent/adapters/state_dir.h"
#include "agent/adapters/x509.h"
#include "agent/app/daemon.h"
#include "agent/core/base64.h"
#include "agent/core/kube_time.h"
#include "agent/core/node_conditions.h"
#include "test/integration/kube/kube_fixture.h"
#include "test/support/fake_backend.h"
#include "test/support/fake_clock.h"
#include "test/support/linkerd_pki.h"
#include "test/support/recording_log.h"
#include "test/support/recording_notifier.h"
#include "test/support/temp_dir.h"

namespace tetherd::test {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

const std::string kSecret = kube::object_path(kube::kSecrets, "linkerd", kIssuerSecretName);
const std::string kRoots =
    kube::object_path(kube::kConfigMaps, "linkerd", kTrustRootsConfigMapName);
const std::string kIdentity =
    kube::object_path(kube::kDeployments, "linkerd", kIdentityDeploymentName);

// The issuer a daemon test installs, from and to the clock's now.
struct Installed {
  Duration from;
  Duration to;
};

class IssuerRotationTest : public KubeTest {
 public:  // the table's arrangements reach in
  using KubeTest::server_;
  IssuerRotationTest() {
    // The local k3s's admin: what /etc/rancher/k3s/k3s.yaml holds.
    http_ = client(admin_kubeconfig());
    kube_ = std::make_unique<kube::KubeClient>(*http_);
    config_.trust_anchor_key = dir_.file("anchor.key");
    config_.rotate_before = 30min;
    config_.issuer_validity = 8760h;
    server_->create(kube::collection_path(kube::kDeployments, "linkerd"),
                    json::object{{"apiVersion", "apps/v1"},
                                 {"kind", "Deployment"},
                                 {"metadata", {{"name", "linkerd-identity"}}},
                                 {"spec", {{"template", {{"metadata", json::object{}}}}}}});
  }

  // The anchor in the trust roots and its key on disk (0600), and an
  // issuer under it in the Secret, in the layout asked for.
  void install(const PemPair& issuer, IssuerLayout layout = IssuerLayout::kTls,
               mode_t key_mode = 0600) {
    server_->create(kube::collection_path(kube::kConfigMaps, "linkerd"),
                    json::object{{"apiVersion", "v1"},
                                 {"kind", "ConfigMap"},
                                 {"metadata", {{"name", kTrustRootsConfigMapName}}},
                                 {"data", {{kTrustRootsKey, anchor_.cert_pem}}}});
    json::object data;
    if (layout == IssuerLayout::kTls) {
      data = {{"tls.crt", encode_base64(issuer.cert_pem)},
              {"tls.key", encode_base64(issuer.key_pem)},
              {"ca.crt", encode_base64(anchor_.cert_pem)}};
    } else {
      data = {{"crt.pem", encode_base64(issuer.cert_pem)},
              {"key.pem", encode_base64(issuer.key_pem)}};
    }
    server_->create(
        kube::collection_path(kube::kSecrets, "linkerd"),
        json::object{{"apiVersion", "v1"},
                     {"kind", "Secret"},
                     {"metadata", {{"name", kIssuerSecretName}}},
                     {"type", layout == IssuerLayout::kTls ? "kubernetes.io/tls" : "Opaque"},
                     {"data", std::move(data)}});
    write_anchor_key(anchor_.key_pem, key_mode);
  }

  // The Secret holds `issuer` now (kubernetes.io/tls), as if someone wrote it.
  void replace_issuer(const PemPair& issuer) {
    server_->update(kSecret, json::object{{"apiVersion", "v1"},
                                          {"kind", "Secret"},
                                          {"metadata", {{"name", kIssuerSecretName}}},
                                          {"type", "kubernetes.io/tls"},
                                          {"data",
                                           {{"tls.crt", encode_base64(issuer.cert_pem)},
                                            {"tls.key", encode_base64(issuer.key_pem)},
                                            {"ca.crt", encode_base64(anchor_.cert_pem)}}}});
  }

  void write_anchor_key(const std::string& pem, mode_t mode) {
    std::ofstream(config_.trust_anchor_key) << pem;
    ::chmod(config_.trust_anchor_key.c_str(), mode);
  }

  // An issuer valid from `from` to `to`, relative to the fake now.
  PemPair issuer(Duration from, Duration to, KeyKind key = KeyKind::kEcdsaP256) const {
    return make_linkerd_issuer(anchor_, {clock_.wall() + from, clock_.wall() + to}, key);
  }

  // Runs `f` on the loop (where the daemon's parts live) and waits for it.
  void on_loop(std::function<void()> f) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      f();
      done.set_value();
    });
    ensure_thread();
    done.get_future().wait();
  }

  // Waits (bounded) until the loop has logged `event`.
  void until_logged(std::string_view event) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    for (bool seen = false; !seen; std::this_thread::yield()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no " << event << " logged";
      on_loop([&] { seen = !log_.with_event(event).empty(); });
    }
  }

  // Asks `keeper` for a pass, every result kept in results_, and waits
  // (bounded) until the loop has logged `event`.
  void request_until_logged(IssuerRotation& keeper, std::string_view event, RotationTrigger trigger,
                            bool force = false, std::string token = {}) {
    on_loop([&] {
      keeper.on_result([this](const RotationResult& r) { results_.push_back(r); });
      keeper.request(trigger, force, token);
    });
    until_logged(event);
  }
  std::vector<RotationResult> results_;  // request_until_logged's, read on the loop

  // The Secret's PUT misbehaves, once.
  void secret_put_gets(Misbehaviour what) {
    server_->misbehave({.what = what,
                        .path_contains = "/secrets/" + std::string(kIssuerSecretName),
                        .method = "PUT"});
  }

  // A Date header for `t`, as an API server sends it.
  static std::string http_date(WallTime t) {
    const std::time_t s = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&s, &tm);
    char text[40];
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(text);
  }

  IssuerRotation& rotation(IssuerRotationTiming timing = {}) {
    rotation_ = std::make_unique<IssuerRotation>(io_, *kube_, clock_, log_, config_, timing);
    return *rotation_;
  }
  // No wait for the controller's Event, and a retry after milliseconds
  // (the daemon's is 30 s to 5 minutes).
  IssuerRotation& rotation_retrying_fast() {
    IssuerRotationTiming timing{.confirm_timeout = std::chrono::seconds(0)};
    timing.retry = {.base = std::chrono::milliseconds(10), .cap = std::chrono::milliseconds(40)};
    return rotation(timing);
  }

  // A daemon whose start finds the issuer valid for two hours more; after
  // `event`, a pass with `trigger` finds it expired and rotates.
  void the_daemon_rotates_after(const std::function<void(Daemon&)>& event, RotationTrigger trigger,
                                Installed installed = {-std::chrono::hours(1),
                                                       std::chrono::hours(2)},
                                IssuerState judged = IssuerState::kExpired);
  // A daemon over the fixture's rotation (the firewall a fake); `check`
  // runs on the loop once its start's pass is over. `cloud`: a control
  // plane is configured.
  struct FirstPass {
    bool cloud = false;
    const StateDir* state = nullptr;
    NodeConditions* conditions = nullptr;
    // Runs on the test's thread once the daemon has started, before the
    // wait for its passes to be over.
    std::function<void(Daemon&)> meanwhile = {};
    // A session to the test API server as the control plane too (its
    // EdgeNode node-a), with the admin's credentials.
    bool session = false;
    // The issuer is not the fixture's but the daemon's own LocalCluster's,
    // made once k3s's kubeconfig (k3s_yaml()) is usable; `then` may write it.
    bool local = false;
    // Runs on the test's thread once the session has read its EdgeNode.
    std::function<void(Daemon&)> then = {};
  };
  std::string k3s_yaml() const { return dir_.file("k3s.yaml"); }
  void after_the_daemons_first_pass(FirstPass parts,
                                    const std::function<void(IssuerRotation&)>& check);
  void restart_with_a_saved_cloud_issuer(bool cloud,
                                         const std::function<void(IssuerRotation&)>& check);

  std::size_t secret_writes() const {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      if (r.method == "PUT" && r.target.find("/secrets/") != std::string::npos) ++n;
    return n;
  }

  IssuerSecret stored_issuer() const {
    auto decoded = decode_issuer_secret(*server_->get(kSecret));
    if (!decoded) throw std::runtime_error(decoded.error().message);
    return *decoded;
  }

  CertificateInfo stored_issuer_info() const {
    auto certs = x509::parse_certificates(stored_issuer().cert_pem, "stored");
    if (!certs) throw std::runtime_error(certs.error().message);
    return x509::describe(certs->front());
  }

  TempDir dir_;
  FakeClock clock_{std::chrono::system_clock::now()};
  PemPair anchor_ = make_linkerd_anchor({clock_.wall() - 24h, clock_.wall() + 10 * 8760h});
  RecordingLog log_;
  LinkerdConfig config_;
  std::unique_ptr<kube::HttpsClient> http_;
  std::unique_ptr<kube::KubeClient> kube_;
  std::unique_ptr<IssuerRotation> rotation_;
};

TEST_F(IssuerRotationTest, AValidIssuerIsLeftAlone) {
  const PemPair current = issuer(-1h, 8760h);
  install(current);
  const RotationResult r = run(rotation().run(RotationTrigger::kStart));
  EXPECT_FALSE(r.rotated);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.before.verdict.reason, "IssuerValid");
  EXPECT_TRUE(r.before.verdict.valid);
  EXPECT_EQ(secret_writes(), 0u);
  EXPECT_EQ(stored_issuer().cert_pem, current.cert_pem);
}

TEST_F(IssuerRotationTest, AThreeDaySuspendExpiresTheIssuerAndTheResumeRotatesIt) {
  // Two hours left of three: valid (more than a third, more than rotateBefore).
  install(issuer(-1h, 2h));
  IssuerRotation& keeper = rotation();
  const IssuerReport before = run(keeper.check());
  ASSERT_EQ(before.verdict.issuer, IssuerState::kValid) << before.verdict.message;

  // Asleep for three days: Asio's monotonic timers saw nothing, the wall
  // clock saw it all.
  clock_.suspend(72h);
  const RotationResult r = run(keeper.run(RotationTrigger::kResume));
  ASSERT_TRUE(r.rotated) << r.error;
  EXPECT_EQ(r.before.verdict.issuer, IssuerState::kExpired);
  EXPECT_EQ(r.conflicts, 0u);

  // The Secret the identity controller reads: same layout, a new issuer
  // from the injected now (minus the skew allowance) for issuerValidity,
  // chaining to the anchor, with its key.
  const IssuerSecret stored = stored_issuer();
  EXPECT_EQ(stored.layout, IssuerLayout::kTls);
  EXPECT_EQ(stored.ca_pem, anchor_.cert_pem);
  auto certs = x509::parse_certificates(stored.cert_pem, "tls.crt");
  auto key = x509::parse_private_key(stored.key_pem, "tls.key");
  auto anchors = x509::parse_certificates(anchor_.cert_pem, "anchor");
  ASSERT_TRUE(certs && key && anchors);
  EXPECT_TRUE(x509::key_matches(certs->front(), *key));
  EXPECT_TRUE(x509::verify_chain(certs->front(), *anchors).has_value());
  const CertificateInfo info = x509::describe(certs->front());
  EXPECT_EQ(info.subject_cn, "identity.linkerd.cluster.local");
  EXPECT_EQ(info.key_type, "ECDSA P-256");
  EXPECT_EQ(info.not_before, std::chrono::floor<std::chrono::seconds>(clock_.wall()) - 5min);
  EXPECT_EQ(info.not_after, std::chrono::floor<std::chrono::seconds>(clock_.wall()) + 8760h);
  EXPECT_EQ(r.issued->serial_hex, info.serial_hex);
  // The trust roots are the cluster's to share, never ours to change.
  EXPECT_EQ(server_->get(kRoots)->at("data").at(kTrustRootsKey), json::value(anchor_.cert_pem));
  ASSERT_EQ(log_.with_event("issuer-rotated").size(), 0u) << "run() reports nothing itself";

  // And judged again, it is valid.
  EXPECT_EQ(run(keeper.check()).verdict.reason, "IssuerValid");
}

TEST_F(IssuerRotationTest, TheOlderLayoutIsKeptWhenRotating) {
  install(issuer(-8760h, -1h), IssuerLayout::kLegacy);
  const RotationResult r = run(rotation().run(RotationTrigger::kPeriodic));
  ASSERT_TRUE(r.rotated) << r.error;
  const json::object data = server_->get(kSecret)->at("data").as_object();
  EXPECT_TRUE(data.contains("crt.pem"));
  EXPECT_TRUE(data.contains("key.pem"));
  EXPECT_FALSE(data.contains("tls.crt"));
  EXPECT_EQ(server_->get(kSecret)->at("type"), "Opaque");
  EXPECT_EQ(stored_issuer_info().subject_cn, "identity.linkerd.cluster.local");
}

TEST_F(IssuerRotationTest, AWriteConflictMeansReadAndDecideAgain) {
  install(issuer(-8760h, -1h));  // expired: it must be rotated
  // The Secret's GET is answered slowly; meanwhile an operator puts in a
  // fresh issuer of their own. tetherd's PUT carries the old
  // resourceVersion, gets 409, reads again, and this time decides that
  // there is nothing to do.
  server_->misbehave({.what = Misbehaviour::kDrip,
                      .path_contains = "/secrets/linkerd-identity-issuer",
                      .drip_interval = 1ms});
  auto pass = start(rotation().run(RotationTrigger::kPeriodic));
  ASSERT_TRUE(server_->wait_for_requests(2, kDeadline));  // the ConfigMap, then the Secret
  const PemPair operators = issuer(-1h, 8760h);
  json::object secret = *server_->get(kSecret);
  secret["data"].as_object()["tls.crt"] = encode_base64(operators.cert_pem);
  secret["data"].as_object()["tls.key"] = encode_base64(operators.key_pem);
  server_->update(kSecret, secret);

  const RotationResult r = finish(pass);
  EXPECT_EQ(r.conflicts, 1u);
  EXPECT_FALSE(r.rotated);
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_EQ(r.before.verdict.reason, "IssuerValid");
  EXPECT_EQ(stored_issuer().cert_pem, operators.cert_pem) << "the operator's issuer stands";
  EXPECT_EQ(secret_writes(), 1u) << "one PUT, refused";
}

TEST_F(IssuerRotationTest, TheReloadIsConfirmedByTheIdentityControllersEvent) {
  install(issuer(-8760h, -1h));
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  const RotationResult r = run(keeper.run(RotationTrigger::kStart));
  ASSERT_TRUE(r.rotated) << r.error;
  // An IssuerUpdated event from before the write does not count...
  auto event = [&](std::string name, WallTime at) {
    return json::object{{"apiVersion", "v1"},
                        {"kind", "Event"},
                        {"metadata", {{"name", name}}},
                        {"involvedObject", {{"kind", "Deployment"}, {"name", "linkerd-identity"}}},
                        {"reason", "IssuerUpdated"},
                        {"message", "Updated identity issuer"},
                        {"lastTimestamp", format_kube_time(at)},
                        {"type", "Normal"}};
  };
  server_->create(kube::collection_path(kube::kEvents, "linkerd"), event("old", r.written_at - 1h));
  server_->create(kube::collection_path(kube::kEvents, "linkerd"), event("new", r.written_at));
  EXPECT_EQ(run(keeper.confirm_reload(r.written_at)), ReloadOutcome::kConfirmed);
  EXPECT_FALSE(server_->get(kIdentity)
                   ->at("spec")
                   .at("template")
                   .at("metadata")
                   .as_object()
                   .contains("annotations"))
      << "no restart when the controller said it reloaded";
  EXPECT_EQ(log_.with_event("issuer-reload-confirmed").size(), 1u);
}

// The controller's answer to the write before, stamped in the same second
// as this write (an Event's time has whole seconds), is not this write's
// too. (Issue 23's issuer year, seeds 211 and 238: a controller deaf by the
// second write stayed on the old issuer, as its restart was never made.)
TEST_F(IssuerRotationTest, AnEventThatConfirmedTheWriteBeforeIsNotTheNextOnesAnswer) {
  install(issuer(-8760h, -1h));
  server_->create(kube::collection_path(kube::kEvents, "linkerd"),
                  json::object{{"metadata", {{"name", "the-first-write"}}},
                               {"reason", "IssuerUpdated"},
                               {"lastTimestamp", format_kube_time(clock_.wall())}});
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  request_until_logged(keeper, "issuer-reload-confirmed", RotationTrigger::kPeriodic);
  // A second write in the same second (the clock is the test's).
  request_until_logged(keeper, "identity-restarted", RotationTrigger::kToken, /*force=*/true,
                       "rotate-now");
  ASSERT_EQ(results_.size(), 2u);
  EXPECT_TRUE(results_[0].rotated) << results_[0].error;
  EXPECT_TRUE(results_[1].rotated) << results_[1].error;
  EXPECT_EQ(results_[1].written_at, results_[0].written_at) << "in the same second";
  EXPECT_EQ(log_.with_event("issuer-reload-confirmed").size(), 1u);
}

TEST_F(IssuerRotationTest, WithoutTheEventTheIdentityDeploymentIsRestarted) {
  install(issuer(-8760h, -1h));
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  const RotationResult r = run(keeper.run(RotationTrigger::kStart));
  ASSERT_TRUE(r.rotated) << r.error;
  server_->create(kube::collection_path(kube::kEvents, "linkerd"),
                  json::object{{"metadata", {{"name", "stale"}}},
                               {"reason", "IssuerUpdated"},
                               {"lastTimestamp", format_kube_time(r.written_at - 10min)}});
  const auto generation = server_->get(kIdentity)->at("metadata").at("generation").as_int64();
  EXPECT_EQ(run(keeper.confirm_reload(r.written_at)), ReloadOutcome::kRestarted);
  const json::object identity = *server_->get(kIdentity);
  EXPECT_EQ(identity.at("spec")
                .at("template")
                .at("metadata")
                .at("annotations")
                .at("kubectl.kubernetes.io/restartedAt"),
            json::value(format_kube_time(clock_.wall())));
  EXPECT_EQ(identity.at("metadata").at("generation").as_int64(), generation + 1)
      << "a new pod template: the Deployment rolls its pods";
  EXPECT_EQ(log_.with_event("identity-restarted").size(), 1u);
}

// The whole path in the daemon: the start's check finds the issuer valid;
// three days asleep (the FakeClock: monotonic stands still) and the clocks'
// witness reports the resume, whose check rotates.
TEST_F(IssuerRotationTest, TheDaemonRotatesOnTheResumeAfterAThreeDaySuspend) {
  the_daemon_rotates_after(
      [&](Daemon& daemon) {
        clock_.suspend(72h);
        on_loop([&] { EXPECT_TRUE(daemon.check_resume()); });
      },
      RotationTrigger::kResume);
}

// The wall clock stepped (NTP's first answer after a boot with the time
// saved at shutdown): monotonic and boottime did not move, so it is no
// resume, but the issuer is three days older than the last check thought.
// The tick's check sees the step and judges the issuer again at once, not
// at the next hourly check.
TEST_F(IssuerRotationTest, TheDaemonRotatesWhenTheWallClockStepsPastTheIssuersEnd) {
  the_daemon_rotates_after(
      [&](Daemon& daemon) {
        clock_.step_wall(72h);
        on_loop([&] {
          EXPECT_FALSE(daemon.check_resume()) << "a step is no resume";
          EXPECT_EQ(daemon.check_wall_step(), std::optional<Duration>(72h));
          EXPECT_FALSE(daemon.check_wall_step()) << "seen once";
        });
        ASSERT_EQ(log_.with_event("wall-clock-stepped").size(), 1u);
        EXPECT_EQ(log_.with_event("wall-clock-stepped")[0].fields.at("STEP_SECONDS"), "259200");
      },
      RotationTrigger::kClockStep);
}

void IssuerRotationTest::the_daemon_rotates_after(const std::function<void(Daemon&)>& event,
                                                  RotationTrigger trigger, Installed installed,
                                                  IssuerState judged) {
  install(issuer(installed.from, installed.to));
  TempDir state;
  RecordingNotifier notifier;
  FirewallKeeper keeper(
      log_, StateDir(state.path()),
      [](const FirewallConfig&) { return std::make_unique<FakeBackend>(); }, {},
      io_.get_executor());
  IssuerRotation& issuers = rotation({.confirm_timeout = 0s});
  std::vector<RotationResult> results;
  std::unique_ptr<ResumeDetector> resume;
  std::unique_ptr<Daemon> daemon;
  on_loop([&] {
    resume = std::make_unique<ResumeDetector>(io_, clock_, log_,
                                              ResumeDetectorOptions{.bus_address = "none"});
    Config config;
    config.node_name = "node-a";
    config.linkerd = config_;
    daemon = std::make_unique<Daemon>(
        io_, clock_, log_, notifier, keeper, "tetherd.yaml",
        [&] { return std::variant<Config, ConfigErrors>(config); }, config,
        DaemonParts{.resume = resume.get(), .issuer = &issuers});
    ASSERT_TRUE(daemon->start().has_value());
  });
  auto passes = [&] {
    std::size_t n = 0;
    on_loop([&] { n = issuers.last() && !issuers.busy() ? 1 : 0; });
    return n;
  };
  auto until = [&](auto predicate) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    while (!predicate()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::yield();
    }
    return true;
  };
  ASSERT_TRUE(until([&] { return passes() == 1; }));
  on_loop([&] {
    EXPECT_EQ(issuers.last()->trigger, RotationTrigger::kStart);
    EXPECT_FALSE(issuers.last()->rotated);
  });

  event(*daemon);
  ASSERT_TRUE(until([&] {
    bool rotated = false;
    on_loop([&] { rotated = issuers.last()->rotated && !issuers.busy(); });
    return rotated;
  })) <<
      [&] {
        std::string why;
        on_loop([&] {
          why = std::string(to_string(issuers.last()->trigger)) + ": " + issuers.last()->error +
                " / " + issuers.last()->before.verdict.message;
        });
        return why;
      }();
  on_loop([&] {
    EXPECT_EQ(issuers.last()->trigger, trigger);
    EXPECT_EQ(issuers.last()->before.verdict.issuer, judged);
    ASSERT_EQ(log_.with_event("issuer-rotated").size(), 1u);
    EXPECT_EQ(log_.with_event("issuer-rotated")[0].fields.at("TRIGGER"), to_string(trigger));
  });
  EXPECT_GE(stored_issuer_info().not_after, clock_.wall() + 8000h);
  on_loop([&] { daemon->stop("test"); });
}

// A daemon started with an expired issuer, the anchor key at hand and the
// name of a cloud issuer saved by an earlier run; `cloud`: a control plane
// is configured. `check` runs on the loop once the first pass is over.
void IssuerRotationTest::restart_with_a_saved_cloud_issuer(
    bool cloud, const std::function<void(IssuerRotation&)>& check) {
  install(issuer(-8760h, -1h));
  TempDir state;
  const StateDir state_dir(state.path());
  ASSERT_FALSE(state_dir.replace("linkerd-cloud-issuer", "linkerd-issuer-edge"));
  after_the_daemons_first_pass({.cloud = cloud, .state = &state_dir}, check);
}

void IssuerRotationTest::after_the_daemons_first_pass(
    FirstPass parts, const std::function<void(IssuerRotation&)>& check) {
  TempDir state;
  RecordingNotifier notifier;
  FirewallKeeper keeper(
      log_, StateDir(state.path()),
      [](const FirewallConfig&) { return std::make_unique<FakeBackend>(); }, {},
      io_.get_executor());
  IssuerRotation& issuers = rotation({.confirm_timeout = 0s});
  NodeConditions session_conditions{clock_, HealthConfig{}.threshold};
  std::unique_ptr<Tether> session;  // outlives the daemon, which holds it
  std::unique_ptr<Daemon> daemon;
  Config config;  // what the daemon's reload reads, to the end
  on_loop([&] {
    config.node_name = "node-a";
    config.linkerd = config_;
    if (parts.cloud || parts.session) config.control_plane.emplace();  // the cloud that named it
    if (parts.local) config.cluster = ClusterConfig{.kubeconfig = k3s_yaml()};
    if (parts.state) config.state.dir = parts.state->path();  // a reload keeps it
    if (parts.session) {
      TetherTiming timing;
      timing.retry = kube::default_retry_context(clock_, {.base = 100ms, .cap = 1s});
      session = std::make_unique<Tether>(io_, clock_, log_, keeper, session_conditions,
                                         client(admin_kubeconfig()), config, std::move(timing));
    }
    daemon = std::make_unique<Daemon>(
        io_, clock_, log_, notifier, keeper, "tetherd.yaml",
        [&] { return std::variant<Config, ConfigErrors>(config); }, config,
        DaemonParts{.tether = session.get(),
                    .issuer = parts.local ? nullptr : &issuers,
                    .state = parts.state,
                    .conditions = parts.session ? &session_conditions : parts.conditions},
        // (No factory otherwise: a reload would attach a LocalCluster.)
        parts.local ? DaemonFactories{.local =
                                          [&](const Config& c) {
                                            return std::make_unique<LocalCluster>(
                                                io_, clock_, log_, c,
                                                IssuerRotationTiming{.confirm_timeout = 0s});
                                          }}
                    : DaemonFactories{});
    ASSERT_TRUE(daemon->start().has_value());
  });
  ASSERT_TRUE(daemon);
  // Stopped however this ends: the rotation (the fixture's) outlives the
  // daemon, whose witness it would call; the session ends before it goes.
  struct StopAtEnd {
    IssuerRotationTest& test;
    Daemon& daemon;
    std::unique_ptr<Tether>& session;
    ~StopAtEnd() {
      test.on_loop([this] { daemon.stop("test"); });
      if (!session) return;
      const auto deadline = std::chrono::steady_clock::now() + kDeadline;
      for (bool over = false; !over && std::chrono::steady_clock::now() < deadline;
           std::this_thread::yield())
        test.on_loop([&] { over = session->finished(); });
      test.on_loop([this] { session.reset(); });
    }
  } stop_at_end{*this, *daemon, session};
  if (parts.meanwhile) parts.meanwhile(*daemon);
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  // The session's EdgeNode read (what it asks of the rotation is asked
  // then, in the same turn of the loop).
  for (bool known = !parts.session; !known && std::chrono::steady_clock::now() < deadline;
       std::this_thread::yield())
    on_loop([&] { known = session->spec_known(); });
  if (parts.then) parts.then(*daemon);
  IssuerRotation* rotation = parts.local ? nullptr : &issuers;
  bool done = false;
  while (!done && std::chrono::steady_clock::now() < deadline) {
    on_loop([&] {
      if (parts.local) rotation = daemon->issuer();
      done = rotation && rotation->last() && !rotation->busy();
    });
    std::this_thread::yield();
  }
  ASSERT_TRUE(done);
  on_loop([&] { check(*rotation); });
}

// spec.linkerd.rotate through the daemon, its write's answer lost (the
// connection dropped after k3s took it): the pass that finds the write
// answers the token, the daemon saves it, and after a restart the same
// token asks for nothing more.
TEST_F(IssuerRotationTest, TheDaemonSavesATokenAFoundWriteAnsweredAndAsksNothingAfterARestart) {
  install(issuer(-1h, 8760h));  // valid: only the token's force replaces it
  json::object node = edge_node("node-a", {"192.0.2.0/24"});
  node["spec"].as_object()["linkerd"] = json::object{{"rotate", "token-1"}};
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace), node);
  secret_put_gets(Misbehaviour::kDropMidStream);
  TempDir state;
  const StateDir state_dir(state.path());
  auto saved = [&] {
    boost::system::error_code ec;
    return state_dir.read("linkerd-rotate-token", ec, 4096).value_or("");
  };
  FirstPass parts{.state = &state_dir, .session = true};
  parts.meanwhile = [&](Daemon&) {
    const auto deadline = std::chrono::steady_clock::now() + kDeadline;
    std::string token;
    while (token.empty() && std::chrono::steady_clock::now() < deadline) {
      on_loop([&] { token = saved(); });
      std::this_thread::yield();
    }
  };
  after_the_daemons_first_pass(parts, [&](IssuerRotation&) {
    EXPECT_EQ(saved(), "token-1");
    EXPECT_EQ(log_.with_event("issuer-rotation-requested").size(), 1u);
    EXPECT_EQ(log_.with_event("issuer-write-found").size(), 1u)
        << "the token was answered by the found write";
  });
  EXPECT_EQ(secret_writes(), 1u);

  // A restart: the session reads the same token, already acted on.
  parts.meanwhile = {};
  after_the_daemons_first_pass(parts, [&](IssuerRotation& issuers) {
    EXPECT_EQ(log_.with_event("issuer-rotation-requested").size(), 1u)
        << "the saved token was asked for again";
    EXPECT_FALSE(issuers.last()->rotated);
  });
  EXPECT_EQ(secret_writes(), 1u);
}

// A spec.linkerd.rotate the session reads before k3s's kubeconfig is
// usable (k3s still starting at boot): no issuer to ask yet, so the token is
// asked for when the daemon's LocalCluster makes one, not left until the
// session's next change.
TEST_F(IssuerRotationTest, ATokenReadBeforeK3sIsUsableIsAskedForWhenTheIssuerComes) {
  // Expired (a node back after a long power-off): the start's pass and the
  // token's are one pass, one write, not two.
  install(issuer(-8760h, -1h));
  json::object node = edge_node("node-a", {"192.0.2.0/24"});
  node["spec"].as_object()["linkerd"] = json::object{{"rotate", "token-1"}};
  server_->create(kube::collection_path(kube::kEdgeNodes, kNamespace), node);
  TempDir state;
  const StateDir state_dir(state.path());
  FirstPass parts{.state = &state_dir, .session = true, .local = true};
  parts.then = [&](Daemon& daemon) {
    on_loop([&] { EXPECT_EQ(daemon.issuer(), nullptr) << "k3s's kubeconfig is not there yet"; });
    write_k3s_yaml(dir_);
    on_loop([&] { daemon.reload(); });  // or the tick's next try, or the file's watch
  };
  after_the_daemons_first_pass(parts, [&](IssuerRotation& issuers) {
    EXPECT_EQ(log_.with_event("issuer-rotation-requested").size(), 1u);
    EXPECT_TRUE(issuers.last()->rotated) << issuers.last()->error;
    EXPECT_EQ(issuers.last()->token, "token-1");
    boost::system::error_code ec;
    EXPECT_EQ(state_dir.read("linkerd-rotate-token", ec, 4096).value_or(""), "token-1");
  });
  EXPECT_EQ(secret_writes(), 1u);
}

// The EdgeNode named an issuer in the cloud before a restart: until the new
// session has read it again, the node does not mint, even with the issuer
// expired and the anchor key at hand.
TEST_F(IssuerRotationTest, AfterARestartTheDaemonDoesNotMintWhileACloudIssuerWasNamed) {
  restart_with_a_saved_cloud_issuer(true, [&](IssuerRotation& issuers) {
    EXPECT_FALSE(issuers.last()->rotated);
    EXPECT_TRUE(issuers.last()->from_cloud);
    EXPECT_EQ(issuers.cloud().refs.issuer_secret, "linkerd-issuer-edge");
    EXPECT_EQ(issuers.last()->before.verdict.reason, "IssuerExpired");
    EXPECT_TRUE(log_.with_event("issuer-rotated").empty());
  });
  EXPECT_EQ(secret_writes(), 0u);
}

// With the control plane taken out of the configuration, nothing will ever
// read the EdgeNode again: the saved name is ignored and the node mints.
TEST_F(IssuerRotationTest, WithoutAControlPlaneASavedCloudIssuerIsIgnored) {
  restart_with_a_saved_cloud_issuer(false, [&](IssuerRotation& issuers) {
    EXPECT_TRUE(issuers.last()->rotated) << issuers.last()->error;
    EXPECT_FALSE(issuers.last()->from_cloud);
    EXPECT_TRUE(issuers.cloud().refs.issuer_secret.empty());
    EXPECT_EQ(log_.with_event("issuer-rotated").size(), 1u);
  });
  EXPECT_EQ(secret_writes(), 1u);
}

TEST_F(IssuerRotationTest, AForcedRequestCarriesItsTokenToTheResult) {
  install(issuer(-1h, 8760h));  // valid: only a force replaces it
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  std::vector<RotationResult> results;
  keeper.on_result([&](const RotationResult& r) { results.push_back(r); });
  boost::asio::post(io_, [&] { keeper.request(RotationTrigger::kToken, true, "token-1"); });
  ensure_thread();
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  bool finished = false;
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    std::promise<bool> probe;
    boost::asio::post(io_, [&] { probe.set_value(!keeper.busy() && keeper.last().has_value()); });
    finished = probe.get_future().get();
  }
  ASSERT_TRUE(finished);
  std::promise<void> read;
  boost::asio::post(io_, [&] {
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].rotated) << results[0].error;
    EXPECT_EQ(results[0].token, "token-1");
    EXPECT_EQ(results[0].trigger, RotationTrigger::kToken);
    read.set_value();
  });
  read.get_future().wait();
}

// k3s acts on the Secret's PUT and its answer is lost (the connection cut
// mid-body; a stall past the client's deadline is the same to tetherd):
// the pass fails, and the pass it
// queues finds the issuer it wrote in the Secret. With no IssuerUpdated
// from linkerd's identity controller, the controller is restarted, as after
// a write that was answered; nothing is minted twice.
TEST_F(IssuerRotationTest, AWriteWhoseAnswerWasLostIsFoundAndItsReloadMadeSure) {
  install(issuer(-8760h, -1h));
  secret_put_gets(Misbehaviour::kDropMidStream);
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  ASSERT_NO_FATAL_FAILURE(
      request_until_logged(keeper, "identity-restarted", RotationTrigger::kPeriodic));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_FALSE(results_[0].rotated);
    EXPECT_TRUE(results_[0].answer_lost);
    EXPECT_NE(results_[0].error.find("cannot write Secret"), std::string::npos)
        << results_[0].error;
    EXPECT_FALSE(results_[1].rotated) << "the issuer written stands";
    ASSERT_TRUE(results_[1].found_written);
    EXPECT_EQ(results_[1].before.verdict.reason, "IssuerValid");
    EXPECT_EQ(log_.with_event("issuer-write-found").size(), 1u);
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
  EXPECT_GT(stored_issuer_info().not_after, clock_.wall() + config_.issuer_validity - 1min)
      << "the Secret holds the issuer the lost answer was for";
  EXPECT_TRUE(server_->get(kIdentity)
                  ->at("spec")
                  .at("template")
                  .at("metadata")
                  .at("annotations")
                  .as_object()
                  .contains("kubectl.kubernetes.io/restartedAt"));
}

// A failed write that did not take (a 500 before k3s acted): the pass
// after it finds the old issuer, mints again and writes.
TEST_F(IssuerRotationTest, AWriteThatFailedBeforeTakingIsMadeAgain) {
  install(issuer(-8760h, -1h));
  secret_put_gets(Misbehaviour::kStatus500);
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  ASSERT_NO_FATAL_FAILURE(
      request_until_logged(keeper, "identity-restarted", RotationTrigger::kPeriodic));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_TRUE(results_[0].answer_lost) << "a 5xx may have taken";
    EXPECT_TRUE(results_[1].rotated) << results_[1].error;
    EXPECT_FALSE(results_[1].found_written);
    EXPECT_TRUE(log_.with_event("issuer-write-found").empty());
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 2u);
}

// A spec.linkerd.rotate whose write's answer was lost: the pass that finds
// the issuer in the Secret answers the token (the daemon saves it, and
// mints nothing more for it).
TEST_F(IssuerRotationTest, AFoundWriteAnswersTheTokenItsPassCarried) {
  install(issuer(-1h, 8760h));  // valid: only the token's force replaces it
  secret_put_gets(Misbehaviour::kDropMidStream);
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  ASSERT_NO_FATAL_FAILURE(request_until_logged(keeper, "identity-restarted",
                                               RotationTrigger::kToken, /*force=*/true, "token-1"));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_TRUE(results_[0].answer_lost);
    EXPECT_EQ(results_[0].token, "token-1");
    ASSERT_TRUE(results_[1].found_written);
    EXPECT_EQ(results_[1].token, "token-1") << "the found write answers the token";
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
}

// A spec.linkerd.rotate that comes while a write for an earlier one lost
// its answer: the pass it makes finds that write in the Secret, and the
// find answers the earlier token, not this one (the issuer was minted
// before it was asked). It is asked again at once, not at the next hourly
// pass: a second issuer is minted for it.
TEST_F(IssuerRotationTest, ATokenAskedAfterALostWriteGetsAnIssuerOfItsOwn) {
  install(issuer(-1h, 8760h));  // valid: only the tokens' force replaces it
  secret_put_gets(Misbehaviour::kDropMidStream);
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  on_loop([&] {
    keeper.on_result([&](const RotationResult& r) {
      results_.push_back(r);
      // The second token comes as the first one's write has lost its answer.
      if (results_.size() == 1) keeper.request(RotationTrigger::kToken, true, "token-2");
    });
    keeper.request(RotationTrigger::kToken, /*force=*/true, "token-1");
  });
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  for (bool done = false; !done; std::this_thread::yield()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "no second issuer: the find answered token-2";
    on_loop([&] { done = log_.with_event("identity-restarted").size() >= 2; });
  }
  on_loop([&] {
    ASSERT_EQ(results_.size(), 3u);
    EXPECT_TRUE(results_[0].answer_lost);
    EXPECT_EQ(results_[0].token, "token-1");
    ASSERT_TRUE(results_[1].found_written);
    EXPECT_FALSE(results_[1].rotated);
    EXPECT_EQ(results_[1].found_token, "token-1") << "the find answers the write's own token";
    EXPECT_EQ(results_[1].token, "token-2");
    EXPECT_TRUE(results_[2].rotated) << results_[2].error;
    EXPECT_EQ(results_[2].token, "token-2");
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 2u);
}

// k3s down (a restart, a stall): the hourly pass that finds the issuer
// expired cannot read it. The pass runs again within minutes (a backoff
// here of milliseconds), not at the next hourly one, and renews it as
// soon as k3s answers.
TEST_F(IssuerRotationTest, APassK3sDidNotAnswerIsTriedAgainSoon) {
  install(issuer(-8760h, -1h));
  server_->misbehave({.what = Misbehaviour::kStatus503,
                      .times = 3,
                      .path_contains = "/secrets/" + std::string(kIssuerSecretName)});
  IssuerRotation& keeper = rotation_retrying_fast();
  ASSERT_NO_FATAL_FAILURE(
      request_until_logged(keeper, "identity-restarted", RotationTrigger::kPeriodic));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 4u);
    EXPECT_EQ(keeper.retries(), 0u) << "answered: no retry armed";
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_TRUE(results_[i].k3s_unanswered) << i;
      EXPECT_FALSE(results_[i].rotated) << i;
      EXPECT_EQ(results_[i].before.verdict.issuer, IssuerState::kUnreadable) << i;
    }
    EXPECT_EQ(results_[0].trigger, RotationTrigger::kPeriodic);
    EXPECT_EQ(results_[3].trigger, RotationTrigger::kRetry);
    EXPECT_TRUE(results_[3].rotated) << results_[3].error;
    EXPECT_FALSE(results_[3].k3s_unanswered);
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
}

// k3s's API priority and fairness answers 429 with a Retry-After: the
// retry waits at least that long (the backoff alone is milliseconds
// here), then renews the issuer.
TEST_F(IssuerRotationTest, TheRetryWaitsAsLongAsK3sRetryAfterAsked) {
  install(issuer(-8760h, -1h));
  server_->misbehave({.what = Misbehaviour::kStatus429,
                      .path_contains = "/secrets/" + std::string(kIssuerSecretName),
                      .retry_after_seconds = 1});
  IssuerRotation& keeper = rotation_retrying_fast();
  std::vector<std::chrono::steady_clock::time_point> heard;  // each result's arrival
  on_loop([&] {
    keeper.on_result([&](const RotationResult& r) {
      results_.push_back(r);
      heard.push_back(std::chrono::steady_clock::now());
    });
    keeper.request(RotationTrigger::kPeriodic);
  });
  until_logged("identity-restarted");
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_TRUE(results_[0].k3s_unanswered);
    ASSERT_TRUE(results_[0].k3s_retry_after);
    EXPECT_EQ(*results_[0].k3s_retry_after, 1s);
    EXPECT_EQ(results_[1].trigger, RotationTrigger::kRetry);
    EXPECT_TRUE(results_[1].rotated) << results_[1].error;
    EXPECT_FALSE(results_[1].k3s_retry_after);
    keeper.stop();
  });
  ASSERT_EQ(heard.size(), 2u);
  // The retry's pass began no sooner than asked; its result came after.
  EXPECT_GE(heard[1] - heard[0], 1s) << "the retry did not wait for the Retry-After";
  EXPECT_EQ(secret_writes(), 1u);
}

// The restart k3s did not answer (a 503 on the PATCH): the retry's pass
// finds the issuer written in the Secret, as a lost write's, and makes sure
// of the reload again; it mints nothing more.
TEST_F(IssuerRotationTest, ARestartK3sDidNotAnswerIsMadeByTheRetry) {
  install(issuer(-8760h, -1h));
  server_->misbehave({.what = Misbehaviour::kStatus503,
                      .path_contains = "/deployments/" + std::string(kIdentityDeploymentName),
                      .method = "PATCH"});
  IssuerRotation& keeper = rotation_retrying_fast();
  ASSERT_NO_FATAL_FAILURE(
      request_until_logged(keeper, "identity-restarted", RotationTrigger::kPeriodic));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_TRUE(results_[0].rotated) << results_[0].error;
    EXPECT_EQ(results_[1].trigger, RotationTrigger::kRetry);
    EXPECT_FALSE(results_[1].rotated) << "the issuer written stands";
    EXPECT_TRUE(results_[1].found_written);
    EXPECT_EQ(log_.with_event("identity-restart-failed").size(), 1u);
    EXPECT_EQ(log_.with_event("identity-restarted").size(), 1u);
    EXPECT_EQ(keeper.retries(), 0u);
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
  std::size_t patches = 0;
  for (const auto& r : server_->requests())
    patches += r.method == "PATCH";
  EXPECT_EQ(patches, 2u) << "the one k3s did not answer, then the one it did";
}

// The same for a spec.linkerd.rotate on a valid issuer: the write is
// remembered again with its token, so the retry's pass that finds it
// answers that token, and mints no second issuer for it (review helper-47:
// remembered without it, the find was taken for an earlier token's and
// the token asked again).
TEST_F(IssuerRotationTest, ARestartK3sDidNotAnswerForATokenMintsNoSecondIssuer) {
  install(issuer(-1h, 8760h));  // valid: only the token's force replaces it
  server_->misbehave({.what = Misbehaviour::kStatus503,
                      .path_contains = "/deployments/" + std::string(kIdentityDeploymentName),
                      .method = "PATCH"});
  IssuerRotation& keeper = rotation_retrying_fast();
  ASSERT_NO_FATAL_FAILURE(request_until_logged(keeper, "identity-restarted",
                                               RotationTrigger::kToken, /*force=*/true, "token-1"));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_TRUE(results_[0].rotated) << results_[0].error;
    EXPECT_EQ(results_[0].token, "token-1");
    ASSERT_TRUE(results_[1].found_written);
    EXPECT_EQ(results_[1].found_token, "token-1") << "the find answers the write's own token";
    EXPECT_EQ(results_[1].token, "token-1");
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
}

// Stopped while the Deployment is read (k3s slow to answer, its answer
// dripping for seconds): the stop cuts the read, the pass ends at once
// (within the test's deadline, not the drip's), and nothing is restarted.
TEST_F(IssuerRotationTest, AStopWhileTheDeploymentIsReadEndsThePassAndRestartsNothing) {
  install(issuer(-8760h, -1h));
  server_->misbehave({.what = Misbehaviour::kDrip,
                      .path_contains = "/deployments/" + std::string(kIdentityDeploymentName),
                      .method = "GET",
                      .drip_interval = 50ms});
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  on_loop([&] {
    keeper.on_result([this](const RotationResult& r) { results_.push_back(r); });
    keeper.request(RotationTrigger::kPeriodic);
  });
  const auto deployment_read = [&] {
    for (const auto& r : server_->requests())
      if (r.method == "GET" && r.target.find("/deployments/") != std::string::npos) return true;
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  while (!deployment_read()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the Deployment was not read";
    server_->wait_for_requests(server_->requests().size() + 1, 100ms);
  }
  // Its answer drips for longer than the deadline (50 ms a byte): stopped
  // meanwhile.
  on_loop([&] { keeper.stop(); });
  for (bool busy = true; busy; std::this_thread::yield()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the pass did not end";
    on_loop([&] { busy = keeper.busy(); });
  }
  on_loop([&] {
    ASSERT_EQ(results_.size(), 1u);
    EXPECT_TRUE(results_[0].rotated) << results_[0].error;
  });
  for (const auto& r : server_->requests())
    EXPECT_NE(r.method, "PATCH") << "restarted after the stop: " << r.target;
  EXPECT_TRUE(log_.with_event("identity-restarted").empty());
  on_loop([&] {
    EXPECT_EQ(keeper.retries(), 0u) << "no retry armed after a stop";
    EXPECT_TRUE(log_.with_event("identity-restart-failed").empty());
  });
}

// A pass k3s refused for its own reasons (no Secret: a 404) is not tried
// again before the caller's next one: it would not get better.
TEST_F(IssuerRotationTest, APassK3sAnsweredIsNotRetried) {
  server_->create(kube::collection_path(kube::kConfigMaps, "linkerd"),
                  json::object{{"metadata", {{"name", kTrustRootsConfigMapName}}},
                               {"data", {{kTrustRootsKey, anchor_.cert_pem}}}});
  IssuerRotation& keeper = rotation();
  std::vector<RotationResult> results;
  on_loop([&] {
    keeper.on_result([&](const RotationResult& r) {
      results.push_back(r);
      EXPECT_EQ(keeper.retries(), 0u) << "no retry armed";
    });
    keeper.request(RotationTrigger::kPeriodic);
  });
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  for (bool done = false; !done; std::this_thread::yield()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    on_loop([&] { done = !results.empty() && !keeper.busy(); });
  }
  on_loop([&] {
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].before.verdict.issuer, IssuerState::kUnreadable);
    EXPECT_FALSE(results[0].k3s_unanswered) << "a 404 is an answer";
    EXPECT_EQ(keeper.retries(), 0u);
    keeper.stop();
  });
}

TEST_F(IssuerRotationTest, AForceIsRefusedWhenTheClockLooksWrong) {
  install(issuer(1h, 8760h));  // not valid for another hour: the node's clock is behind
  const RotationResult r = run(rotation().run(RotationTrigger::kManual, /*force=*/true));
  EXPECT_FALSE(r.rotated);
  EXPECT_EQ(r.before.verdict.issuer, IssuerState::kNotYetValid);
  EXPECT_NE(r.error.find("refused to force a rotation"), std::string::npos) << r.error;
  EXPECT_EQ(secret_writes(), 0u);
}

// The control plane's clock (its Date, the daemon's ClockWitness) settles
// what the node alone cannot: a not-yet-valid issuer under a clock it
// vouches for was minted by a clock that was ahead, and is replaced; and no
// issuer is minted, forced or not, by a clock it contradicts.
TEST_F(IssuerRotationTest, TheControlPlanesClockTellsAnIssuerFromTheFutureFromAClockBehind) {
  install(issuer(50 * 24h, 50 * 24h + 8760h));  // a reboot 50 days ahead minted it
  std::optional<Duration> error;
  IssuerRotation& r = rotation();
  r.use_clock_witness([&] { return error; });
  RotationResult result = run(r.run(RotationTrigger::kStart));
  EXPECT_FALSE(result.rotated) << "no witness: it could be this clock that is behind";
  error = 3s;  // within the tolerance: the node's clock is right
  result = run(r.run(RotationTrigger::kClockWitness));
  EXPECT_TRUE(result.rotated) << result.error;
  EXPECT_EQ(result.before.verdict.issuer, IssuerState::kNotYetValid);
  EXPECT_NE(result.before.verdict.message.find("as does the control plane's"), std::string::npos)
      << result.before.verdict.message;
  EXPECT_LE(stored_issuer_info().not_before, clock_.wall());
}

TEST_F(IssuerRotationTest, NoIssuerIsMintedByAClockTheControlPlaneContradicts) {
  install(issuer(-8760h, -1h));              // expired
  std::optional<Duration> error = -2 * 24h;  // and this clock two days behind
  IssuerRotation& r = rotation();
  r.use_clock_witness([&] { return error; });
  RotationResult result = run(r.run(RotationTrigger::kPeriodic));
  EXPECT_FALSE(result.rotated);
  EXPECT_NE(result.error.find("48h behind the control plane's"), std::string::npos) << result.error;
  result = run(r.run(RotationTrigger::kManual, /*force=*/true));
  EXPECT_FALSE(result.rotated) << "a force does not beat the witness";
  error = std::nullopt;  // nothing heard for a day: the node's clock is all there is
  result = run(r.run(RotationTrigger::kPeriodic));
  EXPECT_TRUE(result.rotated) << result.error;
}

// A node without a battery-backed clock boots with the time saved at
// shutdown: a mint in the window where the control plane is about to speak
// waits for its word. Here the word is "two days behind": nothing minted.
TEST_F(IssuerRotationTest, AMintAtTheStartWaitsForTheControlPlanesFirstWord) {
  install(issuer(-8760h, -1h));   // expired, by this clock
  std::optional<Duration> error;  // nothing heard yet
  IssuerRotation& r = rotation();
  r.use_clock_witness([&] { return error; }, 30s);
  auto pass = start(r.run(RotationTrigger::kStart));
  ASSERT_NO_FATAL_FAILURE(until_logged("issuer-waits-for-clock"));
  EXPECT_EQ(secret_writes(), 0u);
  on_loop([&] { error = -2 * 24h; });
  const RotationResult result = finish(pass);
  EXPECT_FALSE(result.rotated);
  EXPECT_NE(result.error.find("48h behind the control plane's"), std::string::npos) << result.error;
  EXPECT_EQ(secret_writes(), 0u);
  // The window is spent once the witness has spoken: with its word gone
  // again (a day unheard), a mint does not wait, though the (fake) clock
  // is still inside the 30 s.
  on_loop([&] { error.reset(); });
  EXPECT_TRUE(run(r.run(RotationTrigger::kManual, /*force=*/true)).rotated);
  on_loop([&] { EXPECT_EQ(log_.with_event("issuer-waits-for-clock").size(), 1u); });
}

// A forced pass (spec.linkerd.rotate) that waited gives way to the pass
// the Date asks for, which takes over its force and token: one mint, the
// token answered, one result reported.
TEST_F(IssuerRotationTest, AForcedMintThatWaitedForTheClockStillMints) {
  install(issuer(-1h, 8760h));    // valid: only a force replaces it
  std::optional<Duration> error;  // nothing heard yet
  IssuerRotation& r = rotation({.confirm_timeout = 0s});
  std::vector<RotationResult> results;
  on_loop([&] {
    r.use_clock_witness([&] { return error; }, 30s);
    r.on_result([&](const RotationResult& result) { results.push_back(result); });
    r.request(RotationTrigger::kToken, /*force=*/true, "token-1");
  });
  ASSERT_NO_FATAL_FAILURE(until_logged("issuer-waits-for-clock"));
  on_loop([&] {
    error = Duration::zero();  // the Date: the clocks agree
    r.request(RotationTrigger::kClockWitness);
  });
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  for (bool done = false; !done; std::this_thread::yield()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    on_loop([&] { done = !results.empty() && !r.busy(); });
  }
  on_loop([&] {
    ASSERT_EQ(results.size(), 1u) << "the pass that gave way is not reported";
    EXPECT_TRUE(results[0].rotated) << results[0].error;
    EXPECT_EQ(results[0].token, "token-1");
    EXPECT_EQ(results[0].trigger, RotationTrigger::kToken);
    r.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
}

// The control plane silent through the window (out of reach at boot): the
// node's clock is all there is, as before.
TEST_F(IssuerRotationTest, AMintAtTheStartGoesOnWhenTheControlPlaneStaysSilent) {
  install(issuer(-8760h, -1h));
  IssuerRotation& r = rotation();
  r.use_clock_witness([] { return std::optional<Duration>(); }, 30s);
  auto pass = start(r.run(RotationTrigger::kStart));
  ASSERT_NO_FATAL_FAILURE(until_logged("issuer-waits-for-clock"));
  on_loop([&] {
    EXPECT_NE(log_.with_event("issuer-waits-for-clock")[0].message.find("waiting up to 30s"),
              std::string::npos);
    clock_.advance(31s);
  });
  const RotationResult result = finish(pass);
  EXPECT_TRUE(result.rotated) << result.error;
  EXPECT_EQ(secret_writes(), 1u);
}

// The daemon with a control plane configured: its start's mint waits for
// the session's first Date, and the Date heard decides.
TEST_F(IssuerRotationTest, TheDaemonsStartWithAControlPlaneMintsOnlyOnItsWord) {
  install(issuer(-8760h, -1h));
  after_the_daemons_first_pass(
      {.cloud = true,
       .meanwhile =
           [&](Daemon& daemon) {
             ASSERT_NO_FATAL_FAILURE(until_logged("issuer-waits-for-clock"));
             EXPECT_EQ(secret_writes(), 0u);
             on_loop([&] { daemon.heard_control_plane_date(http_date(clock_.wall())); });
           }},
      [&](IssuerRotation& issuers) {
        // The start's pass left the mint to the pass the Date asked for.
        const auto rotated = log_.with_event("issuer-rotated");
        ASSERT_EQ(rotated.size(), 1u);
        EXPECT_EQ(rotated[0].fields.at("TRIGGER"), "control-plane-clock");
        EXPECT_EQ(issuers.last()->trigger, RotationTrigger::kClockWitness);
        EXPECT_TRUE(issuers.last()->rotated);
      });
  EXPECT_EQ(secret_writes(), 1u);
}

// The session hears the control plane's Date; the daemon judges the node's
// clock by it, says when it disagrees (once, and when it agrees again),
// and runs a pass on each change.
TEST_F(IssuerRotationTest, TheDaemonRotatesAnIssuerFromTheFutureOnTheControlPlanesWord) {
  auto date = http_date;
  the_daemon_rotates_after(
      [&](Daemon& daemon) {
        on_loop([&] {
          daemon.heard_control_plane_date(date(clock_.wall() - 3 * 24h));
          daemon.heard_control_plane_date(date(clock_.wall() - 3 * 24h));
          daemon.heard_control_plane_date("not a date");
        });
        ASSERT_EQ(log_.with_event("clock-disagrees").size(), 1u) << "said once";
        EXPECT_EQ(log_.with_event("clock-disagrees")[0].fields.at("ERROR_SECONDS"), "259200");
        // Its pass: the issuer is not yet valid, and the control plane
        // does not vouch for this clock, so it is left.
        const auto deadline = std::chrono::steady_clock::now() + kDeadline;
        for (bool done = false; !done;) {
          ASSERT_LT(std::chrono::steady_clock::now(), deadline);
          on_loop([&] {
            done = !rotation_->busy() && rotation_->last() &&
                   rotation_->last()->trigger == RotationTrigger::kClockWitness;
          });
          std::this_thread::yield();
        }
        on_loop([&] {
          EXPECT_FALSE(rotation_->last()->rotated);
          EXPECT_EQ(rotation_->last()->before.verdict.issuer, IssuerState::kNotYetValid);
        });
        on_loop([&] { daemon.heard_control_plane_date(date(clock_.wall())); });
        EXPECT_EQ(log_.with_event("clock-agrees").size(), 1u);
      },
      RotationTrigger::kClockWitness, {50 * 24h, 50 * 24h + 8760h}, IssuerState::kNotYetValid);
}

// The control plane's word back after more than a day without it (a long
// sleep) runs a pass, though the node's clock agreed before as it does now:
// the pass without it left an issuer from the future alone ("is the clock
// right?"), and the word shows that issuer to be from a clock that was
// ahead. (Issue 23's issuer year, seed 256: an hour more without a valid
// issuer, until the hourly pass.)
TEST_F(IssuerRotationTest, TheControlPlanesWordBackAfterADayRunsAPassForAnIssuerFromTheFuture) {
  the_daemon_rotates_after(
      [&](Daemon& daemon) {
        auto pass_over = [&](RotationTrigger trigger) {
          const auto deadline = std::chrono::steady_clock::now() + kDeadline;
          for (bool done = false; !done;) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << to_string(trigger);
            on_loop([&] {
              done =
                  !rotation_->busy() && rotation_->last() && rotation_->last()->trigger == trigger;
            });
            std::this_thread::yield();
          }
        };
        // The clock agrees: a pass, which finds the issuer valid.
        on_loop([&] { daemon.heard_control_plane_date(http_date(clock_.wall())); });
        ASSERT_NO_FATAL_FAILURE(pass_over(RotationTrigger::kClockWitness));
        // Written by a clock 50 days ahead; then more than a day without
        // the control plane's word, and a pass leaves it.
        replace_issuer(issuer(50 * 24h, 50 * 24h + 8760h));
        // (Time passes, not a sleep: the resume's own pass would come.)
        on_loop([&] {
          clock_.advance(25h);
          rotation_->request(RotationTrigger::kPeriodic);
        });
        ASSERT_NO_FATAL_FAILURE(pass_over(RotationTrigger::kPeriodic));
        on_loop([&] {
          EXPECT_FALSE(rotation_->last()->rotated);
          EXPECT_EQ(rotation_->last()->before.verdict.issuer, IssuerState::kNotYetValid);
        });
        // The word again, the clock still agreeing.
        on_loop([&] { daemon.heard_control_plane_date(http_date(clock_.wall())); });
      },
      RotationTrigger::kClockWitness, {-1h, 8760h}, IssuerState::kNotYetValid);
  EXPECT_TRUE(log_.with_event("clock-disagrees").empty());
}

// The operator brought a new root after the old one ended (the old one
// still in the bundle, the key file the new root's): the pass mints under
// the new root, and what it wrote is judged for itself. CertificatesValid
// said TrustAnchorExpired (the old root's end, the judgement before the
// mint) until the next hourly pass.
TEST_F(IssuerRotationTest, AnIssuerMintedUnderANewRootIsJudgedForItself) {
  const PemPair old_root = make_linkerd_anchor({clock_.wall() - 2 * 8760h, clock_.wall() - 1h});
  install(make_linkerd_issuer(old_root, {clock_.wall() - 8760h, clock_.wall() - 2h}));
  json::object roots = *server_->get(kRoots);
  roots["data"].as_object()[kTrustRootsKey] = old_root.cert_pem + anchor_.cert_pem;
  server_->update(kRoots, std::move(roots));

  NodeConditions board(clock_, 1);
  after_the_daemons_first_pass({.conditions = &board}, [&](IssuerRotation& issuers) {
    const RotationResult& r = *issuers.last();
    ASSERT_TRUE(r.rotated) << r.error << " / " << r.before.verdict.message;
    EXPECT_EQ(r.before.verdict.reason, "TrustAnchorExpired");
    ASSERT_TRUE(r.after.has_value());
    EXPECT_TRUE(r.after->valid) << r.after->message;
    EXPECT_EQ(r.after->anchor, AnchorState::kValid);
    const Condition* c = board.find(condition_type::kCertificatesValid);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->status, ConditionStatus::kTrue) << c->message;
    EXPECT_EQ(c->reason, "IssuerRotated") << c->message;
  });
  if (HasFatalFailure()) return;
  auto stored = x509::parse_certificates(stored_issuer().cert_pem, "stored");
  auto roots_now = x509::parse_certificates(anchor_.cert_pem, "new root");
  ASSERT_TRUE(stored && roots_now);
  EXPECT_TRUE(x509::verify_chain(stored->front(), *roots_now).has_value());
}

TEST_F(IssuerRotationTest, AFailureThatRepeatsIsLoggedOnce) {
  install(issuer(-8760h, -1h));
  config_.trust_anchor_key.clear();
  IssuerRotation& keeper = rotation();
  std::size_t passes = 0;
  keeper.on_result([&](const RotationResult&) { ++passes; });
  auto hourly = [&] {
    std::promise<void> queued;
    boost::asio::post(io_, [&] {
      keeper.request(RotationTrigger::kPeriodic);
      queued.set_value();
    });
    ensure_thread();
    queued.get_future().wait();
  };
  auto passes_seen = [&] {
    std::promise<std::size_t> n;
    boost::asio::post(io_, [&] { n.set_value(keeper.busy() ? 0 : passes); });
    return n.get_future().get();
  };
  const auto deadline = std::chrono::steady_clock::now() + kDeadline;
  hourly();
  while (passes_seen() < 1 && std::chrono::steady_clock::now() < deadline) {
  }
  hourly();
  while (passes_seen() < 2 && std::chrono::steady_clock::now() < deadline) {
  }
  ASSERT_EQ(passes_seen(), 2u);
  std::promise<void> read;
  boost::asio::post(io_, [&] {
    EXPECT_EQ(log_.with_event("issuer-rotation-failed").size(), 1u);
    read.set_value();
  });
  read.get_future().wait();
}

// --- from the cloud: spec.linkerd.issuerSecretRef and trustBundleRef -----

// The cloud's objects as the tether hands them over: a kubernetes.io/tls
// Secret that cert-manager keeps, a ConfigMap that trust-manager writes.
json::object cloud_secret(const PemPair& issuer, const PemPair& anchor) {
  return json::object{
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata", {{"name", "linkerd-issuer-edge"}, {"namespace", "tetherd-system"}}},
      {"type", "kubernetes.io/tls"},
      {"data",
       {{"tls.crt", encode_base64(issuer.cert_pem)},
        {"tls.key", encode_base64(issuer.key_pem)},
        {"ca.crt", encode_base64(anchor.cert_pem)}}}};
}

json::object cloud_bundle(const std::string& pem) {
  return json::object{{"apiVersion", "v1"},
                      {"kind", "ConfigMap"},
                      {"metadata", {{"name", "linkerd-trust"}, {"namespace", "tetherd-system"}}},
                      {"data", {{"ca-bundle.crt", pem}}}};
}

kube::FollowedObject seen(std::optional<json::object> object) {
  kube::FollowedObject f;
  f.object = std::move(object);
  f.read = true;
  return f;
}

class CloudIssuerTest : public IssuerRotationTest {
 protected:
  CloudLinkerd cloud(std::optional<json::object> secret, std::optional<json::object> bundle = {},
                     bool finishing = false) const {
    CloudLinkerd c;
    c.namespace_ = "tetherd-system";
    if (secret) {
      c.refs.issuer_secret = "linkerd-issuer-edge";
      c.issuer = seen(std::move(*secret));
    }
    if (bundle) {
      c.refs.bundle_config_map = "linkerd-trust";
      c.bundle = seen(std::move(*bundle));
    }
    c.refs.rotation_finishing = finishing;
    return c;
  }

  RotationResult pass(CloudLinkerd c, RotationTrigger trigger = RotationTrigger::kCloud) {
    // The test runs the pass itself, to read its result.
    if (!rotation_) rotation();
    rotation_->use_cloud(std::move(c), /*pass=*/false);
    return run(rotation_->run(trigger));
  }

  std::string stored_bundle() const {
    return std::string((*server_->get(kRoots))["data"].as_object()[kTrustRootsKey].as_string());
  }

  std::size_t bundle_writes() const {
    std::size_t n = 0;
    for (const auto& r : server_->requests())
      if (r.method == "PUT" && r.target.find("/configmaps/") != std::string::npos) ++n;
    return n;
  }

  PemPair new_anchor_ = make_linkerd_anchor({clock_.wall() - 1h, clock_.wall() + 10 * 8760h});
};

TEST_F(CloudIssuerTest, TheCloudsIssuerIsCheckedAndWrittenAndNothingIsMinted) {
  install(issuer(-8760h + 100h, 100h));  // valid, not due
  const PemPair supplied = issuer(-1h, 2160h);
  const RotationResult r = pass(cloud(cloud_secret(supplied, anchor_)));
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.from_cloud);
  ASSERT_TRUE(r.rotated);
  EXPECT_EQ(stored_issuer().cert_pem, supplied.cert_pem);
  EXPECT_EQ(stored_issuer().key_pem, supplied.key_pem);
  EXPECT_EQ(stored_issuer().ca_pem, anchor_.cert_pem);
  EXPECT_EQ(secret_writes(), 1u);
  // Taken already: the next pass writes nothing.
  const RotationResult again = pass(cloud(cloud_secret(supplied, anchor_)));
  EXPECT_FALSE(again.rotated);
  EXPECT_TRUE(again.error.empty()) << again.error;
  EXPECT_EQ(secret_writes(), 1u);
}

// The cloud's issuer written over the local one, and the write's answer
// lost (the connection dropped after k3s took it): the pass right after
// finds the cloud's issuer in the Secret, writes nothing more, and makes
// sure the identity controller loaded it.
TEST_F(CloudIssuerTest, TheCloudsIssuerWhoseWriteLostItsAnswerIsFoundAndItsReloadMadeSure) {
  install(issuer(-8760h + 100h, 100h));
  const PemPair supplied = issuer(-1h, 2160h);
  secret_put_gets(Misbehaviour::kDropMidStream);
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  on_loop([&] { keeper.use_cloud(cloud(cloud_secret(supplied, anchor_)), /*pass=*/false); });
  ASSERT_NO_FATAL_FAILURE(
      request_until_logged(keeper, "identity-restarted", RotationTrigger::kCloud));
  on_loop([&] {
    ASSERT_EQ(results_.size(), 2u);
    EXPECT_TRUE(results_[0].from_cloud);
    EXPECT_FALSE(results_[0].rotated);
    EXPECT_TRUE(results_[0].answer_lost);
    EXPECT_TRUE(results_[1].from_cloud);
    EXPECT_FALSE(results_[1].rotated) << "the cloud's issuer is in the Secret already";
    ASSERT_TRUE(results_[1].found_written);
    EXPECT_TRUE(results_[1].error.empty()) << results_[1].error;
    EXPECT_EQ(log_.with_event("issuer-write-found").size(), 1u);
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 1u);
  EXPECT_EQ(stored_issuer().cert_pem, supplied.cert_pem);
}

// A lost write found by a pass that then writes again, and loses that
// answer too (the cloud supplied another issuer meanwhile): the pass's own
// write supersedes the found one. Nothing is confirmed for the first
// issuer, which the Secret no longer holds; the next pass finds the
// second and makes sure of its reload, once.
TEST_F(CloudIssuerTest, AFoundWriteIsSupersededByThePassesOwnLostOne) {
  install(issuer(-8760h + 100h, 100h));
  const PemPair first = issuer(-1h, 2160h);
  const PemPair second = issuer(-30min, 2160h);
  server_->misbehave({.what = Misbehaviour::kDropMidStream,
                      .times = 2,
                      .path_contains = "/secrets/" + std::string(kIssuerSecretName),
                      .method = "PUT"});
  IssuerRotation& keeper = rotation({.confirm_timeout = 0s});
  on_loop([&] {
    keeper.use_cloud(cloud(cloud_secret(first, anchor_)), /*pass=*/false);
    keeper.on_result([&](const RotationResult& r) {
      results_.push_back(r);
      // The cloud's next issuer, before the pass that looks for the lost write.
      if (results_.size() == 1)
        keeper.use_cloud(cloud(cloud_secret(second, anchor_)), /*pass=*/false);
      // That pass lost its own answer: the next trigger looks for it.
      if (results_.size() == 2) keeper.request(RotationTrigger::kPeriodic);
    });
    keeper.request(RotationTrigger::kCloud);
  });
  until_logged("identity-restarted");
  on_loop([&] {
    ASSERT_EQ(results_.size(), 3u);
    EXPECT_TRUE(results_[0].answer_lost);
    EXPECT_TRUE(results_[1].answer_lost);
    // It read the first issuer (the lost write, which took) ...
    ASSERT_TRUE(results_[1].before.issuer);
    EXPECT_LT(results_[1].before.issuer->not_before, clock_.wall() - 45min);
    // ... and wrote the second over it.
    EXPECT_FALSE(results_[1].found_written) << "the found write was superseded by the pass's own";
    EXPECT_FALSE(results_[2].rotated);
    ASSERT_TRUE(results_[2].found_written);
    EXPECT_EQ(log_.with_event("issuer-write-found").size(), 1u);
    EXPECT_EQ(log_.with_event("identity-restarted").size(), 1u);
    keeper.stop();
  });
  EXPECT_EQ(secret_writes(), 2u);
  EXPECT_EQ(stored_issuer().cert_pem, second.cert_pem);
}

// Found by review: a pass made before the cloud's Secret was read says
// nothing and takes nothing; it must not count as having taken what the
// cloud has (a spec.linkerd.rotate would be recorded as answered).
TEST_F(CloudIssuerTest, APassBeforeTheCloudAnsweredSaysItHadNothingToTake) {
  install(issuer(-8760h + 100h, 100h));
  CloudLinkerd unread = cloud(cloud_secret(issuer(-1h, 2160h), anchor_));
  unread.issuer = {};  // named by the EdgeNode, not read yet
  const RotationResult before = pass(unread);
  EXPECT_TRUE(before.error.empty()) << before.error;
  EXPECT_FALSE(before.rotated);
  EXPECT_FALSE(before.cloud_read);
  const RotationResult after = pass(cloud(cloud_secret(issuer(-1h, 2160h), anchor_)));
  EXPECT_TRUE(after.cloud_read);
  EXPECT_TRUE(after.rotated) << after.error;
}

TEST_F(CloudIssuerTest, WithACloudIssuerNamedTheAnchorKeyIsNeverUsed) {
  // Expired after a long sleep, the anchor key on disk: a standalone node
  // would mint; this one waits for the cloud's, and says so.
  install(issuer(-8760h, -1h));
  CloudLinkerd c = cloud(cloud_secret(issuer(-1h, 2160h), anchor_));
  c.issuer = seen(std::nullopt);
  RotationResult r = pass(c, RotationTrigger::kResume);
  EXPECT_FALSE(r.rotated);
  EXPECT_NE(r.error.find("Secret tetherd-system/linkerd-issuer-edge in the control plane does "
                         "not exist"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(r.before.verdict.reason, "IssuerExpired");
  // Not read yet (the tether's first list under way): nothing minted,
  // nothing to say; the answer runs another pass.
  c.issuer.read = false;
  r = pass(c, RotationTrigger::kResume);
  EXPECT_FALSE(r.rotated);
  EXPECT_EQ(r.error, "");
  c.issuer.error = "403 Forbidden: secrets \"linkerd-issuer-edge\" is forbidden";
  r = pass(c, RotationTrigger::kManual);
  EXPECT_NE(r.error.find("cannot read Secret tetherd-system/linkerd-issuer-edge in the control "
                         "plane: 403 Forbidden"),
            std::string::npos)
      << r.error;
  EXPECT_EQ(secret_writes(), 0u);
}

TEST_F(CloudIssuerTest, ACloudIssuerThatDoesNotChainOrIsNotAnIssuerChangesNothing) {
  const PemPair current = issuer(-1h, 8760h);
  install(current);
  const Validity valid{clock_.wall() - 1h, clock_.wall() + 2160h};
  const std::vector<std::pair<PemPair, std::string>> cases = {
      {make_linkerd_issuer(new_anchor_, valid),
       "does not chain to a root of the local trust bundle"},
      {make_linkerd_issuer(anchor_, {clock_.wall() - 48h, clock_.wall() - 1h}), "expired"},
      {new_anchor_, "is not named CN=identity.linkerd.cluster.local"},
  };
  for (const auto& [supplied, why] : cases) {
    const RotationResult r = pass(cloud(cloud_secret(supplied, anchor_)));
    EXPECT_FALSE(r.rotated);
    EXPECT_NE(r.error.find(why), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("Secret tetherd-system/linkerd-issuer-edge in the control plane"),
              std::string::npos)
        << r.error;
  }
  EXPECT_EQ(secret_writes(), 0u);
  EXPECT_EQ(stored_issuer().cert_pem, current.cert_pem);
}

TEST_F(CloudIssuerTest, LinkerdsThreeStepAnchorRotationDrivenFromTheCloud) {
  const PemPair old_issuer = issuer(-1h, 8760h);
  install(old_issuer);
  const std::string old_and_new = anchor_.cert_pem + new_anchor_.cert_pem;
  // Step 1: the bundle holds both anchors; the issuer stays.
  RotationResult r = pass(cloud(cloud_secret(old_issuer, anchor_), cloud_bundle(old_and_new)));
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.bundle_written);
  EXPECT_FALSE(r.rotated);
  EXPECT_EQ(stored_bundle(), old_and_new);
  EXPECT_EQ(r.bundle_sha256, trust_bundle_sha256(old_and_new));
  // Step 2: a new issuer under the new anchor.
  const PemPair new_issuer =
      make_linkerd_issuer(new_anchor_, {clock_.wall() - 1h, clock_.wall() + 8760h});
  r = pass(cloud(cloud_secret(new_issuer, new_anchor_), cloud_bundle(old_and_new)));
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.bundle_written);
  EXPECT_TRUE(r.rotated);
  EXPECT_EQ(stored_issuer().cert_pem, new_issuer.cert_pem);
  EXPECT_EQ(stored_issuer().ca_pem, new_anchor_.cert_pem);
  // Step 3: the new anchor alone; it keeps the issuer in force.
  r = pass(cloud(cloud_secret(new_issuer, new_anchor_), cloud_bundle(new_anchor_.cert_pem)));
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.bundle_written);
  EXPECT_EQ(stored_bundle(), new_anchor_.cert_pem);
  EXPECT_EQ(r.before.verdict.reason, "IssuerValid");
  EXPECT_EQ(bundle_writes(), 2u);
  EXPECT_EQ(secret_writes(), 1u);
}

// Found by review: with only the bundle from the cloud, a write of it k3s
// did not answer (a 429 with its Retry-After) was dropped from the pass's
// result when the local half was answered: no retry was armed, and the
// bundle waited for the next hourly pass.
TEST_F(CloudIssuerTest, ABundleWriteK3sDidNotAnswerArmsTheRetryWithItsRetryAfter) {
  install(issuer(-1h, 8760h));
  server_->misbehave({.what = Misbehaviour::kStatus429,
                      .path_contains = "/configmaps/",
                      .method = "PUT",
                      .retry_after_seconds = 7});
  const RotationResult r =
      pass(cloud(std::nullopt, cloud_bundle(anchor_.cert_pem + new_anchor_.cert_pem)));
  EXPECT_FALSE(r.bundle_written);
  EXPECT_TRUE(r.k3s_unanswered) << "the bundle's half was not answered";
  ASSERT_TRUE(r.k3s_retry_after);
  EXPECT_EQ(*r.k3s_retry_after, 7s);
  EXPECT_NE(r.error.find("cannot write ConfigMap"), std::string::npos) << r.error;
}

TEST_F(CloudIssuerTest, ABundleWithoutTheRootOfTheIssuerInForceWaitsForTheLastStep) {
  const PemPair current = issuer(-1h, 8760h);
  install(current);
  // The bundle alone from the cloud, without the root the issuer chains to.
  CloudLinkerd c = cloud(std::nullopt, cloud_bundle(new_anchor_.cert_pem));
  RotationResult r = pass(c);
  EXPECT_FALSE(r.bundle_written);
  EXPECT_NE(r.error.find("does not hold the root of the issuer in force"), std::string::npos)
      << r.error;
  EXPECT_NE(r.error.find("set trustBundleRef.rotationFinishing"), std::string::npos) << r.error;
  EXPECT_EQ(stored_bundle(), anchor_.cert_pem);
  EXPECT_EQ(bundle_writes(), 0u);
  // The spec says the rotation is finishing, but the node's anchor key is
  // the old anchor's: its next issuer would not chain to the new bundle.
  r = pass(cloud(std::nullopt, cloud_bundle(new_anchor_.cert_pem), /*finishing=*/true));
  EXPECT_FALSE(r.bundle_written);
  EXPECT_NE(r.error.find("with linkerd.trustAnchorKey the new anchor's key"), std::string::npos)
      << r.error;
  // With the new anchor's key: taken, and the issuer minted under it.
  write_anchor_key(new_anchor_.key_pem, 0600);
  r = pass(cloud(std::nullopt, cloud_bundle(new_anchor_.cert_pem), /*finishing=*/true));
  EXPECT_TRUE(r.bundle_written) << r.error;
  EXPECT_EQ(stored_bundle(), new_anchor_.cert_pem);
  EXPECT_TRUE(r.rotated) << r.error << " | " << r.before.verdict.message;
  EXPECT_EQ(stored_issuer().ca_pem, new_anchor_.cert_pem);
}

TEST_F(CloudIssuerTest, ABadBundleChangesNothingAndSaysWhy) {
  install(issuer(-1h, 8760h));
  const PemPair workload = make_linkerd_workload(
      issuer(-1h, 8760h), {clock_.wall() - 1h, clock_.wall() + 24h}, "web.default");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "holds no certificate"},
      {anchor_.cert_pem + anchor_.key_pem, "is not a certificate"},
      {anchor_.cert_pem + workload.cert_pem, "is not a CA"},
  };
  for (const auto& [text, why] : cases) {
    const RotationResult r = pass(cloud(std::nullopt, cloud_bundle(text)));
    EXPECT_FALSE(r.bundle_written);
    EXPECT_NE(r.error.find(why), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("ConfigMap tetherd-system/linkerd-trust in the control plane"),
              std::string::npos)
        << r.error;
  }
  json::object no_key = cloud_bundle(anchor_.cert_pem);
  no_key["data"].as_object().erase("ca-bundle.crt");
  const RotationResult r = pass(cloud(std::nullopt, no_key));
  EXPECT_NE(r.error.find("has no ca-bundle.crt"), std::string::npos) << r.error;
  EXPECT_EQ(bundle_writes(), 0u);
  EXPECT_EQ(stored_bundle(), anchor_.cert_pem);
}

// The issuer is checked against the bundle in k3s (what the running
// proxies trust): one under a root only the incoming bundle holds waits
// for the pass after the bundle is written.
TEST_F(CloudIssuerTest, AnIssuerUnderANewRootWaitsForItsBundleToBeWritten) {
  install(issuer(-1h, 8760h));
  const PemPair new_issuer =
      make_linkerd_issuer(new_anchor_, {clock_.wall() - 1h, clock_.wall() + 8760h});
  const std::string both = anchor_.cert_pem + new_anchor_.cert_pem;
  const CloudLinkerd c = cloud(cloud_secret(new_issuer, new_anchor_), cloud_bundle(both));
  RotationResult r = pass(c);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.bundle_written);
  EXPECT_FALSE(r.rotated);
  EXPECT_TRUE(r.pass_again);
  EXPECT_EQ(stored_bundle(), both);
  r = pass(c);
  ASSERT_TRUE(r.error.empty()) << r.error;
  EXPECT_TRUE(r.rotated);
  EXPECT_EQ(stored_issuer().cert_pem, new_issuer.cert_pem);
}

// Renewed by cert-manager a day before the end of 48 h: a cloud issuer is
// judged on its own lifetime, not on rotateBefore (720 h by default).
TEST_F(CloudIssuerTest, AShortLivedCloudIssuerIsValid) {
  config_.rotate_before = 720h;
  const PemPair supplied = issuer(-1h, 47h);
  install(supplied);
  RotationResult r = pass(cloud(cloud_secret(supplied, anchor_)));
  EXPECT_TRUE(r.error.empty()) << r.error;
  EXPECT_FALSE(r.rotated);
  EXPECT_EQ(r.before.verdict.reason, "IssuerValid") << r.before.verdict.message;
  EXPECT_TRUE(r.before.verdict.valid);
  // With a third of its life left and cert-manager silent: said.
  clock_.advance(34h);
  r = pass(cloud(cloud_secret(supplied, anchor_)));
  EXPECT_EQ(r.before.verdict.reason, "IssuerExpiringSoon") << r.before.verdict.message;
  EXPECT_EQ(secret_writes(), 0u);
}

struct BadInput {
  const char* name;
  std::function<void(IssuerRotationTest&)> arrange;
  const char* expected;  // in the verdict's message or the result's error
};

void PrintTo(const BadInput& b, std::ostream* os) {
  *os << b.name;
}

class IssuerRotationRefusal : public IssuerRotationTest,
                              public testing::WithParamInterface<BadInput> {};

TEST_P(IssuerRotationRefusal, IsAClearErrorAndNothingIsWritten) {
  GetParam().arrange(*this);
  const auto before = server_->get(kSecret);
  const RotationResult r = run(rotation().run(RotationTrigger::kStart));
  EXPECT_FALSE(r.rotated);
  EXPECT_FALSE(r.before.verdict.valid);
  const std::string said =
      r.error + " | " + r.before.verdict.reason + ": " + r.before.verdict.message;
  EXPECT_NE(said.find(GetParam().expected), std::string::npos) << said;
  EXPECT_EQ(secret_writes(), 0u);
  EXPECT_EQ(server_->get(kSecret), before);
}

INSTANTIATE_TEST_SUITE_P(
    Inputs, IssuerRotationRefusal,
    testing::Values(
        BadInput{"bad_pem_in_the_secret",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   json::object s = *t.server_->get(kSecret);
                   s["data"].as_object()["tls.crt"] = encode_base64(
                       "-----BEGIN CERTIFICATE-----\nnot base64\n"
                       "-----END CERTIFICATE-----\n");
                   t.server_->update(kSecret, s);
                 },
                 "Secret linkerd-identity-issuer tls.crt"},
        BadInput{"a_missing_key_in_the_secret",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   json::object s = *t.server_->get(kSecret);
                   s["data"].as_object().erase("tls.key");
                   t.server_->update(kSecret, s);
                 },
                 "has no tls.key"},
        BadInput{"no_trust_roots",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   t.server_->remove(kRoots);
                 },
                 "cannot read ConfigMap linkerd/linkerd-identity-trust-roots"},
        BadInput{"anchor_key_readable_by_others",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h), IssuerLayout::kTls, 0644);
                 },
                 "chmod 600"},
        BadInput{"anchor_key_of_the_wrong_type",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   const PemPair rsa = make_linkerd_anchor(
                       {t.clock_.wall() - 1h, t.clock_.wall() + 8760h}, {.key = KeyKind::kRsa2048});
                   t.write_anchor_key(rsa.key_pem, 0600);
                 },
                 "is the key of no certificate in ConfigMap linkerd/linkerd-identity-trust-roots"},
        BadInput{"anchor_key_that_does_not_match_the_anchor",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   const PemPair other =
                       make_linkerd_anchor({t.clock_.wall() - 1h, t.clock_.wall() + 8760h});
                   t.write_anchor_key(other.key_pem, 0600);
                 },
                 "proxies would not trust an issuer it signed"},
        BadInput{"anchor_key_that_is_not_pem",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   t.write_anchor_key("hello\n", 0600);
                 },
                 "anchor.key: block 1 is not a private key"},
        BadInput{"no_anchor_key_configured",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   t.config_.trust_anchor_key.clear();
                 },
                 "no linkerd.trustAnchorKey is configured"},
        BadInput{"an_expired_trust_anchor",
                 [](IssuerRotationTest& t) {
                   t.anchor_ = make_linkerd_anchor({t.clock_.wall() - 8760h, t.clock_.wall() - 1h});
                   t.install(make_linkerd_issuer(t.anchor_,
                                                 {t.clock_.wall() - 8760h, t.clock_.wall() - 2h}));
                 },
                 "TrustAnchorExpired"},
        BadInput{"a_secret_that_cert_manager_manages",
                 [](IssuerRotationTest& t) {
                   t.install(t.issuer(-8760h, -1h));
                   json::object s = *t.server_->get(kSecret);
                   s["metadata"].as_object()["annotations"] = json::object{
                       {"cert-manager.io/certificate-name", "linkerd-identity-issuer"}};
                   t.server_->update(kSecret, s);
                 },
                 "managed by cert-manager"}),
    [](const testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tetherd::test
