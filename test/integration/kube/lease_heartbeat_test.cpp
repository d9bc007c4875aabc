// The Lease heartbeat against the test API server over real mTLS, with the
// RBAC tetherd ships: what it sends, how few requests that takes, and what
// an operator reads when the control plane fails and comes back.
#include "agent/kube/lease_heartbeat.h"

#include <regex>

#include <boost/asio/this_coro.hpp>

#include "agent/core/duration.h"
#include "agent/core/kube_time.h"
#include "test/integration/kube/kube_fixture.h"
#include "test/support/fake_clock.h"
#include "test/support/recording_log.h"

namespace tetherd::test {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using kube::ApiResult;
using kube::KubeClient;
using kube::LeaseHeartbeat;
using kube::LeaseRenewal;
using std::chrono::seconds;
using Calls = std::vector<std::string>;

const std::string kLeases = kube::collection_path(kube::kLeases, kNamespace);
const std::string kLeaseA = kube::object_path(kube::kLeases, kNamespace, "tetherd-node-a");

class LeaseHeartbeatTest : public KubeTest {
 protected:
  LeaseSpec spec(const std::string& node = "node-a") const {
    return {lease_name(node), kNamespace, node, seconds(40)};
  }

  // "METHOD status" of each request for a Lease, from the `from`th on.
  Calls lease_calls(std::size_t from = 0) const {
    Calls calls;
    const auto requests = server_->requests();
    for (std::size_t i = from; i < requests.size(); ++i) {
      if (requests[i].target.find("/leases") == std::string::npos) continue;
      calls.push_back(requests[i].method + " " + std::to_string(requests[i].status));
    }
    return calls;
  }

  json::object stored_spec(const std::string& path = kLeaseA) const {
    auto lease = server_->get(path);
    if (!lease) throw std::runtime_error("no Lease at " + path);
    return lease->at("spec").as_object();
  }

  json::object lease_held_by(const std::string& holder, int transitions) const {
    return {{"apiVersion", "coordination.k8s.io/v1"},
            {"kind", "Lease"},
            {"metadata", {{"name", "tetherd-node-a"}, {"namespace", kNamespace}}},
            {"spec",
             {{"holderIdentity", holder},
              {"leaseDurationSeconds", 40},
              {"acquireTime", "2025-01-01T00:00:00.000000Z"},
              {"renewTime", "2025-01-01T00:00:00.000000Z"},
              {"leaseTransitions", transitions}}}};
  }

