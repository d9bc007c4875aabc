#include "firewall/nft_netlink.h"

#include <arpa/inet.h>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <memory>
#include <string>
#include <sys/socket.h>
#include <sys/time.h>
#include <vector>

#include "firewall/nft_ruleset.h"

namespace tetherd::firewall {
namespace {

// nftables' datatype numbers for the set keys (nftables' datatype.h), and
// its byte order tag in a set's user data: what nft itself sends.
constexpr std::uint32_t kTypeIpv4 = 7, kTypeIpv6 = 8, kTypeInetService = 13;
constexpr std::uint32_t kByteorderBigEndian = 2;
// A concatenation's type is its members' types, 6 bits each, the first
// highest (nftables' concat_type_alloc).
constexpr std::uint32_t kTypeBits = 6;
// A concatenation has no one byte order: nft tags its key BYTEORDER_INVALID
// (0), and adds the key's "typeof" as a concatenation (nftables' EXPR_CONCAT,
// 13) with no members, which is how nft describes a key declared by type.
constexpr std::uint32_t kByteorderInvalid = 0;
constexpr std::uint32_t kExprConcat = 13;
// One message of set elements stays well under a page run; a rule or a
// chain is far smaller.
constexpr std::size_t kElementsPerMessage = 512;
constexpr std::size_t kMessageRoom = 64 * 1024;

struct Deleter {
  void operator()(nftnl_table* p) const { nftnl_table_free(p); }
  void operator()(nftnl_chain* p) const { nftnl_chain_free(p); }
  void operator()(nftnl_rule* p) const { nftnl_rule_free(p); }
  void operator()(nftnl_set* p) const { nftnl_set_free(p); }
  void operator()(nftnl_udata_buf* p) const { nftnl_udata_buf_free(p); }
  void operator()(mnl_socket* p) const { mnl_socket_close(p); }
};
template <class T>
using Owned = std::unique_ptr<T, Deleter>;

// The batch, built message by message into one buffer: the kernel takes a
// transaction in one send.
class Batch {
 public:
  Batch() { buf_.reserve(kMessageRoom); }
  // Room for the next message; `done` once it is built.
  char* next() {
    buf_.resize(used_ + kMessageRoom);
    return buf_.data() + used_;
  }
  void done(const nlmsghdr* nlh) {
    last_ = used_;
    used_ += NLMSG_ALIGN(nlh->nlmsg_len);
  }
  nlmsghdr* header(std::uint16_t type, std::uint16_t flags) {
    return nftnl_nlmsg_build_hdr(next(), type, NFPROTO_INET, flags, seq_++);
  }
  void begin() { done(nftnl_batch_begin(next(), seq_++)); }
  // Only the last command asks for an acknowledgement: errors are answered
  // whatever the flags, so one ack means the transaction was committed,
  // and the answers cannot outgrow the socket's receive buffer (one ack
  // per command did, at 120 000 sources).
  void end() {
    reinterpret_cast<nlmsghdr*>(buf_.data() + last_)->nlmsg_flags |= NLM_F_ACK;
    done(nftnl_batch_end(next(), seq_++));
  }
  const char* data() const { return buf_.data(); }
  std::size_t size() const { return used_; }

 private:
  std::vector<char> buf_;
  std::size_t used_ = 0;
  std::size_t last_ = 0;
  std::uint32_t seq_ = 1;
};

// --- expressions, as nft compiles tetherd's rules for the inet family ----

void add(nftnl_rule* r, nftnl_expr* e) {
  nftnl_rule_add_expr(r, e);
}

void meta(nftnl_rule* r, std::uint32_t key) {
  nftnl_expr* e = nftnl_expr_alloc("meta");
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
  add(r, e);
}

void cmp(nftnl_rule* r, std::uint32_t op, const void* data, std::uint32_t len) {
  nftnl_expr* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
  add(r, e);
}

void cmp_eq(nftnl_rule* r, const void* data, std::uint32_t len) {
  cmp(r, NFT_CMP_EQ, data, len);
}

// Into register 1 unless told: a concatenation's second member goes to the
// 32-bit register right after the first's bytes.
void payload(nftnl_rule* r, std::uint32_t base, std::uint32_t offset, std::uint32_t len,
             std::uint32_t dreg = NFT_REG_1) {
  nftnl_expr* e = nftnl_expr_alloc("payload");
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, dreg);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
  add(r, e);
}

struct SetRef {
  const char* name;
  std::uint32_t id;
};

void lookup(nftnl_rule* r, const SetRef& set, bool inverted) {
  nftnl_expr* e = nftnl_expr_alloc("lookup");
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set.name);
  nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set.id);
  if (inverted) nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  add(r, e);
}

