#include "agent/core/lease.h"

#include <cmath>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace tetherd {
namespace {

namespace json = boost::json;
using namespace std::chrono;

// 2026-11-21T09:30:05.000042Z
const WallTime kNow(duration_cast<WallTime::duration>(seconds(1795253405) + microseconds(42)));
const WallTime kLater = kNow + seconds(10);

LeaseSpec spec() {
  return {lease_name("node-a"), "tetherd-system", "node-a", seconds(40)};
}

// As kube-apiserver returns a Lease we created earlier.
json::object from_server(std::string_view holder = "node-a", int transitions = 0) {
  json::object lease = new_lease(spec(), kNow);
  lease["metadata"].as_object()["resourceVersion"] = "417";
  lease["metadata"].as_object()["uid"] = "6b2d2c1e-0000-4000-8000-000000000001";
  lease["spec"].as_object()["holderIdentity"] = holder;
  if (transitions > 0) lease["spec"].as_object()["leaseTransitions"] = transitions;
  return lease;
}

TEST(Lease, WaitsTheIntervalAndUpToFourPercentMoreAsKubelet) {
  EXPECT_EQ(lease_wait(10s, 40s, std::nullopt, 0.0), 10s);
  EXPECT_EQ(lease_wait(10s, 40s, std::nullopt, 0.5), 10200ms);
  EXPECT_LT(lease_wait(10s, 40s, std::nullopt, 2.0), 10400ms) << "a unit out of range is clamped";
  EXPECT_GT(lease_wait(10s, 40s, std::nullopt, 2.0), 10399ms) << "to just below 1";
  EXPECT_EQ(lease_wait(10s, 40s, std::nullopt, std::nan("")), 10s);
}

TEST(Lease, WaitsWhatTheServerAsksWithinTheLeaseLifeAndHalfAgainAtMost) {
  EXPECT_EQ(lease_wait(10s, 40s, 25s, 0.0), 25s);
  EXPECT_EQ(lease_wait(10s, 40s, 25s, 0.5), 31250ms);
  EXPECT_EQ(lease_wait(10s, 40s, 1s, 0.0), 10s) << "never sooner than the interval";
  EXPECT_EQ(lease_wait(10s, 40s, 600s, 0.0), 40s) << "the Lease is gone by then anyway";
  EXPECT_EQ(lease_wait(10s, 40s, 600s, 1.0), 40s) << "nor beyond it with the jitter";
  EXPECT_EQ(lease_wait(10s, 40s, 30s, 1.0), 40s);
}

TEST(Lease, NameIsTetherdAndTheNode) {
  EXPECT_EQ(lease_name("desktop"), "tetherd-desktop");
}

TEST(Lease, NewLeaseIsWhatKubeletWouldCreate) {
  EXPECT_EQ(new_lease(spec(), kNow), json::parse(R"({
    "apiVersion": "coordination.k8s.io/v1",
    "kind": "Lease",
    "metadata": {"name": "tetherd-node-a", "namespace": "tetherd-system"},
    "spec": {
      "holderIdentity": "node-a",
      "leaseDurationSeconds": 40,
      "acquireTime": "2026-11-21T09:30:05.000042Z",
      "renewTime": "2026-11-21T09:30:05.000042Z"
    }})"));
}

TEST(Lease, RenewalKeepsMetadataAndMovesOnlyRenewTime) {
  auto renewed = renewed_lease(from_server(), spec(), kLater);
  ASSERT_TRUE(renewed) << renewed.error().message;
  auto expected = from_server();
  expected["spec"].as_object()["renewTime"] = "2026-11-21T09:30:15.000042Z";
  EXPECT_EQ(*renewed, expected) << json::serialize(*renewed);
  EXPECT_EQ(renewed->at("metadata").at("resourceVersion").as_string(), "417")
      << "the PUT's precondition: without it a stale write would win";
}

TEST(Lease, RenewalSetsADurationChangedInTheConfig) {
  LeaseSpec longer = spec();
  longer.duration = seconds(90);
  auto renewed = renewed_lease(from_server(), longer, kLater);
  ASSERT_TRUE(renewed) << renewed.error().message;
  EXPECT_EQ(renewed->at("spec").at("leaseDurationSeconds").as_int64(), 90);
}

TEST(Lease, ANewHolderCountsATransitionAndSetsAcquireTime) {
  auto renewed = renewed_lease(from_server("someone-else", 2), spec(), kLater);
  ASSERT_TRUE(renewed) << renewed.error().message;
  const auto& s = renewed->at("spec");
  EXPECT_EQ(s.at("holderIdentity").as_string(), "node-a");
  EXPECT_EQ(s.at("leaseTransitions").as_int64(), 3);
  EXPECT_EQ(s.at("acquireTime").as_string(), "2026-11-21T09:30:15.000042Z");
  EXPECT_EQ(s.at("renewTime").as_string(), "2026-11-21T09:30:15.000042Z");

  // Our own Lease again: no transition, acquireTime stays.
  auto again = renewed_lease(*renewed, spec(), kLater + seconds(10));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->at("spec").at("leaseTransitions").as_int64(), 3);
  EXPECT_EQ(again->at("spec").at("acquireTime").as_string(), "2026-11-21T09:30:15.000042Z");
}

