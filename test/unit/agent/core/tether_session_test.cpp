#include "agent/core/tether_session.h"

#include <optional>
#include <ostream>
#include <vector>

#include <gtest/gtest.h>

// Each row names what it sets and leaves the rest at their defaults, on
// purpose; GCC 12 still warns of the fields left out.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using Kind = SessionStep::Kind;
using S = SessionState;

// One input at a time (`at` seconds on the monotonic clock), and what the
// session must then be and do. The jitter's random number is always 0.5,
// so a delay is half its window: 0.5 s, 1 s, 2 s ... up to 30 s.
enum class In {
  kStart,
  kListed,
  kOpened,
  kEvent,
  kEnded,
  kExpired,
  kFailed,
  kElapsed,
  kResumed,
  kLeaseOk,
  kLeaseAnswered,  // a renewal refused by a server that is there (503, 409, ...)
  kLeaseUnreachable,
  kSuspending,
  kStop
};

struct Row {
  In in;
  double at = 0;
  const char* rv = "";                  // kListed, kEvent
  std::size_t events = 1;               // kEnded
  std::optional<Duration> retry_after;  // kFailed
  bool stale = false;                   // report for the step before the current one
  // Expected afterwards.
  S state;
  Kind kind;
  Duration delay{};
  const char* step_rv = "";
  bool redial = false;
};

struct Scenario {
  const char* name;
  std::vector<Row> rows;
};

void PrintTo(const Scenario& s, std::ostream* os) {
  *os << s.name;
}

MonoTime at(double seconds) {
  return std::chrono::duration_cast<MonoTime>(std::chrono::duration<double>(seconds));
}

class TetherSessionTable : public testing::TestWithParam<Scenario> {};

