#pragma once
// What the kernel's record of who reaches the node (nft_ruleset.h,
// firewall::kEvidenceSets) says when read together with the allowlist: the hint that
// the cloud's address may have changed. Pure: values in, a finding out.
//
// The commonest silent failure of this setup: the cloud's egress address
// changes (a new Cloud NAT address, a router's new public IP, a node pool
// recreated), the allowlist keeps refusing it, and failover stops with
// nothing on the node saying why. Its trace in the record: no allowed cloud
// source has connected on a port for a while, and one unknown source keeps
// being refused on that port.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "agent/config/config.h"
#include "firewall/allowlist.h"
#include "firewall/nft_ruleset.h"

namespace tetherd {

struct AddressChangeHint {
  boost::asio::ip::address stranger;
  std::vector<std::uint16_t> ports;  // where it was refused while the cloud was quiet
  std::uint64_t attempts = 0;        // on those ports, in the refused record's window
  std::chrono::seconds trying{0};    // since its first packet in that record
  // The cloud's last new connection on those ports, and from which of its
  // networks; none within what was watched when absent.
  std::optional<std::chrono::seconds> cloud_last;
  std::string cloud_source;         // a CIDR of Allowlist::cloud
  std::chrono::seconds watched{0};  // how long the record has been watched

  // "203.0.113.99 was refused 40 times on 4191 in the last 10m while the
  // cloud (198.51.100.0/24) has not connected on 4191 for 120m: has the
  // cloud's address changed?"
  std::string message() const;
  // The same finding: the same stranger, whatever its counts and ports.
  bool same_finding(const AddressChangeHint& other) const { return stranger == other.stranger; }
};

// The record in numbers, for the metrics: bounded by the managed ports and
// the cloud's networks, never a series per refused address.
struct EvidenceSummary {
  struct PerPort {
    std::uint16_t port = 0;
    std::uint64_t refused = 0;   // first packets refused, in the 10-minute records
    std::uint64_t accepted = 0;  // the cloud's new connections, in the day-long records
    friend bool operator==(const PerPort&, const PerPort&) = default;
  };
  std::vector<PerPort> ports;  // every managed port, ascending
  struct LastSeen {
    std::string network;  // a CIDR of Allowlist::cloud
    std::chrono::seconds ago;
    friend bool operator==(const LastSeen&, const LastSeen&) = default;
  };
  std::vector<LastSeen> cloud_last;  // the cloud's networks that connected, and when last
};
// `networks`: the cloud's sources as configured (firewall.allow, then the
// control plane's), to name the cloud by; empty, the pieces of
// Allowlist::cloud (which the node's own addresses may have cut up).
EvidenceSummary summarize(const firewall::Evidence& evidence, const firewall::Allowlist& desired,
                          const std::vector<firewall::Cidr>& networks = {});

struct HintPolicy {
  // The cloud is quiet when it has not connected on any port for this long
  // (or at all, in a record watched this long).
  std::chrono::seconds quiet_after = std::chrono::minutes(30);
  // A stranger is worth naming after this many first packets on quiet
  // ports (retries included), the first this long ago: not one connect()
  // and its SYN retries (about 2 minutes with the drop verdict).
  std::uint64_t min_attempts = 5;
  std::chrono::seconds trying_for = std::chrono::seconds(150);
  // The stranger already named: it stays while it tries at all (its
  // record starts again at one packet every 10 minutes), whoever else
  // qualifies meanwhile.
  std::optional<boost::asio::ip::address> prefer;
};
// The thresholds of firewall.cloudAddressHint.
HintPolicy hint_policy(const CloudAddressHintConfig& config);

// The finding, if any: the refused source with the most attempts on the
// ports where the cloud is quiet. Sources the allowlist lets through now
// (the admin's fix; their records age out) are not strangers, and nothing
// is said while the allowlist names no cloud source at all. `watched`: how
// long the evidence has been read (a record younger than quiet_after
// cannot say that the cloud never came).
std::optional<AddressChangeHint> address_change_hint(
    const firewall::Evidence& evidence, const firewall::Allowlist& desired,
    std::chrono::seconds watched, const HintPolicy& policy = {},
    const std::vector<firewall::Cidr>& networks = {});

}  // namespace tetherd
