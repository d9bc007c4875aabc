#include "agent/adapters/journal_log.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "test/support/notify_socket.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;

std::string capture(const std::function<void(JournalLog&)>& body) {
  char* buf = nullptr;
  std::size_t size = 0;
  std::FILE* f = open_memstream(&buf, &size);
  {
    JournalLog log(JournalLog::Sink::kStderr, f);
    body(log);
  }
  std::fclose(f);
  std::string out(buf, size);
  std::free(buf);
  return out;
}

TEST(JournalLog, StderrLinesCarryPriorityPrefixEventAndFields) {
  const std::string out = capture([](JournalLog& log) {
    log.info("started", "tetherd started", {{"NODE", "edge-1"}});
    log.error("config-rejected", "bad: x", {{"CONFIG", "/etc/tetherd/tetherd.yaml"}});
    log.warning("w", "two\nlines", {{"WHY", "has space"}, {"EMPTY", ""}});
  });
  EXPECT_EQ(out,
            "<6>tetherd started [TETHERD_EVENT=started NODE=edge-1]\n"
            "<3>bad: x [TETHERD_EVENT=config-rejected CONFIG=/etc/tetherd/tetherd.yaml]\n"
            "<4>two lines [TETHERD_EVENT=w WHY=\"has space\" EMPTY=\"\"]\n");
}

TEST(JournalLog, DetectsJournaldOnlyWhenJournalStreamIsStderr) {
  struct stat st {};
  ASSERT_EQ(fstat(STDERR_FILENO, &st), 0);
  const std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", mine.c_str(), 1);
  EXPECT_EQ(JournalLog::detect_sink(), JournalLog::Sink::kJournal);
  // Inherited from a parent whose stderr was the journal, but ours is not.
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  setenv("JOURNAL_STREAM", other.c_str(), 1);
  EXPECT_EQ(JournalLog::detect_sink(), JournalLog::Sink::kStderr);
  setenv("JOURNAL_STREAM", "garbage", 1);
  EXPECT_EQ(JournalLog::detect_sink(), JournalLog::Sink::kStderr);
  unsetenv("JOURNAL_STREAM");
  EXPECT_EQ(JournalLog::detect_sink(), JournalLog::Sink::kStderr);
}

// The journal sink speaks journald's native protocol to
// /run/systemd/journal/socket. In a private mount namespace, a tmpfs on /run
// lets this test own that socket and read the record journald would get.
TEST(JournalLog, JournalSinkSendsStructuredFields) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for a private mount namespace";
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipefd[0]);
    std::string got = "setup failed";
    if (unshare(CLONE_NEWNS) == 0 &&
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0 &&
        mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") == 0) {
      std::filesystem::create_directories("/run/systemd/journal");
      test::NotifySocket journal("/run/systemd/journal/socket");
      JournalLog log(JournalLog::Sink::kJournal);
      log.notice("firewall-applied", "firewall applied: 3 sources",
                 {{"CONTROL_PLANE", "https://192.0.2.1:6443"}, {"SOURCES", "3"}});
      got = journal.receive(5s).value_or("nothing received");
    }
    (void)!write(pipefd[1], got.data(), got.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = read(pipefd[0], buf, sizeof buf)) > 0;)
    got.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got == "setup failed") GTEST_SKIP() << "mount namespaces unavailable here";
  EXPECT_EQ(got,
            "MESSAGE=firewall applied: 3 sources\n"
            "PRIORITY=5\n"
            "SYSLOG_IDENTIFIER=tetherd\n"
            "TETHERD_EVENT=firewall-applied\n"
            "CONTROL_PLANE=https://192.0.2.1:6443\n"
            "SOURCES=3\n");
}

}  // namespace
}  // namespace tetherd
