// Watch and list+watch (the Reflector) against the test API server: the
// wire format, resourceVersions, bookmarks, 410 and relists, and every way
// a watch can go wrong ending in a clear error and a retry.
#include "agent/adapters/system_clock.h"
#include "agent/kube/reflector.h"
#include "test/integration/kube/kube_fixture.h"

namespace tetherd::test {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using kube::ApiError;
using kube::ErrorKind;
using kube::KubeClient;
using kube::WatchEvent;
using kube::WatchEventType;
using std::chrono::milliseconds;

const std::string kEdgeNodes = kube::collection_path(kube::kEdgeNodes, kNamespace);
const std::string kNodeA = kube::object_path(kube::kEdgeNodes, kNamespace, "node-a");
const std::string kMine = "metadata.name=node-a";

std::string note_of(const WatchEvent& e) {
  std::string note = std::string(kube::to_string(e.type)) + " " + e.resource_version();
  const auto* spec = e.object.if_contains("spec");
  if (spec != nullptr) note += " " + json::serialize(spec->at("firewall").at("allowedSources"));
  return note;
}

class KubeWatchTest : public KubeTest {
 protected:
  KubeWatchTest() { server_->create(kEdgeNodes, edge_node("node-a", {"192.0.2.0/24"})); }
};

TEST_F(KubeWatchTest, EventsBookmarksAndAServerSideEnd) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto listed = run(kube.list(kEdgeNodes, kMine));
  ASSERT_TRUE(listed) << describe(listed.error());

  Mailbox mail;
  kube::WatchOptions options;
  options.resource_version = listed->resource_version;
  options.field_selector = kMine;
  auto watching =
      start(kube.watch(kEdgeNodes, options, [&](const WatchEvent& e) { mail.push(note_of(e)); }));
  ASSERT_TRUE(server_->wait_for_watches(1, kDeadline));

  auto node = *server_->get(kNodeA);
  node["spec"] = {{"firewall", {{"allowedSources", {"198.51.100.0/24"}}}}};
  const auto rv_modified = rv_of(server_->update(kNodeA, node));
  EXPECT_NE(mail.wait_for_prefix("MODIFIED " + rv_modified), "");
  EXPECT_NE(mail.wait_for_prefix("MODIFIED " + rv_modified + " [\"198.51.100.0/24\"]"), "");

  // A change to another node is not ours to see (fieldSelector).
  server_->create(kEdgeNodes, edge_node("node-b", {"203.0.113.0/24"}));
  server_->bookmark_now();
  const auto bookmark = mail.wait_for_prefix("BOOKMARK");
  EXPECT_EQ(bookmark, "BOOKMARK " + std::to_string(server_->resource_version()));

  server_->end_watches();
  auto end = finish(watching);
  ASSERT_TRUE(end) << describe(end.error());
  EXPECT_FALSE(end->expired);
  EXPECT_EQ(end->events, 2u);
  EXPECT_EQ(end->resource_version, std::to_string(server_->resource_version()))
      << "resumes after the bookmark, not before the unrelated change";
  EXPECT_EQ(mail.notes().size(), 2u);
  const auto watch = server_->requests().back();
  EXPECT_NE(watch.target.find("allowWatchBookmarks=true"), std::string::npos);
  EXPECT_NE(watch.target.find("timeoutSeconds=300"), std::string::npos);
  EXPECT_NE(watch.target.find("fieldSelector=metadata.name%3Dnode-a"), std::string::npos);
}

// A renewed certificate under a running watch: new connections present it,
// the watch goes on over its own; credentials that do not load, or are for
// another server, change nothing.
TEST_F(KubeWatchTest, NewCredentialsTakeNewConnectionsWhileTheWatchGoesOn) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto listed = run(kube.list(kEdgeNodes, kMine));
  ASSERT_TRUE(listed) << describe(listed.error());
  const std::string first = server_->requests().back().serial;
  ASSERT_FALSE(first.empty());

  Mailbox mail;
  kube::WatchOptions options;
  options.resource_version = listed->resource_version;
  options.field_selector = kMine;
  auto watching =
      start(kube.watch(kEdgeNodes, options, [&](const WatchEvent& e) { mail.push(note_of(e)); }));
  ASSERT_TRUE(server_->wait_for_watches(1, kDeadline));

  // Swapped on the client's thread, where its connections live.
  auto use = [&](const Kubeconfig& k) {
    return run([&]() -> boost::asio::awaitable<std::string> {
      auto r = http->use_credentials(k);
      co_return r ? std::string() : r.error().message;
    }());
  };
  const Kubeconfig renewed = kubeconfig();
  ASSERT_EQ(use(renewed), "");
  ASSERT_TRUE(run(kube.get(kNodeA)));
  const std::string second = server_->requests().back().serial;
  EXPECT_NE(second, first) << "the next request presents the new certificate";
  EXPECT_EQ(server_->requests().back().user, "tetherd:node-a");

  auto node = *server_->get(kNodeA);
  node["spec"] = {{"firewall", {{"allowedSources", {"198.51.100.0/24"}}}}};
  const auto rv = rv_of(server_->update(kNodeA, node));
  EXPECT_NE(mail.wait_for_prefix("MODIFIED " + rv), "") << "the watch went on";
  EXPECT_EQ(server_->watches_started(), 1u);

  Kubeconfig mismatched = renewed;
  mismatched.client_key_pem = kubeconfig().client_key_pem;
  EXPECT_NE(use(mismatched).find("the client key does not match the client certificate"),
            std::string::npos);
  Kubeconfig elsewhere = kubeconfig();
  elsewhere.server = "https://198.51.100.7:6443";
  EXPECT_NE(use(elsewhere).find("is for https://198.51.100.7:6443, not " + server_->url()),
            std::string::npos);
  ASSERT_TRUE(run(kube.get(kNodeA)));
  EXPECT_EQ(server_->requests().back().serial, second) << "refused credentials changed nothing";

  server_->end_watches();
  EXPECT_TRUE(finish(watching));
}

