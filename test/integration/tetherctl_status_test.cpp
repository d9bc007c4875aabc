// The real tetherctl binary's `status` against a stand-in for tetherd's
// local socket: a unix socket in a temp dir, served by a thread of the test
// with one canned reply per connection (a fixture document, garbage, an
// error, or silence). Colour is checked on a real pseudo-terminal.

#include <algorithm>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <grp.h>
#include <map>
#include <mutex>
#include <poll.h>
#include <pty.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "test/support/child_process.h"
#include "test/support/temp_dir.h"

namespace tetherd {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kDeadline = 10s;
const std::string kFixtures = TETHERD_SOURCE_DIR "/test/fixtures/status/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string http_reply(const std::string& status_line, const std::string& body,
                       const std::string& type = "application/json") {
  return "HTTP/1.1 " + status_line + "\r\nContent-Type: " + type +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
         body;
}

int listening_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  path.copy(a.sun_path, sizeof a.sun_path - 1);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 8) != 0)
    std::abort();
  return fd;
}

// tetherd's socket as far as tetherctl can tell: it reads each request's
// head, then sends `reply` and closes, or (silent) holds the connection
// open and says nothing until the test ends.
class StatusSocket {
 public:
  StatusSocket(std::string path, std::string reply, bool silent = false)
      : path_(std::move(path)), reply_(std::move(reply)), silent_(silent) {
    listener_ = listening_socket(path_);
    if (::pipe2(stop_, O_CLOEXEC) != 0) std::abort();
    thread_ = std::thread([this] { serve(); });
  }
  ~StatusSocket() {
    ::close(stop_[1]);
    thread_.join();
    for (int fd : held_)
      ::close(fd);
    ::close(stop_[0]);
    ::close(listener_);
  }
  StatusSocket(const StatusSocket&) = delete;
  StatusSocket& operator=(const StatusSocket&) = delete;

  const std::string& path() const { return path_; }
  std::string last_request() const {
    std::lock_guard lock(mutex_);
    return last_request_;
  }

 private:
  void serve() {
    for (;;) {
      pollfd p[2] = {{listener_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents != 0) return;
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      if (silent_) {
        held_.push_back(fd);
        continue;
      }
      answer(fd);
      ::close(fd);
    }
  }

  void answer(int fd) {
    // Bounded: a client that sends no whole head does not hold the thread.
    const timeval five_seconds{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
    std::string head;
    char buf[1024];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16384) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      head.append(buf, static_cast<std::size_t>(n));
    }
    {
      std::lock_guard lock(mutex_);
      last_request_ = head;
    }
    std::string_view rest = reply_;
    while (!rest.empty()) {
      const ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n <= 0) return;  // the client gave up (a body over its limit)
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  std::string path_;
  std::string reply_;
  bool silent_;
  int listener_ = -1;
  int stop_[2] = {-1, -1};
  std::vector<int> held_;
  mutable std::mutex mutex_;
  std::string last_request_;
  std::thread thread_;
};

struct CtlRun {
  int code;
  std::string out;
  std::string err;
};

// How to start tetherctl when its stdout is not a plain file.
struct Spawn {
  std::map<std::string, std::string> env;
  std::vector<std::string> unset;
  bool terminal = false;  // stdout on a pseudo-terminal
  bool as_nobody = false;
};

// Reads every fd to its end (a pty master's end is EIO, once the child and
// all it started have closed the slave) or until `deadline`.
std::vector<std::string> read_all(std::vector<int> fds, Clock::time_point deadline) {
  std::vector<std::string> out(fds.size());
  for (;;) {
    std::vector<pollfd> p;
    for (int fd : fds) {
      if (fd >= 0) p.push_back({fd, POLLIN, 0});
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (p.empty() || left <= 0ms ||
        ::poll(p.data(), p.size(), static_cast<int>(left.count())) <= 0) {
      for (int fd : fds) {
        if (fd >= 0) ::close(fd);
      }
      return out;
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i] < 0) continue;
      pollfd pi{fds[i], POLLIN, 0};
      if (::poll(&pi, 1, 0) != 1) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i], buf, sizeof buf);
      if (n > 0) {
        out[i].append(buf, static_cast<std::size_t>(n));
      } else {
        ::close(fds[i]);
        fds[i] = -1;
      }
    }
  }
}

class TetherctlStatus : public ::testing::Test {
 protected:
  // tetherctl with its stdout and stderr captured to files (a pipe, for
  // isatty's purpose): what a script sees.
  CtlRun ctl(std::vector<std::string> args) {
    const std::string dir = tmp_.file("ctl" + std::to_string(runs_++));
    std::filesystem::create_directories(dir);
    args.insert(args.begin(), TETHERCTL_BINARY);
    test::ChildProcess p(args, dir);
    const int code = p.wait(kDeadline);
    return {code, p.out(), p.err()};
  }

