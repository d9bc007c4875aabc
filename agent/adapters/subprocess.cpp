#include "agent/adapters/subprocess.h"

#define BOOST_PROCESS_USE_STD_FS 1
#include <array>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/process/args.hpp>
#include <boost/process/async_pipe.hpp>
#include <boost/process/child.hpp>
#include <boost/process/env.hpp>
#include <boost/process/environment.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/io.hpp>

#include "agent/core/duration.h"

namespace tetherd {
namespace {

namespace bp = boost::process;

// Reads a pipe to its end into `out`, stopping (and noting it) at `max`.
class BoundedReader {
 public:
  BoundedReader(bp::async_pipe& pipe, std::string& out, std::size_t max)
      : pipe_(pipe), out_(out), max_(max) {}
  void start() {
    pipe_.async_read_some(boost::asio::buffer(chunk_),
                          [this](const boost::system::error_code& ec, std::size_t n) {
                            out_.append(chunk_.data(), n);
                            if (out_.size() > max_) {
                              overflow_ = true;
                              return;
                            }
                            if (ec) {
                              done_ = true;  // EOF: the child closed its end
                              return;
                            }
                            start();
                          });
  }
  bool done() const { return done_; }
  bool overflow() const { return overflow_; }

 private:
  bp::async_pipe& pipe_;
  std::string& out_;
  std::size_t max_;
  std::array<char, 16384> chunk_{};
  bool done_ = false;
  bool overflow_ = false;
};

}  // namespace

Result<CommandOutput> run_command(const std::vector<std::string>& argv, CommandLimits limits) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    return make_error("run_command needs an absolute path");
  const std::string name = argv[0];
  boost::asio::io_context io(1);
  bp::async_pipe out_pipe(io), err_pipe(io);
  bp::environment env = boost::this_process::environment();
  for (const char* v : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS",
                        "LISTEN_PID", "LISTEN_FDNAMES"}) {
    env.erase(v);
  }
  std::error_code start_ec;
  bp::child child(bp::exe = name, bp::args = std::vector<std::string>(argv.begin() + 1, argv.end()),
                  bp::env = env, bp::std_in<bp::null, bp::std_out> out_pipe, bp::std_err > err_pipe,
                  start_ec);
  if (start_ec) return make_error("cannot run " + name + ": " + start_ec.message());

  CommandOutput result;
  BoundedReader out(out_pipe, result.out, limits.max_output);
  BoundedReader err(err_pipe, result.err, limits.max_output);
  out.start();
  err.start();
  const auto deadline = std::chrono::steady_clock::now() + limits.timeout;
  while (!(out.done() && err.done()) && !out.overflow() && !err.overflow() &&
         std::chrono::steady_clock::now() < deadline) {
    if (io.run_one_until(deadline) == 0) break;
  }
  const bool finished = out.done() && err.done();
  if (!finished) {
    std::error_code ignored;
    child.terminate(ignored);  // SIGKILL
  }
  std::error_code wait_ec;
  child.wait(wait_ec);
  if (out.overflow() || err.overflow()) {
    return make_error(name + " wrote more than " + std::to_string(limits.max_output) +
                      " bytes of output; stopped");
  }
  if (!finished) {
    return make_error(name + " did not finish within " + format_duration(limits.timeout) +
                      "; killed");
  }
  result.exit_code = child.exit_code();
  return result;
}

}  // namespace tetherd
