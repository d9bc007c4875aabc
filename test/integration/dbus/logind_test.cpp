// The ResumeDetector against a real dbus-daemon (private, started per test)
// and a stand-in logind that owns org.freedesktop.login1 on its own thread:
// the delay inhibitor, PrepareForSleep both ways, and the merge with the
// clocks. The detector runs on the test's thread, on its io_context.

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <poll.h>
#include <sstream>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>
#include <systemd/sd-bus.h>

#include "agent/app/resume_detector.h"
#include "test/support/child_process.h"
#include "test/support/fake_clock.h"
#include "test/support/recording_log.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kDeadline = 10s;
constexpr const char* kPath = "/org/freedesktop/login1";
constexpr const char* kManager = "org.freedesktop.login1.Manager";

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

// A dbus-daemon of our own; its address is read from the pipe it prints to.
class PrivateBus {
 public:
  PrivateBus(const std::string& program, const test::TempDir& dir) {
    const std::string config = dir.file("bus.conf");
    std::ofstream(config) << "<busconfig><type>session</type><listen>unix:path="
                          << dir.file("bus.socket")
                          << "</listen><auth>EXTERNAL</auth><policy context=\"default\">"
                             "<allow send_destination=\"*\" eavesdrop=\"true\"/>"
                             "<allow eavesdrop=\"true\"/><allow own=\"*\"/></policy></busconfig>";
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return;
    fcntl(p[1], F_SETFD, 0);  // the child inherits the write end
    child_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{program, "--nofork", "--print-address=" + std::to_string(p[1]),
                                 "--config-file=" + config},
        dir.path());
    close(p[1]);
    const auto deadline = SteadyClock::now() + kDeadline;
    std::string text;
    while (text.find('\n') == std::string::npos && SteadyClock::now() < deadline) {
      pollfd pfd{p[0], POLLIN, 0};
      if (poll(&pfd, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = read(p[0], buf, sizeof buf);
      if (n <= 0) break;  // the daemon died: address() stays empty
      text.append(buf, static_cast<std::size_t>(n));
    }
    close(p[0]);
    if (const auto eol = text.find('\n'); eol != std::string::npos) address_ = text.substr(0, eol);
  }
  const std::string& address() const { return address_; }
  std::string log() const { return child_ ? child_->err() : std::string(); }
  void kill() { child_.reset(); }

 private:
  std::unique_ptr<test::ChildProcess> child_;  // killed when the test ends
  std::string address_;
};

sd_bus* connect(const std::string& address) {
  sd_bus* bus = nullptr;
  if (sd_bus_new(&bus) < 0) return nullptr;
  if (sd_bus_set_address(bus, address.c_str()) < 0 || sd_bus_set_bus_client(bus, 1) < 0 ||
      sd_bus_start(bus) < 0)
    return sd_bus_unref(bus);
  return bus;
}

struct InhibitCall {
  std::string what, who, why, mode, sender;
  int held_end = -1;  // our end of the pipe: POLLHUP once every copy of theirs is closed
};

// logind as far as tetherd knows it, on its own thread and sd-bus connection.
// Commands (emit a signal) run on that thread; calls are read under a lock.
class FakeLogind {
 public:
  explicit FakeLogind(std::string address) : address_(std::move(address)) {
    thread_ = std::thread([this] { run(); });
  }
  ~FakeLogind() {
    do_on_thread([this](sd_bus*) { stop_ = true; });
    thread_.join();
    for (const InhibitCall& c : calls_)
      close(c.held_end);
    close(wake_);
  }

