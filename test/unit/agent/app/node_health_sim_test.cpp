// NodeHealth's rounds on simulated time (test/support/sim_clock.h): a day
// of 30 s rounds, a flushed ruleset and a long sleep, run in no real time.
// The rounds' probes are the local ones; the firewall is a FakeBackend on
// the keeper's loop worker, so everything here runs on one io_context.

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include "agent/app/node_health.h"
#include "test/support/fake_backend.h"
#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

class NodeHealthSimTest : public ::testing::Test {
 protected:
  NodeHealthSimTest() {
    config_.node_name = "node-a";
    config_.health.interval = 30s;
    config_.state.dir = tmp_.path();
    config_.metrics.listen.clear();
    EXPECT_TRUE(keeper_.start(config_.firewall).has_value());
  }
  ~NodeHealthSimTest() override {
    keeper_.stop();
    clock_.run_for(io_, 0s);
  }

  boost::asio::io_context io_{1};
  test::SimClock clock_;
  test::TempDir tmp_;
  test::RecordingLog log_;
  Config config_;
  NodeConditions conditions_{clock_, config_.health.threshold};
  test::FakeBackend* backend_ = nullptr;
  FirewallKeeper keeper_{log_,
                         StateDir(tmp_.path()),
                         [this](const FirewallConfig&) {
                           auto b = std::make_unique<test::FakeBackend>();
                           backend_ = b.get();
                           return b;
                         },
                         {},
                         io_.get_executor(),
                         FirewallKeeper::Worker::kLoop};
};

TEST_F(NodeHealthSimTest, ADayOfRoundsASleepAndARepairRunOnSimulatedTime) {
  NodeHealth health(io_, clock_, log_, config_, keeper_, conditions_, nullptr, nullptr);
  health.start();

  clock_.run_for(io_, 6h);
  EXPECT_EQ(health.stats().rounds, 6u * 120 + 1) << "one at start, then one per 30 s";
  ASSERT_NE(backend_, nullptr);
  ASSERT_TRUE(backend_->live.has_value());
  const int applies = backend_->applies;

  backend_->live.reset();  // someone flushed the ruleset
  clock_.run_for(io_, 30s);
  EXPECT_TRUE(backend_->live.has_value()) << "the next round repaired it";
  EXPECT_EQ(backend_->applies, applies + 1);
  EXPECT_EQ(log_.with_event("firewall-repaired").size(), 1u);
  const Condition* in_sync = health.conditions().find(condition_type::kFirewallInSync);
  ASSERT_NE(in_sync, nullptr);
  EXPECT_EQ(in_sync->status, ConditionStatus::kTrue);

  // Three hours asleep: the monotonic timers stood still, so nothing ran;
  // the resume brings a round at once, and the rhythm starts from there.
  clock_.run_for(io_, 6h - 30s);
  const std::uint64_t before_sleep = health.stats().rounds;
  EXPECT_EQ(before_sleep, 12u * 120 + 1);
  clock_.suspend(3h);
  clock_.run_for(io_, 0s);
  EXPECT_EQ(health.stats().rounds, before_sleep) << "a sleep fires no timer";
  health.resumed(clock_.wall());
  clock_.run_for(io_, 0s);
  EXPECT_EQ(health.stats().rounds, before_sleep + 1) << "a round at once on resume";
  EXPECT_EQ(health.stats().resumes, 1u);
  clock_.run_for(io_, 12h);
  EXPECT_EQ(health.stats().rounds, before_sleep + 1 + 12u * 120);

  health.stop();
  clock_.run_for(io_, 0s);
  EXPECT_TRUE(health.finished());
  EXPECT_EQ(clock_.pending(), 0u) << "stopped: no timer left armed";
}

}  // namespace
}  // namespace tetherd