TEST_F(KubeWatchTest, ATooOldResourceVersionSaysExpiredBothWays) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  auto listed = run(kube.list(kEdgeNodes, kMine));
  ASSERT_TRUE(listed);
  server_->patch_status(kNodeA, {{"note", "a change"}});
  server_->compact();

  kube::WatchOptions options;
  options.resource_version = listed->resource_version;
  options.field_selector = kMine;
  // kube-apiserver's way: 200, then an ERROR event with a 410 Status.
  auto end = run(kube.watch(kEdgeNodes, options, [](const WatchEvent&) {}));
  ASSERT_TRUE(end) << describe(end.error());
  EXPECT_TRUE(end->expired);
  // A proxy's (or an older server's) way: HTTP 410.
  server_->misbehave({.what = Misbehaviour::kGoneHttp});
  auto gone = run(kube.watch(kEdgeNodes, options, [](const WatchEvent&) {}));
  ASSERT_TRUE(gone) << describe(gone.error());
  EXPECT_TRUE(gone->expired);
}

TEST_F(KubeWatchTest, AnErrorEventOtherThan410EndsTheWatchWithItsStatus) {
  auto http = client(kubeconfig("tetherd:node-a", nullptr, {}));  // RBAC grants it nothing
  KubeClient kube(*http);
  kube::WatchOptions options;
  options.field_selector = "metadata.name=node-a";  // not allowed: 403 before the stream
  auto end = run(kube.watch(kEdgeNodes, options, [](const WatchEvent&) {}));
  ASSERT_FALSE(end);
  EXPECT_EQ(end.error().code, 403u);
}

// Records what the Reflector tells its user, for the test's thread.
class RecordingHandler : public kube::ReflectorHandler {
 public:
  explicit RecordingHandler(Mailbox& mail) : mail_(mail) {}
  void on_list(const std::vector<json::object>& items, const std::string& rv) override {
    std::string note = "LIST " + rv;
    for (const auto& item : items)
      note += " " + json::serialize(item.at("spec").at("firewall").at("allowedSources"));
    mail_.push(note);
  }
  void on_event(const WatchEvent& e) override { mail_.push(note_of(e)); }
  void on_error(const ApiError& e, Duration) override {
    mail_.push("ERROR " + std::string(kube::to_string(e.kind)) + " " + describe(e));
  }

 private:
  Mailbox& mail_;
};

// A sleep the test's thread ends: the Reflector's backoff, held open while
// the test changes the world behind its back.
class Gate {
 public:
  explicit Gate(asio::io_context& io) : timer_(io, asio::steady_timer::time_point::max()) {}
  kube::RetryContext context() {
    kube::RetryContext r;
    r.sleep = [this](Duration) -> asio::awaitable<void> {
      if (!open_) co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    };
    r.random = [] { return 0.5; };
    r.now = [] { return std::chrono::steady_clock::now().time_since_epoch(); };
    return r;
  }
  void open() {
    open_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool open_ = false;
};

class ReflectorTest : public KubeWatchTest {
 protected:
  SystemClock clock_;
  void stop(kube::Reflector& reflector, kube::HttpsClient& http, std::future<bool>& running) {
    on_client_thread([&] {
      reflector.stop();
      http.disconnect_all();
    });
    EXPECT_TRUE(finish(running));
  }
  asio::awaitable<bool> run_reflector(kube::Reflector& reflector) {
    co_await reflector.run();
    co_return true;
  }
};

TEST_F(ReflectorTest, AChangeMadeWhileDisconnectedArrivesThroughARelist) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox mail;
  RecordingHandler handler(mail);
  Gate gate(io_);
  kube::Reflector reflector(kube, kEdgeNodes, kMine, {}, gate.context(), handler);
  auto running = start(run_reflector(reflector));
  EXPECT_NE(mail.wait_for_prefix("LIST "), "");
  ASSERT_TRUE(server_->wait_for_watches(1, kDeadline));