void fib(nftnl_rule* r, std::uint32_t flags, std::uint32_t result) {
  nftnl_expr* e = nftnl_expr_alloc("fib");
  nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, result);
  nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, flags);
  add(r, e);
}

// `meta nfproto ipv4` (or ipv6): what nft puts before the first match on
// the network header in an inet chain, and only before the first.
void family(nftnl_rule* r, bool v4) {
  meta(r, NFT_META_NFPROTO);
  const std::uint8_t proto = v4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
  cmp_eq(r, &proto, 1);
}

// `meta l4proto tcp`
void tcp(nftnl_rule* r) {
  meta(r, NFT_META_L4PROTO);
  const std::uint8_t proto = IPPROTO_TCP;
  cmp_eq(r, &proto, 1);
}

// `tcp dport @ports`
void tcp_dport_in(nftnl_rule* r, const SetRef& ports) {
  tcp(r);
  payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2);
  lookup(r, ports, false);
}

// The source or destination address into `dreg`, without a dependency.
void load_address(nftnl_rule* r, bool v4, bool source, std::uint32_t dreg = NFT_REG_1) {
  if (v4) {
    payload(r, NFT_PAYLOAD_NETWORK_HEADER, source ? 12 : 16, 4, dreg);
  } else {
    payload(r, NFT_PAYLOAD_NETWORK_HEADER, source ? 8 : 24, 16, dreg);
  }
}

// `ip saddr` / `ip6 daddr` ... loaded into register 1. nft puts the
// family's dependency before a rule's first match on the network header,
// and only before the first: `family_matched` says whether it is there.
void address(nftnl_rule* r, bool v4, bool source, bool& family_matched) {
  if (!family_matched) family(r, v4);
  family_matched = true;
  load_address(r, v4, source);
}

// `ct state new`: the state's bits masked to new's, then not zero (a flag
// test, as nft compiles a match on a bitmask type).
void ct_state_new(nftnl_rule* r) {
  nftnl_expr* ct = nftnl_expr_alloc("ct");
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
  add(r, ct);
  const std::uint32_t mask = NF_CT_STATE_BIT(IP_CT_NEW), zero = 0;
  nftnl_expr* bits = nftnl_expr_alloc("bitwise");
  nftnl_expr_set_u32(bits, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(bits, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(bits, NFTNL_EXPR_BITWISE_LEN, sizeof mask);
  nftnl_expr_set(bits, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof mask);
  nftnl_expr_set(bits, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof zero);
  add(r, bits);
  cmp(r, NFT_CMP_NEQ, &zero, sizeof zero);
}

// `add @set { ip saddr . tcp dport }` (or update), the family and the
// protocol already matched. The kernel reads the key from consecutive
// registers: the address from register 1 on, the port in the 32-bit
// register right after it. That one has two names when it starts a 16-byte
// register, and nft uses the 16-byte name: after an IPv4 address
// NFT_REG32_01, after an IPv6 address NFT_REG_2 (not NFT_REG32_04).
void record(nftnl_rule* r, bool v4, std::uint32_t op, const SetRef& set) {
  load_address(r, v4, true);
  payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, v4 ? NFT_REG32_01 : NFT_REG_2);
  nftnl_expr* e = nftnl_expr_alloc("dynset");
  nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_OP, op);
  nftnl_expr_set_str(e, NFTNL_EXPR_DYNSET_SET_NAME, set.name);
  nftnl_expr_set_u32(e, NFTNL_EXPR_DYNSET_SET_ID, set.id);
  add(r, e);
}

void counter(nftnl_rule* r) {
  add(r, nftnl_expr_alloc("counter"));
}

// A verdict: `drop`, or `jump` to a chain of this table.
void immediate(nftnl_rule* r, std::uint32_t verdict, const char* chain = nullptr) {
  nftnl_expr* e = nftnl_expr_alloc("immediate");
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
  if (chain) nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
  add(r, e);
}

