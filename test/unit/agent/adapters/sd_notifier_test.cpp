// SdNotifier against a real AF_UNIX datagram socket, as systemd provides one.

#include "agent/adapters/sd_notifier.h"

#include <cstdlib>

#include <gtest/gtest.h>

#include "test/support/notify_socket.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

class SdNotifierTest : public ::testing::Test {
 protected:
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
  }
  test::TempDir tmp_;
};

TEST_F(SdNotifierTest, SendsAssignmentsToNotifySocket) {
  test::NotifySocket sock(tmp_.file("notify"));
  setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
  SdNotifier notifier;
  notifier.notify("READY=1\nSTATUS=serving");
  EXPECT_EQ(sock.receive(5s), "READY=1\nSTATUS=serving");
}

TEST_F(SdNotifierTest, WithoutAManagerNotifyIsHarmless) {
  unsetenv("NOTIFY_SOCKET");
  SdNotifier notifier;
  notifier.notify("READY=1");  // must neither crash nor block
  EXPECT_FALSE(notifier.watchdog_timeout().has_value());
}

TEST_F(SdNotifierTest, WatchdogTimeoutComesFromTheEnvironment) {
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  SdNotifier notifier;
  EXPECT_EQ(notifier.watchdog_timeout(), std::optional<Duration>(3s));
}

TEST_F(SdNotifierTest, WatchdogMeantForAnotherProcessIsIgnored) {
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);
  EXPECT_FALSE(SdNotifier().watchdog_timeout().has_value());
}

}  // namespace
}  // namespace tetherd
