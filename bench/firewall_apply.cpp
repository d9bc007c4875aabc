// Time to apply N sources with tetherd's nftables backend, against a raw
// `nft -f` of the same ruleset, and the cost of a one-source update on top
// of N. Runs in a private network namespace (needs root); prints one table.
//
//   build/release/bench/firewall_apply [N ...]     (default 10 .. 100000)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sched.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "firewall/nftables_backend.h"

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
  for (int i = 1; i < argc; ++i)
    sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {10, 100, 1000, 10000, 100000};

  NftablesBackend backend;
  const std::string script_path = "/tmp/tetherd-bench-ruleset.nft";
  std::printf("| sources | tetherd apply | raw `nft -f` | ratio | update 1 source on top |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
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
    std::printf("| %zu | %.2f ms | %.2f ms | %.2fx | %.2f ms |\n", n, o, w, o / w, u);
    std::fflush(stdout);
  }
  std::remove(script_path.c_str());
  return 0;
}