// refuseN's verdict. A reject is reached only by a jump from a TCP match,
// so nft cannot see the protocol in the rule and adds its dependency.
void refuse(nftnl_rule* r, Verdict verdict) {
  if (verdict == Verdict::kDrop) {
    immediate(r, NF_DROP);
    return;
  }
  tcp(r);
  nftnl_expr* e = nftnl_expr_alloc("reject");
  nftnl_expr_set_u32(e, NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
  nftnl_expr_set_u8(e, NFTNL_EXPR_REJECT_CODE, 0);
  add(r, e);
}

// --- set elements ---------------------------------------------------------

using Bytes = std::vector<std::uint8_t>;

Bytes bytes_of(const boost::asio::ip::address& a) {
  if (a.is_v4()) {
    const auto b = a.to_v4().to_bytes();
    return Bytes(b.begin(), b.end());
  }
  const auto b = a.to_v6().to_bytes();
  return Bytes(b.begin(), b.end());
}

// The first address past the CIDR; false when it wraps (the family's end).
bool past_end(const Cidr& c, Bytes& out) {
  out = bytes_of(c.network);
  const std::size_t bits = out.size() * 8;
  for (std::size_t i = c.prefix; i < bits; ++i)
    out[i / 8] |= static_cast<std::uint8_t>(0x80u >> (i % 8));
  for (std::size_t i = out.size(); i-- > 0;) {
    if (++out[i] != 0) return true;
  }
  return false;
}

// An interval set's elements as nft sends them: each range a start and an
// interval end one past it (none at the very end of the family, the start
// then marked open in its user data), and an interval end at zero first
// when nothing starts there.
void add_intervals(nftnl_set* s, const std::vector<Cidr>& cidrs, std::size_t from, std::size_t to) {
  const std::uint32_t end_flag = NFT_SET_ELEM_INTERVAL_END;
  auto element = [&](const Bytes& key, bool end, bool open) {
    nftnl_set_elem* e = nftnl_set_elem_alloc();
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key.data(), static_cast<std::uint32_t>(key.size()));
    if (end) nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, end_flag);
    if (open) {
      Owned<nftnl_udata_buf> ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
      nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_ELEM_FLAGS, NFTNL_SET_ELEM_F_INTERVAL_OPEN);
      nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(ud.get()),
                         nftnl_udata_buf_len(ud.get()));
    }
    nftnl_set_elem_add(s, e);
  };
  if (from == 0 && !cidrs.empty()) {
    const Bytes first = bytes_of(cidrs.front().network);
    if (std::any_of(first.begin(), first.end(), [](std::uint8_t b) { return b != 0; }))
      element(Bytes(first.size(), 0), true, false);
  }
  for (std::size_t i = from; i < to; ++i) {
    Bytes end;
    const bool bounded = past_end(cidrs[i], end);
    element(bytes_of(cidrs[i].network), false, !bounded);
    if (bounded) element(end, true, false);
  }
}

struct SetSpec {
  SetRef ref;
  std::uint32_t type;
  std::uint32_t key_len;
  bool interval;
};

Owned<nftnl_set> make_set(const SetSpec& spec) {
  Owned<nftnl_set> s(nftnl_set_alloc());
  nftnl_set_set_str(s.get(), NFTNL_SET_TABLE, std::string(kTableName).c_str());
  nftnl_set_set_str(s.get(), NFTNL_SET_NAME, spec.ref.name);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(s.get(), NFTNL_SET_ID, spec.ref.id);
  return s;
}

void add_set(Batch& batch, const SetSpec& spec) {
  Owned<nftnl_set> s = make_set(spec);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, spec.interval ? NFT_SET_INTERVAL : 0);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
  Owned<nftnl_udata_buf> ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderBigEndian);
  nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()),
                     nftnl_udata_buf_len(ud.get()));
  nlmsghdr* nlh = batch.header(NFT_MSG_NEWSET, NLM_F_CREATE);
  nftnl_set_nlmsg_build_payload(nlh, s.get());
  batch.done(nlh);
}