TEST_P(TetherSessionTable, Steps) {
  TetherSession session;
  std::uint64_t previous_id = 0;
  int line = 0;
  for (const Row& r : GetParam().rows) {
    ++line;
    const std::uint64_t before = session.step().id;
    const std::uint64_t id = r.stale ? previous_id : before;
    const MonoTime now = at(r.at);
    switch (r.in) {
      case In::kStart:
        session.start(now);
        break;
      case In::kListed:
        session.listed(id, now, r.rv);
        break;
      case In::kOpened:
        session.watch_opened(id, now);
        break;
      case In::kEvent:
        session.event(id, r.rv);
        break;
      case In::kEnded:
        session.watch_ended(id, now, false, r.events, 0.5);
        break;
      case In::kExpired:
        session.watch_ended(id, now, true, r.events, 0.5);
        break;
      case In::kFailed:
        session.failed(id, now, {r.retry_after}, 0.5);
        break;
      case In::kElapsed:
        session.backoff_elapsed(id, now);
        break;
      case In::kResumed:
        session.resumed(now);
        break;
      case In::kLeaseOk:
        session.lease_result(now, LeaseOutcome::kRenewed, 0.5);
        break;
      case In::kLeaseAnswered:
        session.lease_result(now, LeaseOutcome::kAnswered, 0.5);
        break;
      case In::kLeaseUnreachable:
        session.lease_result(now, LeaseOutcome::kUnreachable, 0.5);
        break;
      case In::kSuspending:
        session.suspending();
        break;
      case In::kStop:
        session.stop();
        break;
    }
    if (session.step().id != before) previous_id = before;
    SCOPED_TRACE("row " + std::to_string(line));
    EXPECT_EQ(to_string(session.state()), to_string(r.state));
    EXPECT_EQ(static_cast<int>(session.step().kind), static_cast<int>(r.kind));
    EXPECT_EQ(session.step().delay, r.delay);
    EXPECT_EQ(session.step().resource_version, r.step_rv);
    EXPECT_EQ(session.step().redial, r.redial);
    EXPECT_EQ(session.connected(), r.state == S::kWatching || r.state == S::kListing);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Session, TetherSessionTable,
    testing::Values(
        Scenario{"suspend_closes_everything_and_waits_for_the_resume",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 1,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kSuspending,
                   .at = 2,
                   .state = S::kSuspended,
                   .kind = Kind::kIdle,
                   .redial = true},
                  // The watch that the suspend cut reports its end: stale.
                  {.in = In::kFailed,
                   .at = 2,
                   .stale = true,
                   .state = S::kSuspended,
                   .kind = Kind::kIdle,
                   .redial = true},
                  // A lease renewal that worked does not end the quiet...
                  {.in = In::kLeaseOk,
                   .at = 2,
                   .state = S::kSuspended,
                   .kind = Kind::kIdle,
                   .redial = true},
                  // ...and a second PrepareForSleep changes nothing.
                  {.in = In::kSuspending,
                   .at = 2,
                   .state = S::kSuspended,
                   .kind = Kind::kIdle,
                   .redial = true},
                  {.in = In::kResumed,
                   .at = 3,
                   .state = S::kConnecting,
                   .kind = Kind::kList,
                   .redial = true}}},
        Scenario{"suspend_while_stopped_is_nothing",
                 {{.in = In::kSuspending, .at = 0, .state = S::kDisconnected, .kind = Kind::kIdle},
                  {.in = In::kResumed, .at = 0, .state = S::kDisconnected, .kind = Kind::kIdle}}},
        Scenario{"list_then_watch_and_rewatch_after_a_clean_end",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0.1,
                   .rv = "10",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "10"},
                  {.in = In::kEvent,
                   .at = 5,
                   .rv = "11",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "10"},
                  {.in = In::kEnded,
                   .at = 300,
                   .events = 3,
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "11"}}},
        Scenario{
            "failures_back_off_with_full_jitter_up_to_the_cap",
            {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed,
              .at = 0,
              .state = S::kBackoff,
              .kind = Kind::kWait,
              .delay = 500ms},
             {.in = In::kElapsed, .at = 1, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed, .at = 1, .state = S::kBackoff, .kind = Kind::kWait, .delay = 1s},
             {.in = In::kElapsed, .at = 2, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed, .at = 2, .state = S::kBackoff, .kind = Kind::kWait, .delay = 2s},
             {.in = In::kElapsed, .at = 4, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed, .at = 4, .state = S::kBackoff, .kind = Kind::kWait, .delay = 4s},
             {.in = In::kElapsed, .at = 8, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed, .at = 8, .state = S::kBackoff, .kind = Kind::kWait, .delay = 8s},
             {.in = In::kElapsed, .at = 16, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed, .at = 16, .state = S::kBackoff, .kind = Kind::kWait, .delay = 16s},
             {.in = In::kElapsed, .at = 32, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed, .at = 32, .state = S::kBackoff, .kind = Kind::kWait, .delay = 30s},
             {.in = In::kElapsed, .at = 62, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kFailed,
              .at = 62,
              .state = S::kBackoff,
              .kind = Kind::kWait,
              .delay = 30s}}},
        Scenario{"a_failed_watch_resumes_from_its_resource_version",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kEvent,
                   .at = 1,
                   .rv = "7",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kFailed,
                   .at = 2,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 500ms},
                  {.in = In::kElapsed,
                   .at = 3,
                   .state = S::kConnecting,
                   .kind = Kind::kWatch,
                   .step_rv = "7"},
                  {.in = In::kOpened,
                   .at = 3,
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "7"}}},
        Scenario{
            "the_backoff_starts_small_again_after_a_stable_minute",
            {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kListed,
              .at = 0,
              .rv = "1",
              .state = S::kWatching,
              .kind = Kind::kWatch,
              .step_rv = "1"},
             {.in = In::kFailed,
              .at = 30,
              .state = S::kBackoff,
              .kind = Kind::kWait,
              .delay = 500ms},
             {.in = In::kElapsed,
              .at = 31,
              .state = S::kConnecting,
              .kind = Kind::kWatch,
              .step_rv = "1"},
             {.in = In::kOpened,
              .at = 31,
              .state = S::kWatching,
              .kind = Kind::kWatch,
              .step_rv = "1"},
             // Up for 9 s only: the streak goes on.
             {.in = In::kFailed, .at = 40, .state = S::kBackoff, .kind = Kind::kWait, .delay = 1s},
             {.in = In::kElapsed,
              .at = 41,
              .state = S::kConnecting,
              .kind = Kind::kWatch,
              .step_rv = "1"},
             {.in = In::kOpened,
              .at = 41,
              .state = S::kWatching,
              .kind = Kind::kWatch,
              .step_rv = "1"},
             // Up for 61 s: a new streak.
             {.in = In::kFailed,
              .at = 102,
              .state = S::kBackoff,
              .kind = Kind::kWait,
              .delay = 500ms}}},
        Scenario{"gone_mid_run_lists_again_at_once",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kEnded,
                   .at = 300,
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kExpired, .at = 400, .state = S::kListing, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 400,
                   .rv = "90",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "90"}}},
        Scenario{"gone_right_after_a_list_backs_off_growing",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kExpired,
                   .at = 0,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 500ms},
                  {.in = In::kElapsed, .at = 1, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 1,
                   .rv = "6",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "6"},
                  {.in = In::kExpired,
                   .at = 1,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 1s}}},
        Scenario{"an_empty_watch_ended_at_once_backs_off_but_not_after_minutes",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kEnded,
                   .at = 0.2,
                   .events = 0,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 500ms},
                  {.in = In::kElapsed,
                   .at = 1,
                   .state = S::kConnecting,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kEnded,
                   .at = 301,
                   .events = 0,
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"}}},
        Scenario{"retry_after_is_honoured_and_a_working_lease_does_not_cut_it_short",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kFailed,
                   .at = 0,
                   .retry_after = 30s,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 37500ms},  // 30 s asked, then 0.5 of half of it
                  {.in = In::kLeaseOk,
                   .at = 5,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 37500ms}}},
        Scenario{"a_lease_that_fails_then_works_keeps_the_wait_the_server_asked_for",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kFailed,
                   .at = 0,
                   .retry_after = 600s,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 750s},
                  {.in = In::kLeaseAnswered,
                   .at = 10,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 750s},
                  // A cheap PUT that gets through says little about a list.
                  {.in = In::kLeaseOk,
                   .at = 20,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 750s}}},
        Scenario{"a_working_lease_ends_a_backoff_of_our_own",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kFailed,
                   .at = 1,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 500ms},
                  {.in = In::kLeaseOk,
                   .at = 1.2,
                   .state = S::kConnecting,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kLeaseOk,
                   .at = 1.3,
                   .state = S::kConnecting,
                   .kind = Kind::kWatch,
                   .step_rv = "5"}}},
        Scenario{
            "a_lease_that_cannot_reach_the_server_tears_the_watch_down",
            {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
             // Nothing to tear down yet: the list has its own deadlines.
             {.in = In::kLeaseUnreachable, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
             {.in = In::kListed,
              .at = 0,
              .rv = "5",
              .state = S::kWatching,
              .kind = Kind::kWatch,
              .step_rv = "5"},
             {.in = In::kLeaseUnreachable,
              .at = 10,
              .state = S::kBackoff,
              .kind = Kind::kWait,
              .delay = 500ms,
              .redial = true},
             // The torn-down watch's failure is old news.
             {.in = In::kFailed,
              .at = 10,
              .stale = true,
              .state = S::kBackoff,
              .kind = Kind::kWait,
              .delay = 500ms,
              .redial = true}}},
        Scenario{"resume_redials_at_once_even_during_a_long_backoff",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kFailed,
                   .at = 0,
                   .retry_after = 600s,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 750s},
                  {.in = In::kResumed,
                   .at = 1,
                   .state = S::kConnecting,
                   .kind = Kind::kList,
                   .redial = true},
                  {.in = In::kFailed,
                   .at = 1,
                   .state = S::kBackoff,
                   .kind = Kind::kWait,
                   .delay = 500ms}}},
        Scenario{"resume_while_watching_lists_afresh_and_ignores_the_old_watch",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kResumed,
                   .at = 2,
                   .state = S::kConnecting,
                   .kind = Kind::kList,
                   .redial = true},
                  // The old watch ends as the connection is closed: stale.
                  {.in = In::kFailed,
                   .at = 2,
                   .stale = true,
                   .state = S::kConnecting,
                   .kind = Kind::kList,
                   .redial = true},
                  {.in = In::kEvent,
                   .at = 2,
                   .rv = "6",
                   .stale = true,
                   .state = S::kConnecting,
                   .kind = Kind::kList,
                   .redial = true},
                  {.in = In::kListed,
                   .at = 2.1,
                   .rv = "9",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "9"}}},
        Scenario{"stop_ends_everything_and_later_inputs_are_ignored",
                 {{.in = In::kStart, .at = 0, .state = S::kConnecting, .kind = Kind::kList},
                  {.in = In::kListed,
                   .at = 0,
                   .rv = "5",
                   .state = S::kWatching,
                   .kind = Kind::kWatch,
                   .step_rv = "5"},
                  {.in = In::kStop,
                   .at = 1,
                   .state = S::kDisconnected,
                   .kind = Kind::kIdle,
                   .redial = true},
                  {.in = In::kFailed,
                   .at = 1,
                   .stale = true,
                   .state = S::kDisconnected,
                   .kind = Kind::kIdle,
                   .redial = true},
                  {.in = In::kResumed,
                   .at = 2,
                   .state = S::kDisconnected,
                   .kind = Kind::kIdle,
                   .redial = true},
                  {.in = In::kLeaseOk,
                   .at = 2,
                   .state = S::kDisconnected,
                   .kind = Kind::kIdle,
                   .redial = true}}},
        Scenario{
            "before_start_nothing_happens",
            {{.in = In::kResumed, .at = 0, .state = S::kDisconnected, .kind = Kind::kIdle},
             {.in = In::kLeaseUnreachable, .at = 0, .state = S::kDisconnected, .kind = Kind::kIdle},
             {.in = In::kListed,
              .at = 0,
              .rv = "5",
              .state = S::kDisconnected,
              .kind = Kind::kIdle}}}),
    [](const testing::TestParamInfo<Scenario>& info) { return std::string(info.param.name); });

