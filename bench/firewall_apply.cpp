// Time to apply N sources with tetherd's nftables backend, against a raw
// `nft -f` of the same ruleset, and the cost of a one-source update on top
// of N; then the ufw backend applying the same N (real ufw, enabled in the
// private namespace with a bind-mounted copy of /etc/ufw), one run per N,
// until one passes 60 s. Runs in private network and mount namespaces
// (needs root); prints one table.
//
//   build/release/bench/firewall_apply [--no-ufw] [N ...]   (default 10 .. 100000)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sched.h>
#include <string>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "agent/app/firewall_keeper.h"
#include "firewall/nftables_backend.h"
#include "firewall/ufw_backend.h"

namespace {

using namespace tetherd::firewall;
using Clock = std::chrono::steady_clock;

// N sources that never merge: every other address of 10.0.0.0/8.
Allowlist make_allowlist(std::size_t n, std::uint32_t salt = 0) {
  Allowlist a;
  a.ports = {4143, 4191, 6443};
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t v = 0x0A000001u + 2u * static_cast<std::uint32_t>(i) + salt * 2u * 200000u;
    a.sources.add(Cidr{boost::asio::ip::address_v4(v), 32});
  }
  return a;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// ufw with its configuration from a copy in `dir`, bind-mounted over the
// real one in this process's private mount namespace; enabled, default deny.
bool sandbox_ufw(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::exists("/usr/sbin/ufw")) return false;
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy("/etc/ufw", dir + "/etc-ufw", fs::copy_options::recursive);
  fs::copy_file("/etc/default/ufw", dir + "/default-ufw");
  std::ofstream(dir + "/etc-ufw/sysctl.conf", std::ios::trunc) << "";  // host-wide sysctls
  if (unshare(CLONE_NEWNS) != 0 || mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
      mount((dir + "/etc-ufw").c_str(), "/etc/ufw", nullptr, MS_BIND, nullptr) ||
      mount((dir + "/default-ufw").c_str(), "/etc/default/ufw", nullptr, MS_BIND, nullptr)) {
    std::perror("ufw sandbox");
    return false;
  }
  return tetherd::run_ufw({"--force", "enable"}).has_value();
}

// Back to no rules of tetherd's: the pristine rule files, reloaded.
bool reset_ufw(const std::string& dir) {
  namespace fs = std::filesystem;
  for (const char* f : {"user.rules", "user6.rules"}) {
    fs::copy_file(dir + "/pristine/" + f, std::string("/etc/ufw/") + f,
                  fs::copy_options::overwrite_existing);
  }
  return tetherd::run_ufw({"reload"}).has_value();
}

int runs_for(std::size_t n) {
  return n >= 100000 ? 3 : n >= 10000 ? 5 : 11;
}

}  // namespace

int main(int argc, char** argv) {
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET) (run as root)");
    return 1;
  }
  std::vector<std::size_t> sizes;
  bool with_ufw = true;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--no-ufw") {
      with_ufw = false;  // the nftables columns alone, in seconds
      continue;
    }
    sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  }
  if (sizes.empty()) sizes = {10, 100, 1000, 10000, 100000};

  NftablesBackend backend;
  const std::string script_path = "/tmp/tetherd-bench-ruleset.nft";
  const std::string ufw_dir = "/tmp/tetherd-bench-ufw";
  bool ufw = with_ufw && sandbox_ufw(ufw_dir);
  if (ufw) {
    std::filesystem::copy("/etc/ufw", ufw_dir + "/pristine",
                          std::filesystem::copy_options::recursive);
  }
  UfwBackend ufw_backend({4143, 4191, 6443}, tetherd::run_ufw);
  std::printf(
      "| sources | tetherd apply | raw `nft -f` | ratio | update 1 source on top "
      "| ufw backend apply | ufw / raw `nft -f` |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t n : sizes) {
    const Allowlist a = make_allowlist(n);
    std::ofstream(script_path) << render_replace(a);

    std::vector<double> ours, raw, update;
    for (int r = 0; r < runs_for(n); ++r) {
      // tetherd: a first apply into an empty namespace, as at boot.
      if (!backend.remove()) return 1;
      auto start = Clock::now();
      if (!backend.apply(a)) return 1;
      ours.push_back(ms_since(start));

      // An update that swaps one source: the steady-state cost.
      Allowlist b = a;
      b.sources.add(*parse_cidr("192.0.2.1"));
      start = Clock::now();
      if (!backend.apply(b)) return 1;
      update.push_back(ms_since(start));

      if (!backend.remove()) return 1;
      start = Clock::now();
      const int rc = std::system(("nft -f " + script_path).c_str());
      raw.push_back(ms_since(start));
      if (rc != 0) return 1;
    }
    const double o = median(ours), w = median(raw), u = median(update);
    std::string ufw_cells = "| (over 60 s at a smaller N) | |";
    if (ufw) {
      auto start = Clock::now();
      if (!ufw_backend.apply(a)) return 1;
      const double t = ms_since(start);
      char cells[96];
      std::snprintf(cells, sizeof cells, "| %.0f ms | %.0fx |", t, t / w);
      ufw_cells = cells;
      ufw = t < 60000 && reset_ufw(ufw_dir);
    } else if (!with_ufw) {
      ufw_cells = "| (not measured: --no-ufw) | |";
    } else if (!std::filesystem::exists("/usr/sbin/ufw")) {
      ufw_cells = "| (ufw not installed) | |";
    }
    std::printf("| %zu | %.2f ms | %.2f ms | %.2fx | %.2f ms %s\n", n, o, w, o / w, u,
                ufw_cells.c_str());
    std::fflush(stdout);
  }
  std::remove(script_path.c_str());
  std::filesystem::remove_all(ufw_dir);
  return 0;
}