  bool ready() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [this] { return ready_ || failed_; }) && ready_;
  }

  // From the owner of the name, as logind would.
  bool emit_prepare_for_sleep(bool start) {
    return do_on_thread([start](sd_bus* bus) {
      sd_bus_emit_signal(bus, kPath, kManager, "PrepareForSleep", "b", start);
      sd_bus_flush(bus);
    });
  }

  std::size_t call_count() {
    std::lock_guard lock(mu_);
    return calls_.size();
  }
  InhibitCall call(std::size_t i) {
    std::lock_guard lock(mu_);
    return calls_.at(i);
  }
  bool released(std::size_t i) {
    pollfd p{call(i).held_end, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
  }

 private:
  static int inhibit(sd_bus_message* m, void* self, sd_bus_error*) {
    auto* logind = static_cast<FakeLogind*>(self);
    const char *what, *who, *why, *mode;
    if (int r = sd_bus_message_read(m, "ssss", &what, &who, &why, &mode); r < 0) return r;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return -errno;
    {
      // Recorded before the answer, which tetherd may act on at once.
      std::lock_guard lock(logind->mu_);
      logind->calls_.push_back({what, who, why, mode, sd_bus_message_get_sender(m), p[0]});
    }
    const int r = sd_bus_reply_method_return(m, "h", p[1]);  // sends a copy
    close(p[1]);
    return r;
  }

  bool do_on_thread(std::function<void(sd_bus*)> command) {
    std::unique_lock lock(mu_);
    if (!ready_) return false;
    const std::uint64_t ticket = ++posted_;
    commands_.push_back(std::move(command));
    const std::uint64_t one = 1;
    (void)!write(wake_, &one, sizeof one);
    return cv_.wait_for(lock, kDeadline, [&] { return done_ >= ticket; });
  }

  void run() {
    static const sd_bus_vtable vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Inhibit", "ssss", "h", &FakeLogind::inhibit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END};
    sd_bus* bus = connect(address_);
    wake_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    const bool ok = bus && wake_ >= 0 &&
                    sd_bus_add_object_vtable(bus, nullptr, kPath, kManager, vtable, this) >= 0 &&
                    sd_bus_request_name(bus, "org.freedesktop.login1", 0) >= 0;
    {
      std::lock_guard lock(mu_);
      (ok ? ready_ : failed_) = true;
    }
    cv_.notify_all();
    while (ok && !stop_) {
      while (sd_bus_process(bus, nullptr) > 0) {
      }
      pollfd fds[2] = {{sd_bus_get_fd(bus), static_cast<short>(sd_bus_get_events(bus)), 0},
                       {wake_, POLLIN, 0}};
      poll(fds, 2, 1000);  // sd-bus's own timeouts matter little to a stand-in
      std::uint64_t n;
      if (read(wake_, &n, sizeof n) <= 0) continue;
      std::deque<std::function<void(sd_bus*)>> commands;
      {
        std::lock_guard lock(mu_);
        commands.swap(commands_);
      }
      for (auto& c : commands)
        c(bus);
      {
        std::lock_guard lock(mu_);
        done_ += commands.size();
      }
      cv_.notify_all();
    }
    sd_bus_flush_close_unref(bus);
  }

  std::string address_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void(sd_bus*)>> commands_;
  std::uint64_t posted_ = 0, done_ = 0;
  std::vector<InhibitCall> calls_;
  int wake_ = -1;
  bool ready_ = false, failed_ = false;
  bool stop_ = false;  // set on the thread itself
};

class LogindTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The loop's own fds (epoll, eventfd, timerfd) come with its first timer.
    boost::asio::steady_timer{io_};
    fds_at_start_ = open_fds();
    const std::string program = find_program("dbus-daemon");
    if (program.empty()) GTEST_SKIP() << "dbus-daemon is not installed";
    bus_ = std::make_unique<PrivateBus>(program, tmp_);
    ASSERT_FALSE(bus_->address().empty()) << bus_->log();
  }

  void TearDown() override {
    detector_.reset();
    logind_.reset();
    bus_.reset();
    EXPECT_EQ(open_fds(), fds_at_start_) << "an fd leaked (the inhibitor's, or the bus's)";
  }

  static std::size_t open_fds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
      ++n;
    return n;
  }

  void start_logind() {
    logind_ = std::make_unique<FakeLogind>(bus_->address());
    ASSERT_TRUE(logind_->ready());
  }

  ResumeDetector& detector(Duration grace = 3s, std::string address = {}) {
    ResumeDetectorOptions options;
    options.bus_address = address.empty() ? bus_->address() : address;
    options.sleep_grace = grace;
    detector_ = std::make_unique<ResumeDetector>(io_, clock_, log_, options);
    detector_->on_resumed([this](const ResumeEvent& e) { events_.push_back(e); });
    return *detector_;
  }

  // Starts the detector and waits until logind granted it the lock.
  void start_with_lock(ResumeDetector& d) {
    d.start();
    ASSERT_TRUE(run_until([&] { return d.stats().logind; }));
    ASSERT_EQ(logind_->call_count(), 1u);
  }

  // Runs the loop until `done` holds; false at the deadline.
  bool run_until(const std::function<bool()>& done) {
    const auto deadline = SteadyClock::now() + kDeadline;
    while (!done()) {
      if (SteadyClock::now() >= deadline) return false;
      if (io_.stopped()) io_.restart();
      io_.run_one_for(50ms);
    }
    return true;
  }

  test::TempDir tmp_;
  boost::asio::io_context io_{1};
  test::FakeClock clock_;
  test::RecordingLog log_;
  std::unique_ptr<PrivateBus> bus_;
  std::unique_ptr<FakeLogind> logind_;
  std::unique_ptr<ResumeDetector> detector_;
  std::vector<ResumeEvent> events_;
  std::size_t fds_at_start_ = 0;
};

TEST_F(LogindTest, TakesADelayInhibitorAtStart) {
  start_logind();
  ResumeDetector& d = detector();
  start_with_lock(d);
  const InhibitCall c = logind_->call(0);
  EXPECT_EQ(c.what, "sleep");
  EXPECT_EQ(c.who, "tetherd");
  EXPECT_EQ(c.why, "write a last status to the control plane before sleep");
  EXPECT_EQ(c.mode, "delay");
  EXPECT_FALSE(logind_->released(0)) << "held until a sleep";
  EXPECT_TRUE(log_.with_event("logind-unavailable").empty());
  EXPECT_TRUE(log_.with_event("logind-available").empty()) << "only after an outage";
}

TEST_F(LogindTest, SleepWaitsForTheLastStatusThenLetsGo) {
  start_logind();
  ResumeDetector& d = detector();
  std::function<void()> done;
  d.on_sleep([&](std::function<void()> f) { done = std::move(f); });
  start_with_lock(d);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(true));
  ASSERT_TRUE(run_until([&] { return done != nullptr; }));
  EXPECT_FALSE(logind_->released(0)) << "held while the last status is written";
  ASSERT_EQ(log_.with_event("suspending").size(), 1u);
  EXPECT_EQ(log_.with_event("suspending")[0].priority, Priority::kNotice);
  done();
  EXPECT_TRUE(run_until([&] { return logind_->released(0); }));
  done();  // a second call changes nothing
  EXPECT_TRUE(log_.with_event("sleep-grace-exceeded").empty());
  EXPECT_EQ(d.stats().sleeps, 1u);
}

TEST_F(LogindTest, AHandlerThatNeverFinishesLosesTheLockAfterTheGrace) {
  start_logind();
  ResumeDetector& d = detector(200ms);
  int sleeps = 0;
  d.on_sleep([&](std::function<void()>) { ++sleeps; });  // never calls done
  start_with_lock(d);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(true));
  ASSERT_TRUE(run_until([&] { return sleeps == 1; }));
  EXPECT_FALSE(logind_->released(0)) << "the grace comes first";
  EXPECT_TRUE(run_until([&] { return logind_->released(0); }));
  ASSERT_EQ(log_.with_event("sleep-grace-exceeded").size(), 1u);
  EXPECT_EQ(log_.with_event("sleep-grace-exceeded")[0].priority, Priority::kWarning);
}

