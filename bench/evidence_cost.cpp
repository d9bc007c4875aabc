// The per-packet cost of the record of who reaches the node (issue 25):
// crafted TCP SYNs through tetherd's table with the evidence rules (refuseN
// chains that `add` to refusedN, `update` of acceptedN for the cloud),
// against the same table as it was before them (a `counter drop` in the
// base chains), and against no table; N sources in the allowed set.
//
// Four streams, each a SYN per packet to the node's 6443/4143/4191:
//   refused, 10 sources     a stranger's retries: `add` finds its element
//   refused, 10 000 sources a flood from 198.18.0.0/15 (RFC 2544's range):
//                           the set fills at 2 048 and records nobody new
//   accepted, 10 sources    the cloud: `ct state new`, `update @accepted4`
//
// The SYNs go out of a raw socket (sendmmsg, 64 a call) to a local address,
// so the kernel runs the whole receive path (prerouting, conntrack, input,
// TCP's answer) inside the send; time per packet = wall time / packets, the
// median of 5 runs of 200 000. Conntrack is on in every layout (as on any
// k3s node). Runs in a private network namespace (root); prints one table,
// and fails if a stream did not reach the rules it measures.
//
//   build/release/bench/evidence_cost [N ...]     (default 10 1000 10000)

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <netinet/in.h>
#include <regex>
#include <sched.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "firewall/nft_ruleset.h"

namespace {

using namespace tetherd::firewall;
using Clock = std::chrono::steady_clock;

constexpr int kPackets = 200000;
constexpr int kRuns = 5;
constexpr int kBatch = 64;
constexpr std::uint32_t kNode = 0xC0000201;  // 192.0.2.1
constexpr std::array<std::uint16_t, 3> kPorts = {6443, 4143, 4191};

bool sh(const std::string& command) {
  if (std::system(command.c_str()) == 0) return true;
  std::fprintf(stderr, "evidence_cost: failed: %s\n", command.c_str());
  return false;
}

std::string output_of(const std::string& command) {
  std::string out;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
      out.append(buf, n);
    pclose(p);
  }
  return out;
}

// N allowed sources that never merge (every other address of 10.0.0.0/8),
// all of them the cloud.
Allowlist make_allowlist(std::size_t n) {
  Allowlist a;
  a.ports = {4143, 4191, 6443};
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t v = 0x0A000001u + 2u * static_cast<std::uint32_t>(i);
    a.sources.add(Cidr{boost::asio::ip::address_v4(v), 32});
    a.cloud.add(Cidr{boost::asio::ip::address_v4(v), 32});
  }
  a.sources.add(Cidr{boost::asio::ip::address_v4(kNode), 32});
  return a;
}

// The table as it was before the record: the same sets and base chains,
// each refusing with `counter drop`; no evidence sets, refuse chains or
// update rules.
std::string without_evidence(const std::string& script) {
  std::string out;
  std::size_t pos = 0;
  bool skipping = false;
  while (pos < script.size()) {
    std::size_t end = script.find('\n', pos);
    if (end == std::string::npos) end = script.size();
    std::string line = script.substr(pos, end - pos);
    pos = end + 1;
    if (skipping) {
      if (line == "\t}") skipping = false;
      continue;
    }
    if (std::regex_search(line,
                          std::regex("^\t(set (refused|accepted)[46]|chain refuse[46]) \\{"))) {
      skipping = true;
      continue;
    }
    if (line.find("update @accepted") != std::string::npos) continue;
    line = std::regex_replace(line, std::regex("counter jump refuse[46]$"), "counter drop");
    out += line + "\n";
  }
  return out;
}

std::uint16_t checksum(const void* data, std::size_t len, std::uint32_t sum = 0) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  for (std::size_t i = 0; i + 1 < len; i += 2)
    sum += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<std::uint32_t>(p[len - 1] << 8);
  while (sum >> 16)
    sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<std::uint16_t>(~sum);
}