// An evidence set (kEvidenceSets): address . port, filled only by the
// rules, each element kept for the timeout, with a counter of its own (the
// set's expression, which the kernel gives each element it adds). As nft
// sends it: no field lengths (NFTA_SET_DESC_CONCAT, which nft sends only
// for a concatenated interval set), and the size as the description's.
void add_evidence_set(Batch& batch, const SetSpec& spec, const EvidenceSet& evidence) {
  Owned<nftnl_set> s = make_set(spec);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);  // dynamic,timeout
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_TYPE, spec.type);
  nftnl_set_set_u32(s.get(), NFTNL_SET_KEY_LEN, spec.key_len);
  nftnl_set_set_u32(s.get(), NFTNL_SET_DESC_SIZE, evidence.size);
  nftnl_set_set_u64(
      s.get(), NFTNL_SET_TIMEOUT,
      static_cast<std::uint64_t>(std::chrono::milliseconds(evidence.timeout).count()));
  Owned<nftnl_udata_buf> ud(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderInvalid);
  nftnl_udata* typeof_key = nftnl_udata_nest_start(ud.get(), NFTNL_UDATA_SET_KEY_TYPEOF);
  nftnl_udata_put_u32(ud.get(), NFTNL_UDATA_SET_TYPEOF_EXPR, kExprConcat);
  nftnl_udata_nest_end(ud.get(), nftnl_udata_nest_start(ud.get(), NFTNL_UDATA_SET_TYPEOF_DATA));
  nftnl_udata_nest_end(ud.get(), typeof_key);
  nftnl_set_set_data(s.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud.get()),
                     nftnl_udata_buf_len(ud.get()));
  // One expression goes as NFTA_SET_EXPR, as nft sends it (the set owns it).
  nftnl_set_set_data(s.get(), NFTNL_SET_EXPR, nftnl_expr_alloc("counter"), 0);
  nlmsghdr* nlh = batch.header(NFT_MSG_NEWSET, NLM_F_CREATE);
  nftnl_set_nlmsg_build_payload(nlh, s.get());
  batch.done(nlh);
}

void add_cidrs(Batch& batch, const SetSpec& spec, const std::vector<Cidr>& cidrs) {
  for (std::size_t from = 0; from < cidrs.size(); from += kElementsPerMessage) {
    Owned<nftnl_set> s = make_set(spec);
    add_intervals(s.get(), cidrs, from, std::min(cidrs.size(), from + kElementsPerMessage));
    nlmsghdr* nlh = batch.header(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
    nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
    batch.done(nlh);
  }
}

void add_ports(Batch& batch, const SetSpec& spec, const std::vector<std::uint16_t>& ports) {
  if (ports.empty()) return;
  Owned<nftnl_set> s = make_set(spec);
  for (std::uint16_t p : ports) {
    nftnl_set_elem* e = nftnl_set_elem_alloc();
    const std::uint16_t key = htons(p);
    nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &key, sizeof key);
    nftnl_set_elem_add(s.get(), e);
  }
  nlmsghdr* nlh = batch.header(NFT_MSG_NEWSETELEM, NLM_F_CREATE);
  nftnl_set_elems_nlmsg_build_payload(nlh, s.get());
  batch.done(nlh);
}

std::uint32_t hook_of(std::string_view chain) {
  if (chain == "prerouting") return NF_INET_PRE_ROUTING;
  if (chain == "input") return NF_INET_LOCAL_IN;
  return NF_INET_FORWARD;
}

Result<void> send(const Batch& batch) {
  Owned<mnl_socket> nl(mnl_socket_open(NETLINK_NETFILTER));
  if (!nl) return make_error(std::string("cannot open a netfilter socket: ") + strerror(errno));
  if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0)
    return make_error(std::string("cannot bind a netfilter socket: ") + strerror(errno));
  const int fd = mnl_socket_get_fd(nl.get());
  // The whole transaction is one message to the kernel: room for it, and
  // every answer bounded in time.
  int size = static_cast<int>(batch.size());
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  // An error answer carries the error, not a copy of the failed command.
  const int on = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof on);
  if (mnl_socket_sendto(nl.get(), batch.data(), batch.size()) < 0)
    return make_error(std::string("cannot send the nftables transaction: ") + strerror(errno));

  // The acknowledgement of the last command, or the first error (after
  // which the kernel has aborted the whole transaction).
  std::vector<char> buf(64 * 1024);
  bool answered = false;
  while (!answered) {
    const ssize_t n = mnl_socket_recvfrom(nl.get(), buf.data(), buf.size());
    if (n < 0) {
      return make_error(std::string("no answer to the nftables transaction: ") +
                        (errno == EAGAIN ? "timed out" : strerror(errno)));
    }
    int len = static_cast<int>(n);
    for (auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); mnl_nlmsg_ok(nlh, len);
         nlh = mnl_nlmsg_next(nlh, &len)) {
      if (nlh->nlmsg_type != NLMSG_ERROR) continue;
      const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(nlh));
      if (err->error != 0)
        return make_error(std::string("nftables refused the transaction: ") +
                          strerror(-err->error));
      answered = true;
    }
  }
  return {};
}

}  // namespace