TEST(TetherSession, AnOutcomeForTheWrongKindOfStepIsIgnored) {
  TetherSession session;
  const auto list = session.start(at(0));
  // A watch outcome reported with the list's id: not what was asked for.
  session.watch_ended(list.id, at(1), true, 0, 0.5);
  session.watch_opened(list.id, at(1));
  EXPECT_EQ(session.state(), SessionState::kConnecting);
  EXPECT_EQ(session.step(), list);
}

TEST(TetherSession, AResumeAfterThreeDaysAsleepDoesNotWaitForTheFrozenTimer) {
  // The backoff timer runs on CLOCK_MONOTONIC, which stood still for the
  // three days: the resume, not the timer, is what ends the wait.
  TetherSession session;
  session.start(at(0));
  const auto wait = session.failed(session.step().id, at(0), {60s}, 0.5);
  ASSERT_EQ(wait.kind, Kind::kWait);
  const auto next = session.resumed(at(0.001));  // monotonic barely moved
  EXPECT_EQ(next.kind, Kind::kList);
  EXPECT_TRUE(next.redial);
  EXPECT_EQ(session.attempt(), 0u);
  // The timer fires late, for a step long gone.
  session.backoff_elapsed(wait.id, at(60));
  EXPECT_EQ(session.step(), next);
}

