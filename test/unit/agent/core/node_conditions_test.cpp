// The node's conditions in one place (core/node_conditions.h): what the
// producers report, what the listeners (the status writer, the journal)
// hear, and FirewallInSync composed from its two inputs.

#include "agent/core/node_conditions.h"

#include <gtest/gtest.h>

#include "test/support/fake_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using S = ConditionStatus;
namespace ct = condition_type;

class NodeConditionsTest : public ::testing::Test {
 protected:
  NodeConditionsTest() {
    subscription_ = board_.listen([this](const NodeConditions::Change& c) { heard_.push_back(c); });
  }
  const Condition& get(std::string_view type) {
    const Condition* c = board_.find(type);
    if (c == nullptr) throw std::runtime_error("no condition " + std::string(type));
    return *c;
  }

  test::FakeClock clock_;
  NodeConditions board_{clock_, 2};
  std::vector<NodeConditions::Change> heard_;
  NodeConditions::Subscription subscription_;
};

TEST_F(NodeConditionsTest, ListenersHearEveryChangeOnceAndNothingForARepeat) {
  EXPECT_TRUE(board_.report(ct::kConnected, S::kUnknown, "Connecting", "connecting"));
  ASSERT_EQ(heard_.size(), 1u);
  EXPECT_EQ(heard_[0].type, ct::kConnected);
  ASSERT_EQ(heard_[0].transitions.size(), 2u) << "Connected's first, and Ready's";

  EXPECT_FALSE(board_.report(ct::kConnected, S::kUnknown, "Connecting", "connecting"));
  EXPECT_EQ(heard_.size(), 1u) << "the same again is no news";

  // New words, same status: news for the EdgeNode, not a transition.
  EXPECT_TRUE(board_.report(ct::kConnected, S::kUnknown, "Connecting", "connecting again"));
  ASSERT_EQ(heard_.size(), 2u);
  EXPECT_TRUE(heard_[1].transitions.empty());

  clock_.advance(1s);
  board_.report(ct::kConnected, S::kTrue, "Watching", "watching");
  ASSERT_EQ(heard_.size(), 3u);
  ASSERT_FALSE(heard_[2].transitions.empty());
  EXPECT_EQ(heard_[2].transitions[0].from, S::kUnknown);
  EXPECT_EQ(heard_[2].transitions[0].to, S::kTrue);
  EXPECT_EQ(get(ct::kConnected).last_transition, clock_.wall());
  EXPECT_EQ(get(ct::kReady).status, S::kTrue);
}

TEST_F(NodeConditionsTest, ProbesAreDampedAndFactsAreNot) {
  board_.probed(ct::kClockSynchronized, {S::kTrue, "Synchronized", "ok", {}});
  EXPECT_EQ(get(ct::kClockSynchronized).status, S::kTrue) << "the first result at once";
  heard_.clear();

  EXPECT_FALSE(board_.probed(ct::kClockSynchronized, {S::kFalse, "NotSynchronized", "no", {}}));
  EXPECT_TRUE(heard_.empty()) << "one round is not enough with a threshold of 2";
  EXPECT_EQ(get(ct::kClockSynchronized).status, S::kTrue);
  EXPECT_TRUE(board_.probed(ct::kClockSynchronized, {S::kFalse, "NotSynchronized", "no", {}}));
  EXPECT_EQ(get(ct::kClockSynchronized).status, S::kFalse);
  EXPECT_EQ(get(ct::kReady).status, S::kFalse);

  // A fact flips at once, whatever the threshold.
  board_.report(ct::kCertificatesValid, S::kFalse, "IssuerExpired", "expired");
  EXPECT_EQ(get(ct::kCertificatesValid).status, S::kFalse);

  board_.set_threshold(1);
  board_.probed(ct::kClockSynchronized, {S::kTrue, "Synchronized", "ok", {}});
  EXPECT_EQ(get(ct::kClockSynchronized).status, S::kTrue);
}

TEST_F(NodeConditionsTest, ForgettingAConditionRederivesReadyAndIsHeard) {
  board_.report(ct::kConnected, S::kTrue, "Watching", "watching");
  board_.report(ct::kK3sReady, S::kFalse, "KubeconfigUnusable", "no file");
  EXPECT_EQ(get(ct::kReady).status, S::kFalse);
  heard_.clear();
  EXPECT_TRUE(board_.forget(ct::kK3sReady));
  EXPECT_EQ(board_.find(ct::kK3sReady), nullptr);
  EXPECT_EQ(get(ct::kReady).status, S::kTrue);
  ASSERT_EQ(heard_.size(), 1u);
  ASSERT_EQ(heard_[0].transitions.size(), 1u);
  EXPECT_EQ(heard_[0].transitions[0].type, ct::kReady);
  EXPECT_FALSE(board_.forget(ct::kK3sReady)) << "gone already";
  EXPECT_EQ(heard_.size(), 1u);
}

// FirewallInSync: the verdict on what the node was asked to hold, unless
// the live rules cannot be checked; the verdict comes back when they can.
TEST_F(NodeConditionsTest, FirewallInSyncIsTheVerdictUnlessTheLiveCheckFails) {
  board_.firewall_verdict(S::kTrue, "Applied", "3 sources");
  EXPECT_EQ(get(ct::kFirewallInSync).reason, "Applied");

  board_.firewall_checked(make_error("nft: permission denied"));
  EXPECT_EQ(get(ct::kFirewallInSync).status, S::kFalse);
  EXPECT_EQ(get(ct::kFirewallInSync).reason, "ReconcileFailed");
  EXPECT_NE(get(ct::kFirewallInSync).message.find("permission denied"), std::string::npos);

  // A new spec meanwhile: remembered, not shown over the failure.
  board_.firewall_verdict(S::kFalse, "InvalidSpec", "not a CIDR");
  EXPECT_EQ(get(ct::kFirewallInSync).reason, "ReconcileFailed");

  board_.firewall_checked({});
  EXPECT_EQ(get(ct::kFirewallInSync).status, S::kFalse);
  EXPECT_EQ(get(ct::kFirewallInSync).reason, "InvalidSpec");

  // A check before any verdict shows nothing: there is nothing to be in
  // sync with yet.
  NodeConditions fresh(clock_, 2);
  fresh.firewall_checked({});
  EXPECT_EQ(fresh.find(ct::kFirewallInSync), nullptr);
  fresh.firewall_checked(make_error("cannot read"));
  EXPECT_EQ(fresh.find(ct::kFirewallInSync)->reason, "ReconcileFailed");
}

TEST_F(NodeConditionsTest, AnEndedSubscriptionHearsNothing) {
  int other = 0;
  {
    auto sub = board_.listen([&](const NodeConditions::Change&) { ++other; });
    board_.report(ct::kConnected, S::kTrue, "Watching", "watching");
    EXPECT_EQ(other, 1);
  }
  board_.report(ct::kConnected, S::kFalse, "ConnectionRefused", "refused");
  EXPECT_EQ(other, 1);
  subscription_.reset();
  board_.report(ct::kConnected, S::kTrue, "Watching", "watching");
  EXPECT_EQ(heard_.size(), 2u);
}

}  // namespace
}  // namespace tetherd