  FakeClock clock_;
  RecordingLog log_;
};

TEST_F(LeaseHeartbeatTest, AMissingLeaseIsCreatedAsKubeletWould) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  clock_.advance(std::chrono::microseconds(123456));
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10));

  auto renewed = run(heartbeat.renew());
  ASSERT_TRUE(renewed) << describe(renewed.error());
  EXPECT_TRUE(renewed->created);
  EXPECT_EQ(renewed->renew_time, clock_.wall());
  EXPECT_EQ(lease_calls(), (Calls{"GET 404", "POST 201"}));

  const auto lease = server_->get(kLeaseA);
  ASSERT_TRUE(lease);
  EXPECT_EQ(renewed->resource_version, rv_of(*lease));
  const auto& s = lease->at("spec");
  EXPECT_EQ(s.at("holderIdentity").as_string(), "node-a");
  EXPECT_EQ(s.at("leaseDurationSeconds").as_int64(), 40);
  const std::string renew_time(s.at("renewTime").as_string());
  EXPECT_TRUE(
      std::regex_match(renew_time, std::regex(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$)")))
      << renew_time;
  EXPECT_EQ(renew_time, format_kube_micro_time(clock_.wall()));
  EXPECT_NE(renew_time.find(".123456Z"), std::string::npos) << "microseconds, as MicroTime";
  EXPECT_EQ(s.at("acquireTime").as_string(), renew_time);

  ASSERT_EQ(log_.records.size(), 1u);
  const auto& acquired = log_.records[0];
  EXPECT_EQ(acquired.event, "lease-acquired");
  EXPECT_EQ(acquired.priority, Priority::kInfo);
  EXPECT_EQ(acquired.fields.at("LEASE"), "tetherd-system/tetherd-node-a");
  EXPECT_EQ(acquired.fields.at("CONTROL_PLANE"), http->server());
  EXPECT_EQ(acquired.message,
            "Lease tetherd-system/tetherd-node-a created as \"node-a\"; renewed every 10s, valid "
            "for 40s");
}

TEST_F(LeaseHeartbeatTest, SteadyStateIsOnePutPerRenewalAndNoGet) {
  // Left by the daemon's previous run: read once, then never again.
  server_->create(kLeases, lease_held_by("node-a", 0));
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10));

  auto first = run(heartbeat.renew());
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_FALSE(first->created);
  EXPECT_EQ(lease_calls(), (Calls{"GET 200", "PUT 200"}));

  const std::size_t before = server_->requests().size();
  constexpr int kRenewals = 12;
  std::string last_version = first->resource_version;
  for (int i = 0; i < kRenewals; ++i) {
    clock_.advance(seconds(10));
    auto renewed = run(heartbeat.renew());
    ASSERT_TRUE(renewed) << describe(renewed.error());
    EXPECT_NE(renewed->resource_version, last_version) << "the cache follows the server";
    last_version = renewed->resource_version;
  }
  EXPECT_EQ(lease_calls(before), Calls(kRenewals, "PUT 200"));
  EXPECT_EQ(server_->requests().size() - before, static_cast<std::size_t>(kRenewals))
      << "one request per renewal, and nothing else";
  EXPECT_EQ(heartbeat.stats().updates, kRenewals + 1u);
  EXPECT_EQ(heartbeat.stats().gets, 1u);
  EXPECT_EQ(heartbeat.stats().creates, 0u);
  EXPECT_EQ(heartbeat.stats().renewals, kRenewals + 1u);

  const auto s = stored_spec();
  EXPECT_EQ(s.at("renewTime").as_string(), format_kube_micro_time(clock_.wall()));
  EXPECT_EQ(s.at("acquireTime").as_string(), "2025-01-01T00:00:00.000000Z")
      << "still the same holder: no new acquisition";
  EXPECT_EQ(s.at("leaseTransitions").as_int64(), 0);
  ASSERT_EQ(log_.records.size(), 1u) << "never a line per heartbeat";
  EXPECT_EQ(log_.records[0].event, "lease-acquired");
  EXPECT_EQ(http->connections_opened(), 1u);
}

TEST_F(LeaseHeartbeatTest, AConflictIsReadAgainAndRenewedInTheSameCall) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10));
  ASSERT_TRUE(run(heartbeat.renew()));

  // An admin labels the Lease meanwhile: our cached resourceVersion is stale.
  auto edited = *server_->get(kLeaseA);
  edited["metadata"].as_object()["labels"] = json::object{{"site", "shop-floor"}};
  server_->update(kLeaseA, edited);

  const std::size_t before = server_->requests().size();
  clock_.advance(seconds(10));
  auto renewed = run(heartbeat.renew());
  ASSERT_TRUE(renewed) << describe(renewed.error());
  EXPECT_EQ(lease_calls(before), (Calls{"PUT 409", "GET 200", "PUT 200"}));
  const auto lease = *server_->get(kLeaseA);
  EXPECT_EQ(lease.at("metadata").at("labels").at("site").as_string(), "shop-floor")
      << "the other writer's change is kept, not overwritten";
  EXPECT_EQ(lease.at("spec").at("renewTime").as_string(), format_kube_micro_time(clock_.wall()));
  EXPECT_EQ(renewed->resource_version, rv_of(lease));

  // The cache is the server's answer again: back to one PUT.
  const std::size_t after = server_->requests().size();
  clock_.advance(seconds(10));
  ASSERT_TRUE(run(heartbeat.renew()));
  EXPECT_EQ(lease_calls(after), (Calls{"PUT 200"}));
  EXPECT_EQ(heartbeat.stats().failures, 0u);
  EXPECT_TRUE(log_.with_event("lease-renewal-failed").empty());
}

