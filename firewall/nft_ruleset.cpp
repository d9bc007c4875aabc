#include "firewall/nft_ruleset.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <optional>

#include <boost/json.hpp>

#include "firewall/nft_json.h"

namespace tetherd::firewall {
namespace {

namespace json = boost::json;
namespace ip = boost::asio::ip;

void render_list(std::string& out, const std::vector<Cidr>& cidrs) {
  bool first = true;
  for (const Cidr& c : cidrs) {
    if (!first) out += ", ";
    first = false;
    const unsigned full = c.is_v4() ? 32 : 128;
    out += c.prefix == full ? c.network.to_string() : c.to_string();
  }
}

void render_elements(std::string& out, const std::vector<Cidr>& cidrs) {
  if (cidrs.empty()) return;
  out += "\t\telements = { ";
  render_list(out, cidrs);
  out += " }\n";
}

void render_ports(std::string& out, const std::vector<std::uint16_t>& ports) {
  if (ports.empty()) return;
  out += "\t\telements = { ";
  for (std::size_t i = 0; i < ports.size(); ++i)
    out += (i ? ", " : "") + std::to_string(ports[i]);
  out += " }\n";
}

void render_element_command(std::string& out, const char* verb, const char* set,
                            const std::vector<Cidr>& cidrs) {
  if (cidrs.empty()) return;
  out += std::string(verb) + " element inet tetherd " + set + " { ";
  render_list(out, cidrs);
  out += " }\n";
}

void render_port_command(std::string& out, const char* verb, const char* set,
                         const std::vector<std::uint16_t>& ports) {
  if (ports.empty()) return;
  out += std::string(verb) + " element inet tetherd " + set + " { ";
  for (std::size_t i = 0; i < ports.size(); ++i)
    out += (i ? ", " : "") + std::to_string(ports[i]);
  out += " }\n";
}

const char* verdict_text(Verdict v) {
  return v == Verdict::kDrop ? "drop" : "reject with tcp reset";
}

using nft_json::find;

// One set element: "192.0.2.1", {"prefix": {...}} or {"range": [a, b]}.
bool add_element(AddressSet& set, const json::value& e) {
  boost::system::error_code ec;
  if (e.is_string()) {
    const auto a = ip::make_address(std::string_view(e.get_string()), ec);
    if (ec) return false;
    set.add(Cidr{a, static_cast<std::uint8_t>(a.is_v4() ? 32 : 128)});
    return true;
  }
  if (!e.is_object()) return false;
  if (const json::value* p = find(e.get_object(), "prefix"); p && p->is_object()) {
    const json::value* addr = find(p->get_object(), "addr");
    const json::value* len = find(p->get_object(), "len");
    if (!addr || !addr->is_string() || !len || !len->is_int64()) return false;
    auto c = parse_cidr(std::string(addr->get_string()) + "/" + std::to_string(len->get_int64()));
    if (!c) return false;
    set.add(*c);
    return true;
  }
  if (const json::value* r = find(e.get_object(), "range"); r && r->is_array()) {
    const json::array& a = r->get_array();
    if (a.size() != 2 || !a[0].is_string() || !a[1].is_string()) return false;
    const auto lo = ip::make_address(std::string_view(a[0].get_string()), ec);
    if (ec) return false;
    const auto hi = ip::make_address(std::string_view(a[1].get_string()), ec);
    return !ec && set.add_range(lo, hi);
  }
  return false;
}

// The rules as nftables lists them (`nft -j`), counters at zero: the tamper
// check compares whole rules, so a hand-edited operator, a missing match or
// an extra statement is drift, not only a missing rule.
json::value match(std::string_view op, json::value left, json::value right) {
  return json::object{
      {"match", json::object{{"op", op}, {"left", std::move(left)}, {"right", std::move(right)}}}};
}

json::value payload(std::string_view protocol, std::string_view field) {
  return json::object{{"payload", json::object{{"protocol", protocol}, {"field", field}}}};
}

json::value verdict_json(Verdict verdict) {
  if (verdict == Verdict::kDrop) return json::object{{"drop", nullptr}};
  return json::object{{"reject", json::object{{"type", "tcp reset"}}}};
}

json::value ct_state_new() {
  return match("in", json::object{{"ct", json::object{{"key", "state"}}}}, "new");
}

// `add @set { ip saddr . tcp dport }` (or update).
json::value record(std::string_view op, bool v4, std::string_view set) {
  return json::object{
      {"set", json::object{
                  {"op", op},
                  {"elem", json::object{{"concat", json::array{payload(v4 ? "ip" : "ip6", "saddr"),
                                                               payload("tcp", "dport")}}}},
                  {"set", "@" + std::string(set)}}}};
}

// The base chains' rules: two that jump to refuseN for a source not
// allowed, two that do for a source not inner on a closed port, then (in
// the chains that record them) two that record the cloud's new connections.
enum class RuleKind { kAllowed, kClosed, kRecord };
std::vector<json::array> expected_rules(const ChainLayout& chain) {
  std::vector<json::array> rules;
  for (const RuleKind kind : {RuleKind::kAllowed, RuleKind::kClosed, RuleKind::kRecord}) {
    const bool records = kind == RuleKind::kRecord;
    if (records && !chain.records_accepted) continue;
    for (const bool v4 : {true, false}) {
      const char* family = v4 ? "ip" : "ip6";
      json::array expr;
      expr.push_back(
          match("==", payload("tcp", "dport"), kind == RuleKind::kClosed ? "@closed" : "@ports"));
      if (chain.local_only && !records) {
        expr.push_back(match("==",
                             json::object{{"fib", json::object{{"result", "type"},
                                                               {"flags", json::array{"daddr"}}}}},
                             "local"));
      }
      if (chain.cluster_only)
        expr.push_back(match("==", payload(family, "daddr"), v4 ? "@cluster4" : "@cluster6"));
      if (records) {
        expr.push_back(ct_state_new());
        expr.push_back(match("==", payload(family, "saddr"), v4 ? "@cloud4" : "@cloud6"));
        expr.push_back(record("update", v4, v4 ? "accepted4" : "accepted6"));
      } else {
        const bool closed = kind == RuleKind::kClosed;
        expr.push_back(
            match("!=", payload(family, "saddr"),
                  closed ? (v4 ? "@inner4" : "@inner6") : (v4 ? "@allowed4" : "@allowed6")));
        expr.push_back(json::object{{"counter", json::object{{"packets", 0}, {"bytes", 0}}}});
        expr.push_back(
            json::object{{"jump", json::object{{"target", v4 ? "refuse4" : "refuse6"}}}});
      }
      rules.push_back(std::move(expr));
    }
  }
  return rules;
}

// refuseN's rules: record, then the verdict. A reject needs TCP, and in a
// chain of its own (reached by a jump) nft cannot see that the packet is:
// it adds `meta l4proto tcp` before it, and lists it.
std::vector<json::array> expected_refuse_rules(bool v4, Verdict verdict) {
  json::array refuse;
  if (verdict == Verdict::kReject)
    refuse.push_back(match("==", json::object{{"meta", json::object{{"key", "l4proto"}}}}, "tcp"));
  refuse.push_back(verdict_json(verdict));
  return {json::array{ct_state_new(), record("add", v4, v4 ? "refused4" : "refused6")},
          std::move(refuse)};
}

// One element of an evidence set, as listed:
// {"elem": {"val": {"concat": ["192.0.2.7", 4191]}, "expires": 590,
//  "counter": {"packets": 3, "bytes": 180}}}. nullopt if not so.
std::optional<Sighting> sighting(const json::value& e, const EvidenceSet& set) {
  const json::value* elem = e.is_object() ? find(e.get_object(), "elem") : nullptr;
  if (!elem || !elem->is_object()) return std::nullopt;
  const json::value* val = find(elem->get_object(), "val");
  const json::value* concat = val && val->is_object() ? find(val->get_object(), "concat") : nullptr;
  if (!concat || !concat->is_array() || concat->get_array().size() != 2) return std::nullopt;
  const json::value& addr = concat->get_array()[0];
  const json::value& port = concat->get_array()[1];
  if (!addr.is_string() || !port.is_int64() || port.get_int64() < 0 || port.get_int64() > 65535)
    return std::nullopt;
  boost::system::error_code ec;
  Sighting s;
  s.source = ip::make_address(std::string_view(addr.get_string()), ec);
  if (ec || s.source.is_v4() != set.v4) return std::nullopt;
  s.port = static_cast<std::uint16_t>(port.get_int64());
  if (const json::value* c = find(elem->get_object(), "counter"); c && c->is_object()) {
    if (const json::value* p = find(c->get_object(), "packets");
        p && p->is_int64() && p->get_int64() > 0)
      s.packets = static_cast<std::uint64_t>(p->get_int64());
  }
  // No time, or one the set's timeout cannot have given (an element added
  // by hand): not readable as evidence.
  const json::value* expires = find(elem->get_object(), "expires");
  if (!expires || !expires->is_int64() || expires->get_int64() < 0 ||
      expires->get_int64() > set.timeout.count())
    return std::nullopt;
  s.ago = set.timeout - std::chrono::seconds(expires->get_int64());
  return s;
}

// A listed rule's expressions with its counter's values taken out (added to
// `packets`), ready to compare with expected_rule.
json::array without_counts(const json::array& expr, std::uint64_t& packets) {
  json::array out = expr;
  for (json::value& v : out) {
    if (!v.is_object()) continue;
    json::value* c = v.get_object().if_contains("counter");
    if (!c || !c->is_object()) continue;
    if (const json::value* p = find(c->get_object(), "packets");
        p && p->is_int64() && p->get_int64() > 0)
      packets += static_cast<std::uint64_t>(p->get_int64());
    *c = json::object{{"packets", 0}, {"bytes", 0}};
  }
  return out;
}

const EvidenceSet* evidence_set(std::string_view name) {
  for (const EvidenceSet& e : kEvidenceSets)
    if (e.name == name) return &e;
  return nullptr;
}

const ChainLayout* layout_of(std::string_view name) {
  for (const ChainLayout& c : kChains)
    if (c.name == name) return &c;
  return nullptr;
}

}  // namespace

std::string render_replace(const Allowlist& a) {
  std::string out;
  const std::vector<Cidr> v4 = a.sources.cidrs_v4(), v6 = a.sources.cidrs_v6();
  out.reserve(1024 + 48 * (v4.size() + v6.size()));
  // "add" then "delete" makes the delete valid whether or not the table
  // exists; the whole script is one netlink transaction, so the old table
  // is replaced by the new one with no moment in between.
  out += "add table inet tetherd\n";
  out += "delete table inet tetherd\n";
  out += "table inet tetherd {\n";
  out += "\tset allowed4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n";
  render_elements(out, v4);
  out += "\t}\n";
  out += "\tset allowed6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n";
  render_elements(out, v6);
  out += "\t}\n";
  out += "\tset ports {\n\t\ttype inet_service\n";
  render_ports(out, a.ports);
  out += "\t}\n";
  out += "\tset cluster4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n";
  render_elements(out, a.cluster.cidrs_v4());
  out += "\t}\n";
  out += "\tset cluster6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n";
  render_elements(out, a.cluster.cidrs_v6());
  out += "\t}\n";
  out += "\tset cloud4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n";
  render_elements(out, a.cloud.cidrs_v4());
  out += "\t}\n";
  out += "\tset cloud6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n";
  render_elements(out, a.cloud.cidrs_v6());
  out += "\t}\n";
  out += "\tset closed {\n\t\ttype inet_service\n";
  render_ports(out, a.closed_ports);
  out += "\t}\n";
  out += "\tset inner4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n";
  render_elements(out, a.inner.cidrs_v4());
  out += "\t}\n";
  out += "\tset inner6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n";
  render_elements(out, a.inner.cidrs_v6());
  out += "\t}\n";
  for (const EvidenceSet& e : kEvidenceSets) {
    out += "\tset " + std::string(e.name) + " {\n\t\ttype " + (e.v4 ? "ipv4_addr" : "ipv6_addr") +
           " . inet_service\n\t\tsize " + std::to_string(e.size) +
           "\n\t\tflags dynamic,timeout\n\t\ttimeout " + std::to_string(e.timeout.count()) +
           "s\n\t\tcounter\n\t}\n";
  }
  // The refused: recorded on a connection's first packet, then refused.
  // Recording and verdict are two rules: a rule that adds to a full set
  // stops there, and a full set must not let anything through.
  for (const bool v4 : {true, false}) {
    out += std::string("\tchain ") + (v4 ? "refuse4" : "refuse6") + " {\n";
    out += std::string("\t\tct state new add ") +
           (v4 ? "@refused4 { ip saddr" : "@refused6 { ip6 saddr") + " . tcp dport }\n";
    out += std::string("\t\t") + verdict_text(a.verdict) + "\n\t}\n";
  }
  for (const ChainLayout& chain : kChains) {
    out += "\tchain " + std::string(chain.name) + " {\n";
    out += "\t\ttype filter hook " + std::string(chain.name) + " priority " +
           std::to_string(chain.priority) + "; policy accept;\n";
    // Refused: a source not allowed on a managed port, then one not inner
    // on a closed port (none of the cloud's).
    for (const bool on_closed : {false, true}) {
      for (const bool v4 : {true, false}) {
        out += on_closed ? "\t\ttcp dport @closed " : "\t\ttcp dport @ports ";
        if (chain.local_only) out += "fib daddr type local ";
        if (chain.cluster_only) out += v4 ? "ip daddr @cluster4 " : "ip6 daddr @cluster6 ";
        out += v4 ? "ip saddr != @" : "ip6 saddr != @";
        out += std::string(on_closed ? "inner" : "allowed") + (v4 ? "4" : "6");
        out += std::string(" counter jump ") + (v4 ? "refuse4" : "refuse6") + "\n";
      }
    }
    // The cloud's new connections, where they end (so not in prerouting:
    // once per connection).
    for (const bool v4 : {true, false}) {
      if (!chain.records_accepted) continue;
      out += "\t\ttcp dport @ports ";
      if (chain.cluster_only) out += v4 ? "ip daddr @cluster4 " : "ip6 daddr @cluster6 ";
      out += v4 ? "ct state new ip saddr @cloud4 update @accepted4 { ip saddr . tcp dport }\n"
                : "ct state new ip6 saddr @cloud6 update @accepted6 { ip6 saddr . tcp dport }\n";
    }
    out += "\t}\n";
  }
  out += "}\n";
  return out;
}

std::string render_update(const Allowlist& from, const Allowlist& to) {
  const AllowlistDiff d = diff(from, to);
  auto family = [](const std::vector<Cidr>& cidrs, bool v4) {
    std::vector<Cidr> out;
    std::copy_if(cidrs.begin(), cidrs.end(), std::back_inserter(out),
                 [v4](const Cidr& c) { return c.is_v4() == v4; });
    return out;
  };
  std::string out;
  render_element_command(out, "delete", "allowed4", family(d.removed, true));
  render_element_command(out, "delete", "allowed6", family(d.removed, false));
  render_port_command(out, "delete", "ports", d.ports_removed);
  render_element_command(out, "add", "allowed4", family(d.added, true));
  render_element_command(out, "add", "allowed6", family(d.added, false));
  render_port_command(out, "add", "ports", d.ports_added);
  render_element_command(out, "delete", "cluster4", family(d.cluster_removed, true));
  render_element_command(out, "delete", "cluster6", family(d.cluster_removed, false));
  render_element_command(out, "add", "cluster4", family(d.cluster_added, true));
  render_element_command(out, "add", "cluster6", family(d.cluster_added, false));
  render_element_command(out, "delete", "cloud4", family(d.cloud_removed, true));
  render_element_command(out, "delete", "cloud6", family(d.cloud_removed, false));
  render_element_command(out, "add", "cloud4", family(d.cloud_added, true));
  render_element_command(out, "add", "cloud6", family(d.cloud_added, false));
  render_element_command(out, "delete", "inner4", family(d.inner_removed, true));
  render_element_command(out, "delete", "inner6", family(d.inner_removed, false));
  render_element_command(out, "add", "inner4", family(d.inner_added, true));
  render_element_command(out, "add", "inner6", family(d.inner_added, false));
  render_port_command(out, "delete", "closed", d.closed_removed);
  render_port_command(out, "add", "closed", d.closed_added);
  return out;
}

std::string render_remove() {
  return "add table inet tetherd\ndelete table inet tetherd\n";
}

Result<LiveTable> parse_live_table(std::string_view text) {
  auto items = nft_json::items(text);
  if (!items) return items.error();

  LiveTable live;
  bool chains_ok = true;
  int chains = 0;
  // The rules of each chain, as listed, counters taken out: the base
  // chains, then refuse4 and refuse6.
  std::array<std::vector<json::array>, kChains.size() + 2> rules;
  auto chain_index = [](std::string_view name) -> std::optional<std::size_t> {
    if (const ChainLayout* c = layout_of(name)) return static_cast<std::size_t>(c - kChains.data());
    if (name == "refuse4") return kChains.size();
    if (name == "refuse6") return kChains.size() + 1;
    return std::nullopt;
  };
  for (const json::value& item : *items) {
    if (!item.is_object()) continue;
    const json::object& o = item.get_object();
    if (const json::value* t = find(o, "table"); t && t->is_object()) {
      const json::value* handle = find(t->get_object(), "handle");
      if (handle && handle->is_int64() && handle->get_int64() > 0)
        live.evidence.table = static_cast<std::uint64_t>(handle->get_int64());
    } else if (const json::value* s = find(o, "set"); s && s->is_object()) {
      const json::object& set = s->get_object();
      const json::value* name = find(set, "name");
      const json::value* elems = find(set, "elem");
      if (!name || !name->is_string() || !elems) continue;
      if (!elems->is_array()) return make_error("set elements are not a list");
      const std::string_view n = name->get_string();
      if (const EvidenceSet* ev = evidence_set(n)) {
        // Evidence, not policy: what cannot be read is left out.
        auto& to = ev->refused ? live.evidence.refused : live.evidence.accepted;
        for (const json::value& e : elems->get_array())
          if (auto s = sighting(e, *ev)) to.push_back(std::move(*s));
        continue;
      }
      for (const json::value& e : elems->get_array()) {
        if (n == "ports" || n == "closed") {
          if (!e.is_int64() || e.get_int64() < 1 || e.get_int64() > 65535)
            return make_error("unexpected element in set " + std::string(n));
          (n == "ports" ? live.allowlist.ports : live.allowlist.closed_ports)
              .push_back(static_cast<std::uint16_t>(e.get_int64()));
        } else if ((n == "allowed4" || n == "allowed6") &&
                   !add_element(live.allowlist.sources, e)) {
          return make_error("unexpected element in set " + std::string(n));
        } else if ((n == "cluster4" || n == "cluster6") &&
                   !add_element(live.allowlist.cluster, e)) {
          return make_error("unexpected element in set " + std::string(n));
        } else if ((n == "cloud4" || n == "cloud6") && !add_element(live.allowlist.cloud, e)) {
          return make_error("unexpected element in set " + std::string(n));
        } else if ((n == "inner4" || n == "inner6") && !add_element(live.allowlist.inner, e)) {
          return make_error("unexpected element in set " + std::string(n));
        }
      }
    } else if (const json::value* c = find(o, "chain"); c && c->is_object()) {
      const json::object& chain = c->get_object();
      ++chains;
      const std::string_view name = nft_json::string_at(chain, "name");
      const ChainLayout* want = layout_of(name);
      const json::value* prio = find(chain, "prio");
      if (want) {
        chains_ok = chains_ok && nft_json::string_at(chain, "type") == "filter" &&
                    nft_json::string_at(chain, "hook") == want->name && prio && prio->is_int64() &&
                    prio->get_int64() == want->priority &&
                    nft_json::string_at(chain, "policy") == "accept";
      } else {
        // refuse4, refuse6: regular chains, reached only by a jump.
        chains_ok = chains_ok && chain_index(name) && !find(chain, "hook");
      }
    } else if (const json::value* r = find(o, "rule"); r && r->is_object()) {
      const auto in = chain_index(nft_json::string_at(r->get_object(), "chain"));
      const json::value* expr = find(r->get_object(), "expr");
      if (!in || !expr || !expr->is_array()) {
        chains_ok = false;
        continue;
      }
      rules[*in].push_back(without_counts(expr->get_array(), live.dropped_packets));
    }
  }
  std::sort(live.allowlist.ports.begin(), live.allowlist.ports.end());
  std::sort(live.allowlist.closed_ports.begin(), live.allowlist.closed_ports.end());

  // Every chain holds exactly its rules, in order, and both refuse chains
  // one verdict.
  auto intact_with = [&](Verdict verdict) {
    for (std::size_t i = 0; i < kChains.size(); ++i)
      if (rules[i] != expected_rules(kChains[i])) return false;
    return rules[kChains.size()] == expected_refuse_rules(true, verdict) &&
           rules[kChains.size() + 1] == expected_refuse_rules(false, verdict);
  };
  const bool whole = chains_ok && chains == static_cast<int>(kChains.size() + 2);
  if (whole && intact_with(Verdict::kDrop)) {
    live.allowlist.verdict = Verdict::kDrop;
    live.rules_intact = true;
  } else if (whole && intact_with(Verdict::kReject)) {
    live.allowlist.verdict = Verdict::kReject;
    live.rules_intact = true;
  }
  return live;
}

}  // namespace tetherd::firewall