  // tetherctl started by hand, for a terminal or another user.
  CtlRun spawn(std::vector<std::string> args, const Spawn& how) {
    int out_read = -1, out_write = -1, err[2];
    if (how.terminal) {
      if (::openpty(&out_read, &out_write, nullptr, nullptr, nullptr) != 0) std::abort();
      ::fcntl(out_read, F_SETFD, FD_CLOEXEC);
      ::fcntl(out_write, F_SETFD, FD_CLOEXEC);
    } else {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) std::abort();
      out_read = p[0], out_write = p[1];
    }
    if (::pipe2(err, O_CLOEXEC) != 0) std::abort();
    args.insert(args.begin(), TETHERCTL_BINARY);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    // The environment is made before fork: the child only calls what is
    // safe after a fork in a process with threads.
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry = *e;
      const std::string name = entry.substr(0, entry.find('='));
      const bool dropped = how.env.contains(name) ||
                           std::find(how.unset.begin(), how.unset.end(), name) != how.unset.end();
      if (!dropped) env_text.push_back(entry);
    }
    for (const auto& [k, v] : how.env)
      env_text.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& e : env_text)
      envp.push_back(e.data());
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out_write, STDOUT_FILENO);
      ::dup2(err[1], STDERR_FILENO);
      if (how.as_nobody &&
          (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0))
        ::_exit(121);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out_write);
    ::close(err[1]);
    const auto deadline = Clock::now() + kDeadline;
    const auto got = read_all({out_read, err[0]}, deadline);
    // Its output ended; the exit follows, within what is left of the deadline.
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    pollfd p{pidfd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const bool exited = ::poll(&p, 1, static_cast<int>(std::max(left, 0ms).count())) == 1;
    ::close(pidfd);
    if (!exited) ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!exited) return {-1, got[0], got[1]};
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), got[0], got[1]};
  }

  std::string socket_path() const { return tmp_.file("tetherd.sock"); }

  test::TempDir tmp_;
  int runs_ = 0;
};

TEST_F(TetherctlStatus, ExitsZeroWhenReadyAndDrawsThePlainTable) {
  StatusSocket tetherd(socket_path(), http_reply("200 OK", slurp(kFixtures + "all_true.json")));
  const auto r = ctl({"status", "--socket", tetherd.path()});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("node           desktop\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\nReady                 True     AllConditionsTrue   "), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\nlinkerd-identity-issuer      issuer        in "), std::string::npos);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "colour into a pipe";
  EXPECT_EQ(tetherd.last_request().rfind("GET /v1/status HTTP/1.1\r\n", 0), 0u)
      << tetherd.last_request();
}

TEST_F(TetherctlStatus, ExitsOneWhenNotReady) {
  StatusSocket tetherd(socket_path(), http_reply("200 OK", slurp(kFixtures + "not_ready.json")));
  const auto r = ctl({"--socket", tetherd.path(), "status"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find("\nReady                 False     K3sNotReady   "), std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
}

TEST_F(TetherctlStatus, JsonIsTheDocumentAsServed) {
  for (const std::string name : {"all_true", "not_ready", "standalone"}) {
    const std::string document = slurp(kFixtures + name + ".json");
    StatusSocket tetherd(tmp_.file(name + ".sock"), http_reply("200 OK", document));
    const auto r = ctl({"status", "-o", "json", "--socket", tetherd.path()});
    EXPECT_EQ(r.code, name == "all_true" ? 0 : 1) << name << r.err;
    EXPECT_EQ(boost::json::parse(r.out), boost::json::parse(document)) << name;
  }
}

TEST_F(TetherctlStatus, ColoursOnATerminalUnlessAskedNotTo) {
  StatusSocket tetherd(socket_path(), http_reply("200 OK", slurp(kFixtures + "not_ready.json")));
  const std::vector<std::string> args = {"status", "--socket", tetherd.path()};

  const auto coloured =
      spawn(args, {.env = {{"TERM", "xterm-256color"}}, .unset = {"NO_COLOR"}, .terminal = true});
  EXPECT_EQ(coloured.code, 1) << coloured.err;
  EXPECT_NE(coloured.out.find("\x1b[31mFalse\x1b[0m"), std::string::npos) << coloured.out;
  EXPECT_NE(coloured.out.find("\x1b[32mTrue\x1b[0m"), std::string::npos);
  EXPECT_NE(coloured.out.find("\x1b[33min 11d\x1b[0m"), std::string::npos);

  // no-color.org: an empty NO_COLOR does not count.
  const auto empty = spawn(args, {.env = {{"TERM", "xterm"}, {"NO_COLOR", ""}}, .terminal = true});
  EXPECT_NE(empty.out.find('\x1b'), std::string::npos) << empty.out;

  for (const auto& env : std::vector<std::map<std::string, std::string>>{
           {{"TERM", "xterm"}, {"NO_COLOR", "1"}}, {{"TERM", "dumb"}}}) {
    const auto plain = spawn(args, {.env = env, .unset = {"NO_COLOR"}, .terminal = true});
    EXPECT_EQ(plain.code, 1) << plain.err;
    EXPECT_NE(plain.out.find("K3sNotReady"), std::string::npos) << plain.out;
    EXPECT_EQ(plain.out.find('\x1b'), std::string::npos) << plain.out;
  }
}

TEST_F(TetherctlStatus, SaysTetherdIsNotRunningWhenThereIsNoSocket) {
  const auto r = ctl({"status", "--socket", socket_path()});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "tetherctl: tetherd is not running (no " + socket_path() + ")\n");
}

TEST_F(TetherctlStatus, SaysTetherdIsNotRunningWhenNothingListens) {
  ::close(listening_socket(socket_path()));  // the file stays, as after a crash
  const auto r = ctl({"status", "--socket", socket_path()});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err,
            "tetherctl: tetherd is not running (nothing listens on " + socket_path() + ")\n");
}