// A brownout: every EdgeNode request is answered 500 while the Lease, every
// 10 s, renews fine. The renewals say the server is reachable, which the
// 500s said already: the backoff runs its course (full jitter, cap 60 s; the
// jitter's unit here 0.5) instead of a retry after each renewal, which made
// 6-8 EdgeNode requests a minute in the brownout's second and third minutes.
TEST(TetherSession, ABrownoutIsRetriedAsTheBackoffSaysNotWithTheHeartbeat) {
  TetherSession session;
  session.start(at(0));
  std::vector<int> requests_per_minute(3, 0);
  double now = 0;
  double lease_at = 10;
  while (now < 180) {
    const SessionStep step = session.step();
    if (step.kind == Kind::kList || step.kind == Kind::kWatch) {
      ++requests_per_minute[static_cast<std::size_t>(now / 60)];
      session.failed(step.id, at(now),
                     SessionFailure{.retry_after = std::nullopt, .server_answered = true}, 0.5);
      continue;
    }
    ASSERT_EQ(step.kind, Kind::kWait);
    const double elapses = now + std::chrono::duration<double>(step.delay).count();
    if (lease_at < elapses) {
      now = lease_at;
      lease_at += 10;
      session.lease_result(at(now), LeaseOutcome::kRenewed, 0.5);
    } else {
      now = elapses;
      session.backoff_elapsed(step.id, at(now));
    }
  }
  EXPECT_LE(requests_per_minute[1], 2) << "second minute";
  EXPECT_LE(requests_per_minute[2], 2) << "third minute";

  // With no answer at all (the network), a renewal that gets through is the
  // news that the server is back: it ends the backoff at once.
  TetherSession unreachable;
  unreachable.start(at(0));
  const auto wait = unreachable.failed(unreachable.step().id, at(0), {}, 0.5);
  ASSERT_EQ(wait.kind, Kind::kWait);
  EXPECT_EQ(unreachable.lease_result(at(0.2), LeaseOutcome::kRenewed, 0.5).kind, Kind::kList);
}