TEST_F(LeaseHeartbeatTest, ADeletedLeaseIsMadeAgain) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10));
  ASSERT_TRUE(run(heartbeat.renew()));
  server_->remove(kLeaseA);

  const std::size_t before = server_->requests().size();
  auto renewed = run(heartbeat.renew());
  ASSERT_TRUE(renewed) << describe(renewed.error());
  EXPECT_TRUE(renewed->created);
  EXPECT_EQ(lease_calls(before), (Calls{"PUT 404", "GET 404", "POST 201"}));
}

TEST_F(LeaseHeartbeatTest, AnotherHoldersLeaseIsTakenOverAndThatSaidOnce) {
  server_->create(kLeases, lease_held_by("old-desktop", 1));
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10));
  ASSERT_TRUE(run(heartbeat.renew()));
  auto s = stored_spec();
  EXPECT_EQ(s.at("holderIdentity").as_string(), "node-a");
  EXPECT_EQ(s.at("leaseTransitions").as_int64(), 2);
  EXPECT_EQ(s.at("acquireTime").as_string(), format_kube_micro_time(clock_.wall()));

  // A second machine running as node-a takes it back, again and again.
  for (int i = 0; i < 3; ++i) {
    auto theirs = *server_->get(kLeaseA);
    theirs["spec"].as_object()["holderIdentity"] = "old-desktop";
    server_->update(kLeaseA, theirs);
    clock_.advance(seconds(10));
    ASSERT_TRUE(run(heartbeat.renew()));
  }
  EXPECT_EQ(stored_spec().at("leaseTransitions").as_int64(), 5);
  const auto taken = log_.with_event("lease-taken-over");
  ASSERT_EQ(taken.size(), 1u) << "a fight is one line, not one per tick";
  EXPECT_EQ(taken[0].priority, Priority::kWarning);
  EXPECT_EQ(taken[0].fields.at("PREVIOUS_HOLDER"), "old-desktop");
}

TEST_F(LeaseHeartbeatTest, AFailingServerIsLoggedOnceAndItsRecoveryOnce) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10));
  ASSERT_TRUE(run(heartbeat.renew()));
  const WallTime renewed_at = clock_.wall();
  const std::size_t before = server_->requests().size();

  const MisbehaviourSpec faults[] = {
      {.what = Misbehaviour::kStatus500, .times = 2, .path_contains = "/leases"},
      {.what = Misbehaviour::kDropMidStream, .path_contains = "/leases"},
      {.what = Misbehaviour::kStatus503, .path_contains = "/leases", .retry_after_seconds = 7},
  };
  std::vector<kube::ApiError> errors;
  for (const auto& fault : faults) {
    server_->misbehave(fault);
    for (int i = 0; i < fault.times; ++i) {
      clock_.advance(seconds(10));
      auto failed = run(heartbeat.renew());
      ASSERT_FALSE(failed);
      errors.push_back(failed.error());
    }
  }
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_EQ(errors[0].code, 500u);
  EXPECT_EQ(errors[2].kind, kube::ErrorKind::kTransport) << describe(errors[2]);
  EXPECT_EQ(errors[3].code, 503u);
  EXPECT_EQ(errors[3].retry_after, Duration(seconds(7)));

  clock_.advance(seconds(10));
  auto back = run(heartbeat.renew());
  ASSERT_TRUE(back) << describe(back.error());
  // No re-read while the server fails (a 5xx changed nothing)... except
  // that the dropped answer was to a PUT the server had written: the cache
  // is stale then, and the recovery goes through a 409 and one GET.
  EXPECT_EQ(lease_calls(before),
            (Calls{"PUT 500", "PUT 500", "PUT 200", "PUT 503", "PUT 409", "GET 200", "PUT 200"}));
  EXPECT_EQ(stored_spec().at("renewTime").as_string(), format_kube_micro_time(clock_.wall()));

  const auto failed = log_.with_event("lease-renewal-failed");
  ASSERT_EQ(failed.size(), 1u) << "once per streak, not once per tick";
  EXPECT_EQ(failed[0].priority, Priority::kWarning);
  EXPECT_NE(failed[0].message.find("HTTP 500"), std::string::npos) << failed[0].message;
  EXPECT_NE(failed[0].message.find("expires at " + format_kube_time(renewed_at + seconds(40))),
            std::string::npos)
      << failed[0].message;
  EXPECT_EQ(failed[0].fields.at("LEASE"), "tetherd-system/tetherd-node-a");
  EXPECT_EQ(failed[0].fields.at("CONTROL_PLANE"), http->server());

  const auto recovered = log_.with_event("lease-renewed");
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_EQ(recovered[0].priority, Priority::kNotice);
  EXPECT_EQ(recovered[0].message,
            "Lease tetherd-system/tetherd-node-a renewed again after 4 failures");
  EXPECT_EQ(recovered[0].fields.at("FAILURES"), "4");
  EXPECT_EQ(log_.records.size(), 3u) << "acquired, failed, renewed: nothing else";
  EXPECT_EQ(heartbeat.stats().failures, 4u);
  EXPECT_EQ(heartbeat.stats().renewals, 2u);

  // Further renewals are quiet again.
  clock_.advance(seconds(10));
  ASSERT_TRUE(run(heartbeat.renew()));
  EXPECT_EQ(log_.records.size(), 3u);
}

