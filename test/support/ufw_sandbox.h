#pragma once
// Real ufw, confined to a network namespace and to a copy of its
// configuration: each run is `ip netns exec NS` (a private mount namespace
// per run) with /etc/ufw and /etc/default/ufw bind-mounted from a temporary
// copy, so the host's ufw and firewall are never touched. The copy's sysctl
// file is emptied: ufw would otherwise write the host-wide sysctls on enable.

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "agent/adapters/subprocess.h"
#include "test/support/temp_dir.h"

namespace tetherd::test {

class UfwSandbox {
 public:
  UfwSandbox(std::string netns, const TempDir& tmp)
      : netns_(std::move(netns)), etc_(tmp.file("etc-ufw")), defaults_(tmp.file("default-ufw")) {
    namespace fs = std::filesystem;
    fs::copy("/etc/ufw", etc_, fs::copy_options::recursive);
    fs::copy_file("/etc/default/ufw", defaults_);
    std::ofstream(etc_ + "/sysctl.conf", std::ios::trunc) << "";
  }

  bool available() const { return std::filesystem::exists("/usr/sbin/ufw"); }

  // The sandbox's /etc/default/ufw and /etc/ufw/ufw.conf, as the backend
  // reads them.
  const std::string& defaults_path() const { return defaults_; }
  std::string conf_path() const { return etc_ + "/ufw.conf"; }
  // Sets KEY=value in one of them (IPV6=no), as an admin's edit would.
  static void set_in(const std::string& path, const std::string& key, const std::string& value) {
    std::ifstream in(path);
    std::string text, line;
    while (std::getline(in, line))
      if (!line.starts_with(key + "=")) text += line + "\n";
    std::ofstream(path, std::ios::trunc) << text << key << "=" << value << "\n";
  }
  void set_default(const std::string& key, const std::string& value) const {
    set_in(defaults_, key, value);
  }

  // The argv that runs `program args...` inside the sandbox.
  std::vector<std::string> argv(const std::vector<std::string>& command) const {
    std::vector<std::string> out = {
        "/usr/bin/ip",
        "netns",
        "exec",
        netns_,
        "/bin/sh",
        "-c",
        "mount --bind \"$1\" /etc/ufw && mount --bind \"$2\" /etc/default/ufw && shift 2 && "
        "exec \"$@\"",
        "ufw-sandbox",
        etc_,
        defaults_};
    out.insert(out.end(), command.begin(), command.end());
    return out;
  }

  // Runs ufw in the sandbox as the backend's runner does.
  Result<std::string> ufw(const std::vector<std::string>& args) const {
    std::vector<std::string> command = {"/usr/sbin/ufw"};
    command.insert(command.end(), args.begin(), args.end());
    auto r = run_command(argv(command), {.timeout = std::chrono::seconds(60)});
    if (!r) return r.error();
    if (r->exit_code != 0) return make_error(r->err.empty() ? r->out : r->err);
    return Result<std::string>(boost::system::in_place_value, std::move(r->out));
  }

 private:
  std::string netns_;
  std::string etc_;
  std::string defaults_;
};

}  // namespace tetherd::test
