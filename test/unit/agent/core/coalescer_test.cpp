#include "agent/core/coalescer.h"

#include <vector>

#include <gtest/gtest.h>

namespace tetherd {
namespace {

using namespace std::chrono_literals;

// Events at the given times (ms); the times (ms) each answer is given, as a
// loop that fires the timer at the last time event() returned would.
std::vector<long> answers(const std::vector<long>& events, long until) {
  Coalescer c(200ms, 1000ms);
  std::vector<long> out;
  long due = -1;  // none
  std::size_t next = 0;
  for (long t = 0; t <= until; ++t) {
    while (next < events.size() && events[next] == t) {
      const MonoTime at = c.event(std::chrono::milliseconds(t));
      due = std::chrono::duration_cast<std::chrono::milliseconds>(at).count();
      ++next;
    }
    if (due == t) {
      out.push_back(t);
      c.answered();
      due = -1;
    }
  }
  return out;
}

TEST(Coalescer, OneEventIsAnsweredAfterTheQuietTime) {
  EXPECT_EQ(answers({0}, 5000), (std::vector<long>{200}));
}

TEST(Coalescer, ABurstIsAnsweredOnceAfterItsLastEvent) {
  // A rename into place: create, write, close, moved_to within a few ms.
  EXPECT_EQ(answers({0, 1, 3, 150, 300}, 5000), (std::vector<long>{500}));
}

TEST(Coalescer, SeparateChangesAreAnsweredSeparately) {
  EXPECT_EQ(answers({0, 1000}, 5000), (std::vector<long>{200, 1200}));
}

TEST(Coalescer, AFileThatNeverStopsChangingIsAnsweredOnceASecond) {
  std::vector<long> every_20ms;
  for (long t = 0; t < 3500; t += 20)
    every_20ms.push_back(t);
  EXPECT_EQ(answers(every_20ms, 10000), (std::vector<long>{1000, 2020, 3040, 3680}))
      << "175 events, four answers: never a busy loop, never starved";
}

}  // namespace
}  // namespace tetherd