TEST_F(LogindTest, ResumeIsOneEventAndANewLockIsTaken) {
  start_logind();
  ResumeDetector& d = detector();
  d.on_sleep([](std::function<void()> done) { done(); });
  start_with_lock(d);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(true));
  ASSERT_TRUE(run_until([&] { return logind_->released(0); }));
  clock_.suspend(1h);  // the clocks have moved by the time logind says so
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(false));
  ASSERT_TRUE(run_until([&] { return !events_.empty() && logind_->call_count() == 2; }));
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].source, ResumeSource::kLogind);
  EXPECT_EQ(events_[0].slept, 1h);
  EXPECT_FALSE(logind_->released(1)) << "the new lock is held for the next sleep";

  d.check_clock();  // the daemon's tick, right after
  EXPECT_EQ(events_.size(), 1u);
  const auto resumed = log_.with_event("resumed");
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_EQ(resumed[0].fields.at("RESUME_SOURCE"), "logind");
  EXPECT_EQ(resumed[0].fields.at("SLEPT_SECONDS"), "3600");
}

TEST_F(LogindTest, AClockJumpSeenFirstMergesWithLogindsResume) {
  start_logind();
  ResumeDetector& d = detector();
  d.on_sleep([](std::function<void()> done) { done(); });
  start_with_lock(d);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(true));
  ASSERT_TRUE(run_until([&] { return logind_->released(0); }));
  clock_.suspend(1h);
  d.check_clock();  // the tick ran before logind's signal arrived
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].source, ResumeSource::kClockJump);
  clock_.advance(2s);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(false));
  ASSERT_TRUE(run_until([&] { return d.stats().duplicates_merged == 1; }));
  EXPECT_EQ(events_.size(), 1u);
  EXPECT_TRUE(run_until([&] { return logind_->call_count() == 2; })) << "a new lock all the same";
}

TEST_F(LogindTest, ResumeWithoutASleepSeenIsStillAResume) {
  start_logind();
  ResumeDetector& d = detector();
  start_with_lock(d);  // as if tetherd started while the machine slept
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(false));
  ASSERT_TRUE(run_until([&] { return !events_.empty(); }));
  EXPECT_EQ(events_[0].source, ResumeSource::kLogind);
  EXPECT_EQ(events_[0].slept, Duration::zero());
  EXPECT_EQ(log_.with_event("resumed")[0].fields.count("SLEPT_SECONDS"), 0u) << "unknown";
  EXPECT_EQ(logind_->call_count(), 1u) << "the lock it holds serves the next sleep";
}

TEST_F(LogindTest, SignalsFromAnImpostorAreIgnored) {
  start_logind();
  ResumeDetector& d = detector();
  int sleeps = 0;
  d.on_sleep([&](std::function<void()> done) {
    ++sleeps;
    done();
  });
  start_with_lock(d);
  const std::string tetherd = logind_->call(0).sender;
  sd_bus* impostor = connect(bus_->address());
  ASSERT_NE(impostor, nullptr);
  // Broadcast (the daemon drops it: not from the name's owner) and sent
  // straight to tetherd (the daemon delivers it; tetherd must drop it).
  auto impersonate = [&](bool start) {
    sd_bus_emit_signal(impostor, kPath, kManager, "PrepareForSleep", "b", start);
    sd_bus_message* m = nullptr;
    sd_bus_message_new_signal(impostor, &m, kPath, kManager, "PrepareForSleep");
    sd_bus_message_set_destination(m, tetherd.c_str());
    sd_bus_message_append(m, "b", start);
    sd_bus_send(impostor, m, nullptr);
    sd_bus_message_unref(m);
    // Answered only after the daemon has routed the two signals: whatever
    // logind sends next reaches tetherd after them.
    sd_bus_message* reply = nullptr;
    sd_bus_call_method(impostor, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                       "org.freedesktop.DBus", "GetId", nullptr, &reply, "");
    sd_bus_message_unref(reply);
  };
  impersonate(false);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(true));
  ASSERT_TRUE(run_until([&] { return sleeps == 1; }));
  EXPECT_TRUE(events_.empty()) << "the impostor's resume went through";
  impersonate(true);
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(false));
  ASSERT_TRUE(run_until([&] { return !events_.empty(); }));
  EXPECT_EQ(sleeps, 1) << "the impostor's sleep went through";
  EXPECT_EQ(d.stats().sleeps, 1u);
  EXPECT_EQ(d.stats().resumes, 1u);
  sd_bus_flush_close_unref(impostor);
}

