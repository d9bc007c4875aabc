// Real reads on this machine: the values must be sane, whatever it is.
#include "agent/adapters/host_facts.h"

#include <ctime>

#include <gtest/gtest.h>

#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

TEST(HostFacts, ReadsTheMachine) {
  test::TempDir dir;
  const std::string missing = dir.file("not-there");
  const HostFacts facts = read_host_facts({dir.path(), missing, "/"});

  ASSERT_TRUE(facts.load.has_value());
  EXPECT_GE(facts.load->one, 0.0);
  EXPECT_GE(facts.load->fifteen, 0.0);

  ASSERT_TRUE(facts.memory_total_bytes.has_value());
  ASSERT_TRUE(facts.memory_available_bytes.has_value());
  EXPECT_GT(*facts.memory_available_bytes, 0u);
  EXPECT_GE(*facts.memory_total_bytes, *facts.memory_available_bytes);
  EXPECT_GT(*facts.memory_total_bytes, 16u << 20) << "a machine that runs tests has 16 MiB";

  ASSERT_EQ(facts.disks.size(), 3u);
  const DiskSpace& temp = facts.disks[0];
  EXPECT_EQ(temp.path, dir.path());
  EXPECT_TRUE(temp.present) << temp.error;
  EXPECT_GT(temp.total_bytes, 0u);
  EXPECT_GE(temp.total_bytes, temp.available_bytes);
  const DiskSpace& gone = facts.disks[1];
  EXPECT_EQ(gone.path, missing);
  EXPECT_FALSE(gone.present);
  EXPECT_EQ(gone.error, "") << "missing is not an error";
  EXPECT_TRUE(facts.disks[2].present) << "the path after a missing one is still read";

  EXPECT_GT(facts.uptime, 0s);
  EXPECT_EQ(facts.clock.error, "") << "adjtimex with modes 0 needs no privilege";
  EXPECT_GE(facts.clock.state, 0);
  EXPECT_GE(facts.clock.max_error_us, 0);
  EXPECT_GE(facts.clock.est_error_us, 0);
  // Whatever the machine's clock, it is judged, not refused.
  EXPECT_FALSE(clock_synchronized(facts.clock).reason.empty());
}

TEST(HostFacts, UnreadablePathSaysWhy) {
  const HostFacts facts = read_host_facts({std::string(5000, 'x')});
  ASSERT_EQ(facts.disks.size(), 1u);
  EXPECT_FALSE(facts.disks[0].present);
  EXPECT_NE(facts.disks[0].error, "");  // ENAMETOOLONG, not "missing"
}

TEST(HostFacts, OneRoundIsCheap) {
  // CPU time, not wall time: a loaded test machine must not fail this.
  const std::vector<std::string> paths{"/", "/tmp"};
  timespec before{}, after{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &before);
  constexpr int kRounds = 100;
  for (int i = 0; i < kRounds; ++i)
    read_host_facts(paths);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &after);
  const auto spent = std::chrono::seconds(after.tv_sec - before.tv_sec) +
                     std::chrono::nanoseconds(after.tv_nsec - before.tv_nsec);
  EXPECT_LT(spent / kRounds, 1ms);
}

TEST(Meminfo, ParsesKilobytesIntoBytes) {
  const MemoryInfo m = parse_meminfo(
      "MemTotal:       16318480 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"
      "SwapTotal:             0 kB\n");
  EXPECT_EQ(m.total_bytes, 16318480ull * 1024);
  EXPECT_EQ(m.available_bytes, 8000000ull * 1024);
}

TEST(Meminfo, MissingOrOddLinesAreLeftOut) {
  EXPECT_FALSE(parse_meminfo("").total_bytes);
  EXPECT_FALSE(parse_meminfo("MemTotalX: 5 kB\n").total_bytes);
  EXPECT_FALSE(parse_meminfo("MemTotal: lots kB\n").total_bytes);
  EXPECT_FALSE(parse_meminfo("MemTotal: 5 MB\n").total_bytes);
  EXPECT_FALSE(parse_meminfo("MemTotal: 99999999999999999999 kB\n").total_bytes);
  const MemoryInfo only_total = parse_meminfo("MemTotal: 5 kB");  // no newline at the end
  EXPECT_EQ(only_total.total_bytes, 5u * 1024);
  EXPECT_FALSE(only_total.available_bytes);
}

}  // namespace
}  // namespace tetherd