TEST_F(LeaseHeartbeatTest, AForbiddenRenewalSaysWhoMayNotDoWhat) {
  // A user outside the nodes' group (what RBAC alone refuses; another
  // node's Lease is the admission policy's, which the test server lacks).
  auto http = client(kubeconfig("tetherd:node-b", nullptr, {}));
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec("node-a"), seconds(10));
  auto denied = run(heartbeat.renew());
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, 403u);
  EXPECT_FALSE(denied.error().retryable());
  EXPECT_NE(describe(denied.error())
                .find("leases.coordination.k8s.io \"tetherd-node-a\" is forbidden: User "
                      "\"tetherd:node-b\" cannot get resource \"leases\" in API group "
                      "\"coordination.k8s.io\" in the namespace \"tetherd-system\""),
            std::string::npos)
      << describe(denied.error());
  const auto failed = log_.with_event("lease-renewal-failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].message.find("HTTP 403 Forbidden"), std::string::npos) << failed[0].message;
}

TEST_F(LeaseHeartbeatTest, RbacWithoutUpdateFailsAtTheFirstPut) {
  server_->allow(
      {"tetherd:node-c", {"get", "create"}, "coordination.k8s.io", "leases", kNamespace, {}});
  auto http = client(kubeconfig("tetherd:node-c", nullptr, {}));  // not in the nodes' group
  KubeClient kube(*http);
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec("node-c"), seconds(10));
  ASSERT_TRUE(run(heartbeat.renew())) << "created";
  auto denied = run(heartbeat.renew());
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, 403u);
  EXPECT_NE(describe(denied.error()).find("cannot update resource \"leases\""), std::string::npos)
      << describe(denied.error());
}

// KubeTest::start() wants a value.
asio::awaitable<bool> run_heartbeat(LeaseHeartbeat& heartbeat) {
  co_await heartbeat.run();
  co_return true;
}

// A wait that ends only when run() cancels it, and says what it was asked for.
LeaseHeartbeat::Wait endless_wait(Mailbox& notes) {
  return [&notes](Duration delay) -> asio::awaitable<void> {
    notes.push("wait " + format_duration(delay));
    asio::steady_timer never(co_await asio::this_coro::executor,
                             asio::steady_timer::time_point::max());
    co_await never.async_wait(asio::as_tuple(asio::use_awaitable));
  };
}

