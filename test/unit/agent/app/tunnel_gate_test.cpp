// firewall.closeWhenTunnelled's damping (app/tunnel_gate.h) on simulated
// time: a server lost now and then is followed at once; one that keeps
// being lost leaves the ports open until its losses have decayed.

#include "agent/app/tunnel_gate.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test/support/recording_log.h"
#include "test/support/sim_clock.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

class TunnelGateTest : public ::testing::Test {
 protected:
  TunnelGateTest() {
    gate_.on_change([this](const std::string& why) { changes_.push_back(why); });
  }

  // The tunnel lost and found again `n` times, a few seconds apart; each
  // loss weighs `weight` (one server of 1 / weight).
  void flap(int n, double weight = 1) {
    for (int i = 0; i < n; ++i) {
      gate_.held(true, weight);
      clock_.run_for(io_, 5s);
      gate_.held(false, weight);
      clock_.run_for(io_, 5s);
    }
  }

  boost::asio::io_context io_{1};
  test::SimClock clock_;
  test::RecordingLog log_;
  TunnelGate gate_{io_.get_executor(), clock_, log_};
  std::vector<std::string> changes_;
};

TEST_F(TunnelGateTest, AServerLostOnceOrTwiceIsFollowedAtOnce) {
  EXPECT_FALSE(gate_.close()) << "nothing held yet";
  flap(2);
  EXPECT_FALSE(gate_.close()) << "a lost tunnel opens the ports at once";
  gate_.held(true);
  EXPECT_TRUE(gate_.close()) << "two losses are not a flapping server";
  EXPECT_FALSE(gate_.suppressed());
  EXPECT_EQ(gate_.flaps(), 2u);
  EXPECT_TRUE(log_.with_event("firewall-tunnel-damped").empty());
}

TEST_F(TunnelGateTest, AThirdLossInQuickSuccessionKeepsThePortsOpenUntilItsLossesHaveDecayed) {
  flap(3);
  ASSERT_TRUE(gate_.suppressed());
  const auto damped = log_.with_event("firewall-tunnel-damped");
  ASSERT_EQ(damped.size(), 1u);
  EXPECT_NE(damped[0].message.find("3 times to this server"), std::string::npos)
      << damped[0].message;
  EXPECT_NE(damped[0].message.find("at least until "), std::string::npos) << damped[0].message;

  gate_.held(true);
  EXPECT_FALSE(gate_.close()) << "held, but damped: the ports stay open";
  // About 2900 of penalty, 750 to reuse: two half-lives less a little.
  clock_.run_for(io_, 25min);
  EXPECT_FALSE(gate_.close());
  EXPECT_TRUE(changes_.empty());
  clock_.run_for(io_, 5min);
  EXPECT_TRUE(gate_.close()) << "penalty " << gate_.penalty();
  EXPECT_FALSE(gate_.suppressed());
  ASSERT_EQ(changes_.size(), 1u) << "the daemon is told, to close the ports";
  EXPECT_NE(changes_[0].find("no longer damped"), std::string::npos) << changes_[0];
  EXPECT_EQ(log_.with_event("firewall-tunnel-undamped").size(), 1u);
}

TEST_F(TunnelGateTest, ALossWhileDampedExtendsItButNeverPastTheLongestSuppression) {
  flap(3);
  ASSERT_TRUE(gate_.suppressed());
  // Lost every 10 minutes for two hours: damped throughout.
  for (int i = 0; i < 12; ++i) {
    gate_.held(true);
    clock_.run_for(io_, 10min);
    ASSERT_FALSE(gate_.close()) << "after " << i << " more losses";
    gate_.held(false);
  }
  EXPECT_EQ(log_.with_event("firewall-tunnel-damped").size(), 1u) << "said once per suppression";
  // A hundred losses at once: the ceiling keeps the suppression to an hour.
  flap(100);
  gate_.held(true);
  clock_.run_for(io_, 59min);
  EXPECT_FALSE(gate_.close());
  clock_.run_for(io_, 1min + 1s);
  EXPECT_TRUE(gate_.close()) << "penalty " << gate_.penalty();
  EXPECT_EQ(changes_.size(), 1u);
}

TEST_F(TunnelGateTest, ASuspendCountsAsQuietTime) {
  flap(3);
  ASSERT_TRUE(gate_.suppressed());
  // The machine sleeps three hours: the monotonic timer does not run, but
  // boottime does. The resume closes the tunnel's connections (the daemon
  // lets go first: no server's loss), and the tunnel found again closes
  // the ports.
  clock_.suspend(3h);
  gate_.let_go();
  gate_.held(false);
  gate_.held(true);
  EXPECT_TRUE(gate_.close());
  EXPECT_FALSE(gate_.suppressed());
  EXPECT_EQ(gate_.flaps(), 3u);
}

TEST_F(TunnelGateTest, LossesThatDecayedInASleepEndTheDampingBeforeTheNextIsWeighed) {
  flap(3);
  ASSERT_TRUE(gate_.suppressed());
  clock_.suspend(3h);
  gate_.held(false);  // a loss seen after the resume (weighed, 1000)
  EXPECT_FALSE(gate_.suppressed()) << "penalty " << gate_.penalty();
  gate_.held(true);
  EXPECT_TRUE(gate_.close());
}

TEST_F(TunnelGateTest, AServerOfThreeWeighsAThird) {
  // A rolling restart of three servers, twice: six losses, two losses' worth.
  flap(6, 1.0 / 3);
  EXPECT_FALSE(gate_.suppressed()) << "penalty " << gate_.penalty();
  flap(1, 1.0 / 3);
  EXPECT_TRUE(gate_.suppressed()) << "penalty " << gate_.penalty();
}

TEST_F(TunnelGateTest, AnotherTunnelStartsAfreshAndAStopLeavesNoTimer) {
  flap(3);
  ASSERT_TRUE(gate_.suppressed());
  EXPECT_GT(clock_.pending(), 0u) << "the timer that ends the damping";
  gate_.reset();  // a reload changed tunnel.server
  EXPECT_FALSE(gate_.suppressed());
  EXPECT_EQ(gate_.penalty(), 0);
  EXPECT_EQ(gate_.flaps(), 0u) << "the journal's count is the new server's";
  gate_.held(true);
  EXPECT_TRUE(gate_.close());

  flap(3);
  ASSERT_TRUE(gate_.suppressed());
  gate_.stop();
  EXPECT_EQ(clock_.pending(), 0u) << "nothing left to hold the event loop at a stop";
}

TEST_F(TunnelGateTest, LossesNotCountedAndLettingGoAreNoFlaps) {
  for (int i = 0; i < 10; ++i) {
    gate_.held(true, /*weight=*/0);
    gate_.held(false, /*weight=*/0);
  }
  EXPECT_EQ(gate_.flaps(), 0u) << "firewall.closeWhenTunnelled off: the ports do not follow";
  for (int i = 0; i < 10; ++i) {
    gate_.held(true);
    gate_.let_go();  // a reload made a new tunnel
  }
  EXPECT_EQ(gate_.flaps(), 0u);
  EXPECT_FALSE(gate_.is_held());
  gate_.held(true);
  EXPECT_TRUE(gate_.close());
}

}  // namespace
}  // namespace tetherd
