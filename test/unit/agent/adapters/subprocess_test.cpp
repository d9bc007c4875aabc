// Real child processes: exit codes, both outputs, the environment handed
// down, and the bounds on time and output.

#include "agent/adapters/subprocess.h"

#include <cstdlib>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;

TEST(RunCommand, ExitCodeAndBothOutputs) {
  auto r = run_command({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(RunCommand, NoShellArgumentsArePassedAsIs) {
  auto r = run_command({"/bin/echo", "a b", "$HOME", "'c'"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, "a b $HOME 'c'\n");
}

TEST(RunCommand, SystemdsVariablesStayWithTetherd) {
  setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
  setenv("WATCHDOG_USEC", "30000000", 1);
  setenv("TETHERD_TEST_KEPT", "yes", 1);
  auto r = run_command({"/usr/bin/env"});
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("TETHERD_TEST_KEPT");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out.find("NOTIFY_SOCKET"), std::string::npos) << r->out;
  EXPECT_EQ(r->out.find("WATCHDOG_USEC"), std::string::npos);
  EXPECT_NE(r->out.find("TETHERD_TEST_KEPT=yes"), std::string::npos);
}

TEST(RunCommand, StdinIsEmpty) {
  auto r = run_command({"/bin/cat"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, "");
}

TEST(RunCommand, AHungChildIsKilledAtTheDeadline) {
  auto r = run_command({"/bin/sleep", "30"}, {.timeout = 200ms});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "/bin/sleep did not finish within 200ms; killed");
}

TEST(RunCommand, OutputIsBounded) {
  auto r = run_command({"/usr/bin/yes"}, {.max_output = 1 << 20});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "/usr/bin/yes wrote more than 1048576 bytes of output; stopped");
}

TEST(RunCommand, WhatCannotRunIsAnError) {
  EXPECT_FALSE(run_command({"/nonexistent/ufw"}).has_value());
  EXPECT_EQ(run_command({"ufw"}).error().message, "run_command needs an absolute path");
  EXPECT_FALSE(run_command({}).has_value());
}

}  // namespace
}  // namespace tetherd