TEST_F(TetherctlStatus, DefaultsToTheSystemSocket) {
  if (std::filesystem::exists("/run/tetherd/tetherd.sock"))
    GTEST_SKIP() << "a tetherd runs on this machine";
  const auto r = ctl({"status"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "tetherctl: tetherd is not running (no /run/tetherd/tetherd.sock)\n");
}

TEST_F(TetherctlStatus, HintsAtSudoWhenTheSocketIsRoots) {
  StatusSocket tetherd(socket_path(), http_reply("200 OK", slurp(kFixtures + "all_true.json")));
  ::chmod(tetherd.path().c_str(), 0600);
  // As root, the permission is tested as the user nobody; otherwise the
  // socket is made unwritable, which is what denies a connect.
  const bool root = ::geteuid() == 0;
  if (!root) ::chmod(tetherd.path().c_str(), 0);
  const auto r = spawn({"status", "--socket", tetherd.path()}, {.as_nobody = root});
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("run tetherctl with sudo"), std::string::npos) << r.err;
}

struct BadAnswer {
  std::string reply;
  std::string error;  // a part of what tetherctl says on stderr
};

TEST_F(TetherctlStatus, ExitsTwoOnAnAnswerItCannotUnderstand) {
  const std::vector<BadAnswer> cases = {
      {"this is not HTTP at all\r\n\r\n", "tetherctl: tetherd's answer is not HTTP/1.1"},
      {"", "tetherctl: tetherd closed the connection without an answer"},
      {http_reply("200 OK", "<html>hello</html>", "text/html"),
       "tetherctl: cannot understand tetherd's answer: the status document is not JSON: "},
      {http_reply("200 OK", R"({"nodeName": "n", "status": {"conditions": 1}})"),
       "tetherctl: cannot understand tetherd's answer: status.conditions: expected an array, "
       "found a number\n"},
      {http_reply("503 Service Unavailable", "starting\n", "text/plain"),
       "tetherctl: tetherd answered 503 Service Unavailable: starting\n"},
      {http_reply("404 Not Found", std::string(1000, 'x'), "text/plain"),
       "tetherctl: tetherd answered 404 Not Found: " + std::string(200, 'x') + "...\n"},
      {http_reply("200 OK", std::string((1 << 20) + 1, ' ')),
       "tetherctl: tetherd's answer is larger than 1048576 bytes\n"},
  };
  int i = 0;
  for (const BadAnswer& bad : cases) {
    StatusSocket tetherd(tmp_.file(std::to_string(i++) + ".sock"), bad.reply);
    const auto r = ctl({"status", "--socket", tetherd.path()});
    EXPECT_EQ(r.code, 2) << bad.reply.substr(0, 80);
    EXPECT_EQ(r.out, "");
    EXPECT_NE(r.err.find(bad.error), std::string::npos) << r.err;
  }
}

TEST_F(TetherctlStatus, GivesUpOnASilentTetherdAtTheDeadline) {
  StatusSocket tetherd(socket_path(), "", /*silent=*/true);
  const auto start = Clock::now();
  const auto r = ctl({"status", "--timeout", "300ms", "--socket", tetherd.path()});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "tetherctl: tetherd did not answer within 300ms (" + tetherd.path() + ")\n");
  EXPECT_LT(Clock::now() - start, 5s);
}

TEST_F(TetherctlStatus, UsageNamesTheCommandAndItsOptions) {
  const auto help = ctl({"--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("  status "), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("--socket PATH"), std::string::npos);
  EXPECT_NE(help.out.find("NO_COLOR"), std::string::npos);
  EXPECT_EQ(ctl({"status", "--timeout", "soon"}).code, 64);
  EXPECT_EQ(ctl({"status", "--timeout", "0s"}).code, 64);
  EXPECT_EQ(ctl({"status", "-o", "yaml"}).code, 64);
}

}  // namespace
}  // namespace tetherd