TEST_F(LogindTest, NobodyListeningIsLoggedOnceAndTheClocksStillWork) {
  ResumeDetector& d = detector(3s, "unix:path=" + tmp_.file("nobody"));
  d.start();
  ASSERT_TRUE(run_until([&] { return !log_.with_event("logind-unavailable").empty(); }));
  EXPECT_FALSE(log_.with_event("logind-unavailable")[0].fields.at("REASON").empty());
  io_.restart();
  io_.poll();
  clock_.suspend(1h);
  d.check_clock();
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].slept, 1h);
  EXPECT_EQ(log_.with_event("logind-unavailable").size(), 1u);
  EXPECT_FALSE(d.stats().logind);
}

TEST_F(LogindTest, TheBusGoingAwayIsLoggedOnceAndTheClocksStillWork) {
  start_logind();
  ResumeDetector& d = detector();
  start_with_lock(d);
  logind_.reset();
  bus_->kill();
  ASSERT_TRUE(run_until([&] { return !log_.with_event("logind-unavailable").empty(); }));
  EXPECT_FALSE(d.stats().logind);
  clock_.suspend(1h);
  d.check_clock();
  EXPECT_EQ(events_.size(), 1u);
  io_.restart();
  io_.poll();
  EXPECT_EQ(log_.with_event("logind-unavailable").size(), 1u);
}

TEST_F(LogindTest, LogindStartingLaterIsAskedForTheLockThen) {
  ResumeDetector& d = detector();
  d.start();  // the bus is there, logind is not
  ASSERT_TRUE(run_until([&] { return !log_.with_event("logind-unavailable").empty(); }));
  start_logind();
  EXPECT_TRUE(run_until([&] { return d.stats().logind; }));
  EXPECT_EQ(logind_->call_count(), 1u);
  EXPECT_EQ(log_.with_event("logind-unavailable").size(), 1u);
  EXPECT_EQ(log_.with_event("logind-available").size(), 1u);
}

// dbus restarted under a running tetherd (an upgrade of dbus, a crash):
// the connection is made again, the match with it, and logind is asked for
// a new delay lock, which then holds the next sleep as before.
TEST_F(LogindTest, ABusThatRestartsIsJoinedAgainWithANewLock) {
  start_logind();
  // The address as the system bus's is known: without the daemon's guid,
  // which a new daemon changes.
  const std::string address = bus_->address().substr(0, bus_->address().find(",guid="));
  ResumeDetector& d = detector(3s, address);
  start_with_lock(d);
  logind_.reset();
  bus_->kill();
  ASSERT_TRUE(run_until([&] { return !log_.with_event("logind-unavailable").empty(); }));
  EXPECT_FALSE(d.stats().logind);

  // The same address, a new daemon and a new logind on it.
  bus_ = std::make_unique<PrivateBus>(find_program("dbus-daemon"), tmp_);
  ASSERT_FALSE(bus_->address().empty()) << bus_->log();
  start_logind();
  ASSERT_TRUE(run_until([&] { return d.stats().logind; })) << "never joined the new bus";
  EXPECT_EQ(logind_->call_count(), 1u) << "a new delay lock from the new logind";
  EXPECT_EQ(log_.with_event("logind-unavailable").size(), 1u);
  EXPECT_EQ(log_.with_event("logind-available").size(), 1u);

  // And it works: the next sleep waits for the handler, then lets go.
  std::function<void()> done;
  d.on_sleep([&](std::function<void()> f) { done = std::move(f); });
  ASSERT_TRUE(logind_->emit_prepare_for_sleep(true));
  ASSERT_TRUE(run_until([&] { return done != nullptr; }));
  EXPECT_FALSE(logind_->released(0)) << "the new lock holds the sleep";
  done();
  EXPECT_TRUE(run_until([&] { return logind_->released(0); }));
}

}  // namespace
}  // namespace tetherd