// One SYN from `source` to the node's `port`, header and checksums filled in.
std::array<std::uint8_t, 40> syn(std::uint32_t source, std::uint16_t port) {
  std::array<std::uint8_t, 40> p{};
  auto put16 = [&](std::size_t at, std::uint16_t v) {
    p[at] = static_cast<std::uint8_t>(v >> 8);
    p[at + 1] = static_cast<std::uint8_t>(v);
  };
  auto put32 = [&](std::size_t at, std::uint32_t v) {
    put16(at, static_cast<std::uint16_t>(v >> 16));
    put16(at + 2, static_cast<std::uint16_t>(v));
  };
  p[0] = 0x45;  // IPv4, 20-byte header
  put16(2, 40);
  p[8] = 64;  // TTL
  p[9] = IPPROTO_TCP;
  put32(12, source);
  put32(16, kNode);
  put16(10, checksum(p.data(), 20));
  put16(20, 40000);  // source port
  put16(22, port);
  put32(24, 1);      // sequence
  p[32] = 5 << 4;    // data offset: 20 bytes
  p[33] = 0x02;      // SYN
  put16(34, 64240);  // window
  std::array<std::uint8_t, 12> pseudo{};
  std::memcpy(pseudo.data(), p.data() + 12, 8);
  pseudo[9] = IPPROTO_TCP;
  pseudo[11] = 20;
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < pseudo.size(); i += 2)
    sum += static_cast<std::uint32_t>(pseudo[i] << 8 | pseudo[i + 1]);
  put16(36, checksum(p.data() + 20, 20, sum));
  return p;
}

// A stream: one SYN per (source, port), sent round after round.
std::vector<std::array<std::uint8_t, 40>> stream(std::uint32_t first, std::size_t sources) {
  std::vector<std::array<std::uint8_t, 40>> out;
  for (std::size_t i = 0; i < sources; ++i)
    for (const auto port : kPorts)
      out.push_back(syn(first + static_cast<std::uint32_t>(i), port));
  return out;
}

// ns per packet, the median of kRuns.
double measure(int fd, const std::vector<std::array<std::uint8_t, 40>>& packets) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(kNode);
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> msgs{};
  std::size_t next = 0;
  auto send = [&](int count) {
    for (int sent = 0; sent < count;) {
      const int n = std::min(kBatch, count - sent);
      for (int i = 0; i < n; ++i) {
        auto& p = packets[next++ % packets.size()];
        iov[i] = {const_cast<std::uint8_t*>(p.data()), p.size()};
        msgs[i].msg_hdr = {};
        msgs[i].msg_hdr.msg_name = &to;
        msgs[i].msg_hdr.msg_namelen = sizeof to;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
      }
      const int r = sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0);
      if (r <= 0) {
        std::perror("sendmmsg");
        std::exit(1);
      }
      sent += r;
    }
  };
  send(20000);  // warm up: conntrack entries, set elements, caches
  std::vector<double> ns;
  for (int r = 0; r < kRuns; ++r) {
    const auto start = Clock::now();
    send(kPackets);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() / kPackets);
  }
  std::sort(ns.begin(), ns.end());
  return ns[ns.size() / 2];
}

// The packets counted in a listing (the base chains' refusals, or a set's
// elements): proof that a stream went through the rules it measures.
std::uint64_t counted(const std::string& what) {
  const std::string listing = output_of("nft list " + what + " 2>/dev/null");
  std::uint64_t total = 0;
  const std::regex counter("packets ([0-9]+)");
  for (auto it = std::sregex_iterator(listing.begin(), listing.end(), counter);
       it != std::sregex_iterator(); ++it)
    total += std::stoull((*it)[1]);
  return total;
}
std::size_t elements(const char* set) {
  const std::string listing = output_of(std::string("nft list set inet tetherd ") + set);
  std::size_t n = 0;
  for (std::size_t at = listing.find(" . "); at != std::string::npos;
       at = listing.find(" . ", at + 3))
    ++n;
  return n;
}