Result<void> replace_table(const Allowlist& a) {
  const std::string table(kTableName);
  Batch batch;
  batch.begin();
  {
    // Created if missing, then deleted, then made anew: valid whether or
    // not the table exists, and one transaction.
    Owned<nftnl_table> t(nftnl_table_alloc());
    nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, table.c_str());
    nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
    for (const auto& [type, flags] :
         {std::pair{NFT_MSG_NEWTABLE, NLM_F_CREATE}, std::pair{NFT_MSG_DELTABLE, 0},
          std::pair{NFT_MSG_NEWTABLE, NLM_F_CREATE}}) {
      nlmsghdr* nlh =
          batch.header(static_cast<std::uint16_t>(type), static_cast<std::uint16_t>(flags));
      nftnl_table_nlmsg_build_payload(nlh, t.get());
      batch.done(nlh);
    }
  }
  const SetSpec allowed4{{"allowed4", 1}, kTypeIpv4, 4, true};
  const SetSpec allowed6{{"allowed6", 2}, kTypeIpv6, 16, true};
  const SetSpec ports{{"ports", 3}, kTypeInetService, 2, false};
  const SetSpec cluster4{{"cluster4", 4}, kTypeIpv4, 4, true};
  const SetSpec cluster6{{"cluster6", 5}, kTypeIpv6, 16, true};
  const SetSpec cloud4{{"cloud4", 6}, kTypeIpv4, 4, true};
  const SetSpec cloud6{{"cloud6", 7}, kTypeIpv6, 16, true};
  const SetSpec closed{{"closed", 8}, kTypeInetService, 2, false};
  const SetSpec inner4{{"inner4", 9}, kTypeIpv4, 4, true};
  const SetSpec inner6{{"inner6", 10}, kTypeIpv6, 16, true};
  for (const SetSpec* s : {&allowed4, &allowed6, &ports, &cluster4, &cluster6, &cloud4, &cloud6,
                           &closed, &inner4, &inner6})
    add_set(batch, *s);
  // The evidence sets, in kEvidenceSets' order (sets are listed in the
  // order they were made). Each member of the key takes whole 32-bit
  // registers: the port is 2 bytes, its room 4.
  std::array<std::string, kEvidenceSets.size()> evidence_names;  // SetRef points into them
  std::array<SetSpec, kEvidenceSets.size()> evidence;
  for (std::size_t i = 0; i < kEvidenceSets.size(); ++i) {
    const EvidenceSet& e = kEvidenceSets[i];
    evidence_names[i] = e.name;
    evidence[i] = {{evidence_names[i].c_str(), static_cast<std::uint32_t>(11 + i)},
                   ((e.v4 ? kTypeIpv4 : kTypeIpv6) << kTypeBits) | kTypeInetService,
                   e.v4 ? 4u + 4u : 16u + 4u,
                   false};
    add_evidence_set(batch, evidence[i], e);
  }
  auto evidence_set = [&](bool refused, bool v4) -> const SetRef& {
    for (std::size_t i = 0; i < kEvidenceSets.size(); ++i)
      if (kEvidenceSets[i].refused == refused && kEvidenceSets[i].v4 == v4) return evidence[i].ref;
    std::abort();  // kEvidenceSets has all four
  };
  add_cidrs(batch, allowed4, a.sources.cidrs_v4());
  add_cidrs(batch, allowed6, a.sources.cidrs_v6());
  add_ports(batch, ports, a.ports);
  add_cidrs(batch, cluster4, a.cluster.cidrs_v4());
  add_cidrs(batch, cluster6, a.cluster.cidrs_v6());
  add_cidrs(batch, cloud4, a.cloud.cidrs_v4());
  add_cidrs(batch, cloud6, a.cloud.cidrs_v6());
  add_ports(batch, closed, a.closed_ports);
  add_cidrs(batch, inner4, a.inner.cidrs_v4());
  add_cidrs(batch, inner6, a.inner.cidrs_v6());

  // A chain, then its rules, in render_replace's order (nft_ruleset.cpp
  // says why). refuse4 and refuse6 come first: a jump names its chain, which
  // must exist by then, and chains are listed in the order they were made.
  auto chain = [&](const std::string& name, const ChainLayout* hook) {
    Owned<nftnl_chain> c(nftnl_chain_alloc());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, table.c_str());
    nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, name.c_str());
    nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
    if (hook) {
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook_of(hook->name));
      nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, hook->priority);
      nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
      nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
    }
    nlmsghdr* nlh = batch.header(NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    nftnl_chain_nlmsg_build_payload(nlh, c.get());
    batch.done(nlh);
  };
  auto rule = [&](const std::string& chain_name, auto&& body) {
    Owned<nftnl_rule> r(nftnl_rule_alloc());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
    nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain_name.c_str());
    nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
    body(r.get());
    nlmsghdr* rh = batch.header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
    nftnl_rule_nlmsg_build_payload(rh, r.get());
    batch.done(rh);
  };

  for (const bool v4 : {true, false}) {
    const std::string name = v4 ? "refuse4" : "refuse6";
    chain(name, nullptr);
    // `ct state new add @refusedN { ip saddr . tcp dport }`: the concat
    // needs the family and the protocol, which nft matches after ct state.
    rule(name, [&](nftnl_rule* r) {
      ct_state_new(r);
      family(r, v4);
      tcp(r);
      record(r, v4, NFT_DYNSET_OP_ADD, evidence_set(true, v4));
    });
    rule(name, [&](nftnl_rule* r) { refuse(r, a.verdict); });
  }

  for (const ChainLayout& layout : kChains) {
    const std::string name(layout.name);
    chain(name, &layout);
    // Refused: a source not allowed on a managed port, then one not inner
    // on a closed port.
    for (const bool on_closed : {false, true}) {
      for (const bool v4 : {true, false}) {
        rule(name, [&](nftnl_rule* r) {
          bool family_matched = false;
          tcp_dport_in(r, (on_closed ? closed : ports).ref);
          if (layout.local_only) {
            fib(r, NFTA_FIB_F_DADDR, NFT_FIB_RESULT_ADDRTYPE);
            const std::uint32_t local = RTN_LOCAL;
            cmp_eq(r, &local, sizeof local);
          }
          if (layout.cluster_only) {
            address(r, v4, false, family_matched);
            lookup(r, (v4 ? cluster4 : cluster6).ref, false);
          }
          address(r, v4, true, family_matched);
          const SetSpec& sources = on_closed ? (v4 ? inner4 : inner6) : (v4 ? allowed4 : allowed6);
          lookup(r, sources.ref, true);
          counter(r);
          immediate(r, NFT_JUMP, v4 ? "refuse4" : "refuse6");
        });
      }
    }
    if (!layout.records_accepted) continue;
    // `... ct state new ip saddr @cloud4 update @accepted4 { ip saddr . tcp
    // dport }`: in input, the family is matched after ct state, before the
    // source; in forward, before the cluster's address.
    for (const bool v4 : {true, false}) {
      rule(name, [&](nftnl_rule* r) {
        bool family_matched = false;
        tcp_dport_in(r, ports.ref);
        if (layout.cluster_only) {
          address(r, v4, false, family_matched);
          lookup(r, (v4 ? cluster4 : cluster6).ref, false);
        }
        ct_state_new(r);
        address(r, v4, true, family_matched);
        lookup(r, (v4 ? cloud4 : cloud6).ref, false);
        record(r, v4, NFT_DYNSET_OP_UPDATE, evidence_set(false, v4));
      });
    }
  }
  batch.end();
  return send(batch);
}

}  // namespace tetherd::firewall