TEST(Lease, AReleasedLeaseOrOneWithoutSpecIsTaken) {
  // client-go's leader election counts taking a released Lease as a transition.
  auto released = from_server();
  released["spec"].as_object()["holderIdentity"] = nullptr;
  auto taken = renewed_lease(released, spec(), kLater);
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(taken->at("spec").at("holderIdentity").as_string(), "node-a");
  EXPECT_EQ(taken->at("spec").at("leaseTransitions").as_int64(), 1);

  auto bare = from_server();
  bare.erase("spec");
  auto filled = renewed_lease(bare, spec(), kLater);
  ASSERT_TRUE(filled) << filled.error().message;
  EXPECT_EQ(filled->at("spec").at("leaseDurationSeconds").as_int64(), 40);
  EXPECT_EQ(filled->at("spec").at("renewTime").as_string(), "2026-11-21T09:30:15.000042Z");
}

TEST(Lease, AListItemWithoutKindIsStillALease) {
  auto item = from_server();
  item.erase("kind");
  item.erase("apiVersion");
  EXPECT_TRUE(renewed_lease(item, spec(), kLater));
}

struct NotALease {
  const char* name;
  const char* json;
  const char* message;
};

class LeaseRefuses : public testing::TestWithParam<NotALease> {};

TEST_P(LeaseRefuses, WhatIsNotALease) {
  auto renewed = renewed_lease(json::parse(GetParam().json).as_object(), spec(), kLater);
  ASSERT_FALSE(renewed);
  EXPECT_EQ(renewed.error().message,
            std::string("Lease tetherd-system/tetherd-node-a: ") + GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Lease, LeaseRefuses,
    testing::Values(
        NotALease{"SpecNotAnObject",
                  R"({"kind":"Lease","metadata":{"name":"tetherd-node-a"},"spec":"renewed"})",
                  "spec is not an object"},
        NotALease{"SpecAnArray", R"({"metadata":{"name":"tetherd-node-a"},"spec":[]})",
                  "spec is not an object"},
        NotALease{"NoMetadata", R"({"kind":"Lease","spec":{}})",
                  "the server's object has no metadata"},
        NotALease{"AnotherKind",
                  R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure"})",
                  "the server sent a Status, not a Lease"},
        NotALease{"KindNotAString", R"({"kind":7,"metadata":{"name":"tetherd-node-a"}})",
                  "kind is not a string"},
        NotALease{"AnotherApiVersion",
                  R"({"kind":"Lease","apiVersion":"coordination.k8s.io/v1beta1",)"
                  R"("metadata":{"name":"tetherd-node-a"}})",
                  "the server sent apiVersion \"coordination.k8s.io/v1beta1\", not "
                  "coordination.k8s.io/v1"},
        NotALease{"AnotherName", R"({"kind":"Lease","metadata":{"name":"tetherd-node-b"}})",
                  "the server sent the Lease \"tetherd-node-b\" instead"},
        NotALease{"NoName", R"({"kind":"Lease","metadata":{}})", "metadata.name is missing"},
        NotALease{"HolderNotAString",
                  R"({"metadata":{"name":"tetherd-node-a"},"spec":{"holderIdentity":{}}})",
                  "spec.holderIdentity is not a string"},
        NotALease{"TransitionsNegative",
                  R"({"metadata":{"name":"tetherd-node-a"},)"
                  R"("spec":{"holderIdentity":"x","leaseTransitions":-1}})",
                  "spec.leaseTransitions is not a count: -1"},
        NotALease{"TransitionsAString",
                  R"({"metadata":{"name":"tetherd-node-a"},)"
                  R"("spec":{"holderIdentity":"x","leaseTransitions":"3"}})",
                  "spec.leaseTransitions is not a count: \"3\""}),
    [](const testing::TestParamInfo<NotALease>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tetherd