struct Row {
  double refused_few = 0, refused_flood = 0, accepted = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET) (run as root)");
    return 1;
  }
  std::vector<std::size_t> sizes;
  for (int i = 1; i < argc; ++i)
    sizes.push_back(std::strtoul(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {10, 1000, 10000};

  if (!sh("ip link set lo up") || !sh("ip link add node0 type veth peer name peer0") ||
      !sh("ip addr add 192.0.2.1/24 dev node0") || !sh("ip link set node0 up") ||
      // Conntrack on, in every layout, as on a k3s node.
      !sh("nft add table ip k3s") ||
      !sh("nft add chain ip k3s pre '{ type filter hook prerouting priority -300; }'") ||
      !sh("nft add rule ip k3s pre ct state invalid counter"))
    return 1;
  const int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) {
    std::perror("socket(SOCK_RAW)");
    return 1;
  }
  const auto few = stream(0xC6120001, 10);       // 198.18.0.1 ..
  const auto flood = stream(0xC6130001, 10000);  // 198.19.0.1 ..
  const auto cloud = stream(0x0A000001, 1);      // 10.0.0.1, allowed, the cloud

  auto run = [&]() {
    Row r;
    r.refused_few = measure(fd, few);
    r.refused_flood = measure(fd, flood);
    r.accepted = measure(fd, cloud);
    return r;
  };
  const Row none = run();
  std::printf(
      "%d SYNs a run, median of %d runs, ns per packet (whole receive path);\n"
      "ratios against the same table without the record\n\n",
      kPackets, kRuns);
  std::printf(
      "| sources | layout | refused, 10 sources | refused, 10 000 sources (set full) | "
      "accepted (the cloud) |\n|---:|---|---:|---:|---:|\n");
  std::printf("| - | no table | %.0f ns | %.0f ns | %.0f ns |\n", none.refused_few,
              none.refused_flood, none.accepted);
  const std::string path = "/tmp/tetherd-evidence-bench.nft";
  for (const std::size_t n : sizes) {
    const std::string with = render_replace(make_allowlist(n));
    std::ofstream(path) << without_evidence(with);
    if (!sh("nft -f " + path)) return 1;
    if (output_of("nft list table inet tetherd").find("refuse") != std::string::npos) {
      std::fputs("evidence_cost: the old layout still has the record\n", stderr);
      return 1;
    }
    const Row old = run();
    if (counted("table inet tetherd") < 2u * kRuns * kPackets) {
      std::fputs("evidence_cost: the refused streams did not reach the old rules\n", stderr);
      return 1;
    }
    std::ofstream(path) << with;
    if (!sh("nft -f " + path)) return 1;
    const Row now = run();
    // Every packet of the cloud's stream ran the update (the elements'
    // counters), and the refused streams were counted and recorded.
    if (counted("table inet tetherd") <
            2u * kRuns * kPackets + counted("set inet tetherd accepted4") ||
        elements("refused4") == 0 ||
        counted("set inet tetherd accepted4") < 1u * kRuns * kPackets) {
      std::fputs("evidence_cost: the streams did not reach the evidence rules\n", stderr);
      return 1;
    }
    std::printf("| %zu | before the record | %.0f ns | %.0f ns | %.0f ns |\n", n, old.refused_few,
                old.refused_flood, old.accepted);
    std::printf("| %zu | with the record | %.0f ns (%.2fx) | %.0f ns (%.2fx) | %.0f ns (%.2fx) |\n",
                n, now.refused_few, now.refused_few / old.refused_few, now.refused_flood,
                now.refused_flood / old.refused_flood, now.accepted, now.accepted / old.accepted);
    std::fflush(stdout);
    if (!sh("nft delete table inet tetherd")) return 1;
  }
  std::remove(path.c_str());
  return 0;
}