TEST_F(LeaseHeartbeatTest, RunRenewsAtOnceAndRenewNowCutsTheWaitShort) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox notes;
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10), endless_wait(notes));
  heartbeat.on_result([&notes](const ApiResult<LeaseRenewal>& r) {
    notes.push(r ? "renewed " + r->resource_version : "failed " + describe(r.error()));
  });
  auto running = start(run_heartbeat(heartbeat));

  ASSERT_TRUE(notes.wait_for_count("wait ", 1));
  EXPECT_EQ(lease_calls(), (Calls{"GET 404", "POST 201"}));
  for (std::size_t n = 2; n <= 3; ++n) {
    // Back from a suspend: the wall clock moved, the timer did not.
    on_client_thread([&] {
      clock_.suspend(std::chrono::hours(2));
      heartbeat.renew_now();
    });
    ASSERT_TRUE(notes.wait_for_count("wait ", n));
  }
  on_client_thread([&] { heartbeat.stop(); });
  EXPECT_TRUE(finish(running));

  EXPECT_EQ(lease_calls(), (Calls{"GET 404", "POST 201", "PUT 200", "PUT 200"}));
  EXPECT_EQ(stored_spec().at("renewTime").as_string(), format_kube_micro_time(clock_.wall()));
  const auto all = notes.notes();
  ASSERT_EQ(all.size(), 6u);
  for (std::size_t i = 0; i < all.size(); i += 2) {
    EXPECT_EQ(all[i].rfind("renewed ", 0), 0u) << all[i];
    EXPECT_EQ(all[i + 1], "wait 10s");
  }
  EXPECT_EQ(heartbeat.stats().renewals, 3u);
}

TEST_F(LeaseHeartbeatTest, RunWaitsAsLongAsTheServerAsksWithinTheLeaseLife) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox notes;
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10), endless_wait(notes));
  server_->misbehave(
      {.what = Misbehaviour::kStatus503, .path_contains = "/leases", .retry_after_seconds = 25});
  auto running = start(run_heartbeat(heartbeat));
  ASSERT_TRUE(notes.wait_for_count("wait ", 1));
  EXPECT_EQ(notes.notes().back(), "wait 25s");

  // 429 asking for ten minutes: a Lease of 40 s is gone long before.
  server_->misbehave(
      {.what = Misbehaviour::kStatus429, .path_contains = "/leases", .retry_after_seconds = 600});
  on_client_thread([&] { heartbeat.renew_now(); });
  ASSERT_TRUE(notes.wait_for_count("wait ", 2));
  EXPECT_EQ(notes.notes().back(), "wait 40s");

  on_client_thread([&] { heartbeat.renew_now(); });
  ASSERT_TRUE(notes.wait_for_count("wait ", 3));
  EXPECT_EQ(notes.notes().back(), "wait 10s");
  on_client_thread([&] { heartbeat.stop(); });
  EXPECT_TRUE(finish(running));
  EXPECT_EQ(heartbeat.stats().failures, 2u);
  EXPECT_EQ(heartbeat.stats().renewals, 1u);
}

TEST_F(LeaseHeartbeatTest, WithJitterWaitsAreSpreadAboveTheIntervalAndTheRetryAfter) {
  auto http = client(kubeconfig());
  KubeClient kube(*http);
  Mailbox notes;
  LeaseHeartbeat heartbeat(kube, clock_, log_, spec(), seconds(10), endless_wait(notes));
  heartbeat.jitter([] { return 0.5; });
  auto running = start(run_heartbeat(heartbeat));
  ASSERT_TRUE(notes.wait_for_count("wait ", 1));
  // kubelet's factor, 0.04: half of 400 ms.
  EXPECT_EQ(notes.notes().back(), "wait 10.2s");

  // A brownout: 20 s asked, and half of half of it more, so that the
  // Lease does not come back in step with the session's retries.
  server_->misbehave(
      {.what = Misbehaviour::kStatus503, .path_contains = "/leases", .retry_after_seconds = 20});
  on_client_thread([&] { heartbeat.renew_now(); });
  ASSERT_TRUE(notes.wait_for_count("wait ", 2));
  EXPECT_EQ(notes.notes().back(), "wait 25s");
  on_client_thread([&] { heartbeat.stop(); });
  EXPECT_TRUE(finish(running));
}

}  // namespace
}  // namespace tetherd::test