  // The connection dies; while the Reflector waits to retry, the spec
  // changes and the server forgets the history the Reflector would resume
  // from.
  server_->drop_connections();
  EXPECT_NE(mail.wait_for_prefix("ERROR transport"), "");
  auto node = *server_->get(kNodeA);
  node["spec"] = {{"firewall", {{"allowedSources", {"203.0.113.0/24"}}}}};
  const auto rv = rv_of(server_->update(kNodeA, node));
  server_->compact();
  on_client_thread([&] { gate.open(); });

  EXPECT_EQ(mail.wait_for_prefix("LIST " + rv), "LIST " + rv + " [\"203.0.113.0/24\"]");
  ASSERT_TRUE(server_->wait_for_watches(1, kDeadline)) << "watching again after the relist";
  stop(reflector, *http, running);
  EXPECT_EQ(reflector.stats().relists_after_gone, 1u);
  EXPECT_EQ(reflector.resource_version(), rv);
}

TEST_F(ReflectorTest, AServerThatAnswersEveryWatchWith410GetsBackoffNotABusyLoop) {
  server_->misbehave({.what = Misbehaviour::kGoneHttp, .times = 3});
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox mail;
  RecordingHandler handler(mail);
  RecordedDelays delays;
  kube::Reflector reflector(kube, kEdgeNodes, kMine, {}, delays.context(), handler);
  auto running = start(run_reflector(reflector));
  ASSERT_TRUE(server_->wait_for_watch_starts(1, kDeadline));  // the fourth watch, the first 200
  stop(reflector, *http, running);
  EXPECT_EQ(reflector.stats().relists_after_gone, 3u);
  EXPECT_EQ(reflector.stats().lists, 4u);
  // A wait before each relist that follows a fresh list's 410, growing.
  EXPECT_EQ(*delays.delays, (std::vector<Duration>{milliseconds(500), std::chrono::seconds(1),
                                                   std::chrono::seconds(2)}));
}

TEST_F(ReflectorTest, ResumeAndStopCutALongBackoffShort) {
  // 429 with Retry-After: 600: the Reflector would wait ten minutes, on a
  // real timer (the daemon's RetryContext).
  server_->misbehave({.what = Misbehaviour::kStatus429, .retry_after_seconds = 600});
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox mail;
  RecordingHandler handler(mail);
  kube::Reflector reflector(kube, kEdgeNodes, kMine, {}, kube::default_retry_context(clock_),
                            handler);
  auto running = start(run_reflector(reflector));
  EXPECT_NE(mail.wait_for_prefix("ERROR http HTTP 429"), "");
  on_client_thread([&] { reflector.resumed(); });  // a resume: try now
  EXPECT_NE(mail.wait_for_prefix("LIST "), "");

  // Again, and this time stop while it waits.
  server_->misbehave({.what = Misbehaviour::kStatus429, .retry_after_seconds = 600});
  server_->drop_connections();  // the watch fails; after a short backoff the next one gets 429
  ASSERT_TRUE(mail.wait_for_count("ERROR http HTTP 429", 2));
  stop(reflector, *http, running);  // within the deadline, not ten minutes
}

// A session stopped in the turn that started it (the daemon retires a
// session it has just made when the renewal says its certificate has
// expired): its run, which begins after, ends at once and asks nothing.
// Issue 23's node simulation found it: such a session listed on its closed
// client and retried for ever, and the daemon waited for it at stop.
TEST_F(ReflectorTest, AStopBeforeItRunsEndsTheRunAtOnce) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox mail;
  RecordingHandler handler(mail);
  kube::Reflector reflector(kube, kEdgeNodes, kMine, {}, kube::default_retry_context(clock_),
                            handler);
  on_client_thread([&] { reflector.stop(); });
  auto running = start(run_reflector(reflector));
  EXPECT_TRUE(finish(running));
  EXPECT_EQ(reflector.stats().lists, 0u);
  EXPECT_EQ(reflector.stats().watches, 0u);
}

