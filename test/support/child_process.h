#pragma once
// Runs a program as a child process with extra environment variables, its
// stdout and stderr captured to files, optionally in a fresh network
// namespace. For tests of the real binaries.

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sstream>
#include <string>
#include <string_view>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace tetherd::test {

struct ChildOptions {
  std::map<std::string, std::string> env;
  bool watchdog_pid_is_child = false;  // sets WATCHDOG_PID to the child's own pid
  bool new_network_namespace = false;
};

class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, const std::string& output_dir,
               ChildOptions options = {})
      : stdout_path_(output_dir + "/stdout"), stderr_path_(output_dir + "/stderr") {
    // Everything the child needs is made before fork(): the test's threads
    // (an API server's, an io_context's) may hold the allocator's lock at
    // that moment, and a child that allocates would wait for it forever
    // (seen under ASan: kubectl never started). After fork() the child makes
    // only async-signal-safe calls.
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string_view entry(*e);
      const std::string name(entry.substr(0, entry.find('=')));
      if (!options.env.contains(name) && !(options.watchdog_pid_is_child && name == "WATCHDOG_PID"))
        env_text.emplace_back(entry);
    }
    for (const auto& [k, v] : options.env)
      env_text.push_back(k + "=" + v);
    // WATCHDOG_PID is the child's own pid, written into room made here.
    constexpr std::string_view kWatchdog = "WATCHDOG_PID=";
    char* watchdog_digits = nullptr;
    if (options.watchdog_pid_is_child)
      env_text.push_back(std::string(kWatchdog) + std::string(20, '\0'));
    std::vector<char*> args;
    for (auto& a : argv)
      args.push_back(a.data());
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env_text)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    if (options.watchdog_pid_is_child) watchdog_digits = env_text.back().data() + kWatchdog.size();

    pid_ = fork();
    if (pid_ != 0) return;
    const int out = open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    if (watchdog_digits != nullptr) write_decimal(getpid(), watchdog_digits);
    if (options.new_network_namespace && unshare(CLONE_NEWNET) != 0) _exit(120);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int signo) const { kill(pid_, signo); }

  // Waits for the exit; returns the exit code, 128+signal if killed by
  // another signal, or -1 if it was still running at the deadline (then it
  // is killed).
  int wait(std::chrono::milliseconds timeout) {
    // A pidfd becomes readable when the child exits: wait on it with poll()
    // instead of polling waitpid in a loop.
    const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      const int ready = poll(&p, 1, static_cast<int>(timeout.count()));
      close(pidfd);
      if (ready != 1) kill(pid_, SIGKILL);
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string out() const { return slurp(stdout_path_); }
  std::string err() const { return slurp(stderr_path_); }
  // Whether stderr (stdout) shows `text` before the deadline: for what the child
  // logs after it is ready, from work it does off its event loop. Woken by
  // the file's changes (inotify), not by polling.
  // `times`: shows it at least that many times.
  bool err_shows(std::string_view text, std::chrono::milliseconds timeout, int times = 1) const {
    return shows(stderr_path_, text, timeout, times);
  }
  bool out_shows(std::string_view text, std::chrono::milliseconds timeout, int times = 1) const {
    return shows(stdout_path_, text, timeout, times);
  }

 private:
  // Async-signal-safe: digits of a pid into `to`, which has room for 20.
  static void write_decimal(pid_t value, char* to) {
    char reversed[20];
    int n = 0;
    do {
      reversed[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value > 0 && n < 19);
    for (int i = 0; i < n; ++i)
      to[i] = reversed[n - 1 - i];
    to[n] = '\0';
  }

  static int count(const std::string& haystack, std::string_view text) {
    int n = 0;
    for (auto at = haystack.find(text); at != std::string::npos;
         at = haystack.find(text, at + text.size()))
      ++n;
    return n;
  }

  static bool shows(const std::string& path, std::string_view text,
                    std::chrono::milliseconds timeout, int times) {
    const int watch = inotify_init1(IN_CLOEXEC);
    // The child may not have made the file yet: then look again every 50 ms
    // until it has, and watch it from then on.
    bool watching = watch >= 0 && inotify_add_watch(watch, path.c_str(), IN_MODIFY) >= 0;
    const auto until = std::chrono::steady_clock::now() + timeout;
    bool found = false;
    while (!(found = count(slurp(path), text) >= times) && watch >= 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      if (!watching && (watching = inotify_add_watch(watch, path.c_str(), IN_MODIFY) >= 0))
        continue;  // look once more: it may have been written before the watch
      pollfd p{watch, POLLIN, 0};
      if (poll(&p, 1,
               static_cast<int>(watching ? left.count() : std::min<long>(left.count(), 50))) > 0) {
        char events[4096];
        (void)read(watch, events, sizeof events);
      }
    }
    if (watch >= 0) close(watch);
    return found;
  }

  static std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  std::string stdout_path_;
  std::string stderr_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

}  // namespace tetherd::test