// A follower's session hears that the session on the same server is
// watching again: a backoff after no answer ends at once; one after the
// server's answers (its 5xx, a 410 after every list) runs its course, or
// the followers would relist in step with a session in a 410 storm.
TEST(TetherSession, AnotherSessionWatchingEndsOnlyABackoffAfterNoAnswer) {
  TetherSession unreachable;
  unreachable.start(at(0));
  ASSERT_EQ(unreachable.failed(unreachable.step().id, at(0), {}, 0.5).kind, Kind::kWait);
  EXPECT_EQ(unreachable.server_back(at(1)).kind, Kind::kList);
  EXPECT_EQ(unreachable.state(), SessionState::kConnecting);

  TetherSession answered;
  answered.start(at(0));
  const auto wait =
      answered.failed(answered.step().id, at(0),
                      SessionFailure{.retry_after = std::nullopt, .server_answered = true}, 0.5);
  ASSERT_EQ(wait.kind, Kind::kWait);
  EXPECT_EQ(answered.server_back(at(1)).id, wait.id) << "the backoff goes on";
  EXPECT_EQ(answered.state(), SessionState::kBackoff);

  TetherSession watching;  // not backing off: nothing to end
  const auto listing = watching.start(at(0));
  EXPECT_EQ(watching.server_back(at(1)).id, listing.id);
}

TEST(TetherSession, StatesHaveNamesForLogs) {
  EXPECT_EQ(to_string(SessionState::kDisconnected), "Disconnected");
  EXPECT_EQ(to_string(SessionState::kConnecting), "Connecting");
  EXPECT_EQ(to_string(SessionState::kListing), "Listing");
  EXPECT_EQ(to_string(SessionState::kWatching), "Watching");
  EXPECT_EQ(to_string(SessionState::kBackoff), "Backoff");
  EXPECT_EQ(to_string(SessionState::kSuspended), "Suspended");
}

}  // namespace
}  // namespace tetherd