// Two Reflectors on one client (the followers of spec.linkerd's objects
// share theirs): one stopped without closing the client's connections, so
// as not to cut the other's watch, still ends its own watch at once, not
// at its timeoutSeconds (or never, behind a proxy that ignores it). The
// other's watch goes on.
TEST_F(ReflectorTest, AStopOnASharedClientCutsItsOwnWatchAlone) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox mail_a;
  Mailbox mail_b;
  RecordingHandler handler_a(mail_a);
  RecordingHandler handler_b(mail_b);
  kube::Reflector a(kube, kEdgeNodes, kMine, {}, kube::default_retry_context(clock_), handler_a);
  kube::Reflector b(kube, kEdgeNodes, kMine, {}, kube::default_retry_context(clock_), handler_b);
  auto running_a = start(run_reflector(a));
  auto running_b = start(run_reflector(b));
  ASSERT_TRUE(server_->wait_for_watches(2, kDeadline));
  on_client_thread([&] { a.stop(/*close_connections=*/false); });
  EXPECT_TRUE(finish(running_a)) << "its run ends with its watch";
  ASSERT_TRUE(server_->wait_for_watches_at_most(1, kDeadline))
      << server_->open_watches() << " watches open: the stopped one's is not cut";
  auto node = *server_->get(kNodeA);
  node["spec"] = {{"firewall", {{"allowedSources", {"198.51.100.0/24"}}}}};
  const auto rv = rv_of(server_->update(kNodeA, node));
  EXPECT_NE(mail_b.wait_for_prefix("MODIFIED " + rv), "") << "the other's watch goes on";
  stop(b, *http, running_b);
  EXPECT_EQ(b.stats().watches, 1u) << "not cut, not watched anew";
}

struct WatchFault {
  const char* name;
  MisbehaviourSpec spec;
  ErrorKind kind;
  const char* message;
};

// Test names and failure messages show the case by name, not its bytes.
void PrintTo(const WatchFault& c, std::ostream* os) {
  *os << c.name;
}

class ReflectorFaultTest : public ReflectorTest, public testing::WithParamInterface<WatchFault> {};

TEST_P(ReflectorFaultTest, EndsInAClearErrorAndTheWatchResumes) {
  kube::ClientLimits limits;
  limits.read_timeout = milliseconds(400);
  auto http = client(kubeconfig(), limits);
  KubeClient kube(*http, 64 << 10);
  Mailbox mail;
  RecordingHandler handler(mail);
  RecordedDelays delays;
  kube::WatchOptions watch;
  // A real watch waits minutes (longer than the server's bookmark period);
  // here a stalled one is given up on quickly, and the others have time.
  watch.idle = GetParam().spec.what == Misbehaviour::kStallWatch ? milliseconds(400)
                                                                 : std::chrono::seconds(10);
  kube::Reflector reflector(kube, kEdgeNodes, kMine, watch, delays.context(), handler);
  auto spec = GetParam().spec;
  spec.watch_only = true;
  server_->misbehave(spec);
  auto running = start(run_reflector(reflector));

  const auto error = mail.wait_for_prefix("ERROR ");
  EXPECT_NE(error.find(std::string(kube::to_string(GetParam().kind)) + " "), std::string::npos)
      << error;
  EXPECT_NE(error.find(GetParam().message), std::string::npos) << error;
  // The retry: a watch that resumes from the last resourceVersion, so it
  // sees a change made at any time after the fault.
  server_->patch_status(kNodeA, {{"note", "after the fault"}});
  EXPECT_NE(mail.wait_for_prefix("MODIFIED " + std::to_string(server_->resource_version())), "");
  server_->release_stalls();
  stop(reflector, *http, running);
  EXPECT_EQ(reflector.stats().failures, 1u) << testing::PrintToString(mail.notes());
}

INSTANTIATE_TEST_SUITE_P(
    Faults, ReflectorFaultTest,
    testing::Values(
        WatchFault{"dropped_mid_stream",
                   {.what = Misbehaviour::kDropMidStream, .after_events = 0},
                   ErrorKind::kTransport,
                   "connection closed mid-stream"},
        WatchFault{"stalled",
                   {.what = Misbehaviour::kStallWatch},
                   ErrorKind::kTimeout,
                   "idle: nothing complete for 400ms"},
        WatchFault{"dripping",
                   {.what = Misbehaviour::kDrip, .drip_interval = milliseconds(30)},
                   ErrorKind::kTimeout,
                   "no answer within 400ms"},
        WatchFault{"oversized_event",
                   {.what = Misbehaviour::kOversizedBody, .oversize_bytes = 1 << 20},
                   ErrorKind::kTooLarge,
                   "watch event larger than 65536 bytes"},
        WatchFault{"malformed_event",
                   {.what = Misbehaviour::kMalformedJson},
                   ErrorKind::kDecode,
                   "watch stream is not JSON"},
        WatchFault{"status_500", {.what = Misbehaviour::kStatus500}, ErrorKind::kHttp, "HTTP 500"},
        WatchFault{"status_429", {.what = Misbehaviour::kStatus429}, ErrorKind::kHttp, "HTTP 429"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tetherd::test
