#include "firewall/nft_ruleset.h"

#include <algorithm>
#include <array>
#include <iterator>

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

void render_element_command(std::string& out, const char* verb, const char* set,
                            const std::vector<Cidr>& cidrs) {
  if (cidrs.empty()) return;
  out += std::string(verb) + " element inet tetherd " + set + " { ";
  render_list(out, cidrs);
  out += " }\n";
}

void render_port_command(std::string& out, const char* verb,
                         const std::vector<std::uint16_t>& ports) {
  if (ports.empty()) return;
  out += std::string(verb) + " element inet tetherd ports { ";
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

json::array expected_rule(const ChainLayout& chain, bool v4, Verdict verdict) {
  const char* family = v4 ? "ip" : "ip6";
  json::array expr;
  expr.push_back(match("==", payload("tcp", "dport"), "@ports"));
  if (chain.local_only) {
    expr.push_back(match(
        "==",
        json::object{{"fib", json::object{{"result", "type"}, {"flags", json::array{"daddr"}}}}},
        "local"));
  }
  if (chain.cluster_only)
    expr.push_back(match("==", payload(family, "daddr"), v4 ? "@cluster4" : "@cluster6"));
  expr.push_back(match("!=", payload(family, "saddr"), v4 ? "@allowed4" : "@allowed6"));
  expr.push_back(json::object{{"counter", json::object{{"packets", 0}, {"bytes", 0}}}});
  if (verdict == Verdict::kDrop) {
    expr.push_back(json::object{{"drop", nullptr}});
  } else {
    expr.push_back(json::object{{"reject", json::object{{"type", "tcp reset"}}}});
  }
  return expr;
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
  if (!a.ports.empty()) {
    out += "\t\telements = { ";
    for (std::size_t i = 0; i < a.ports.size(); ++i) {
      out += (i ? ", " : "") + std::to_string(a.ports[i]);
    }
    out += " }\n";
  }
  out += "\t}\n";
  out += "\tset cluster4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n";
  render_elements(out, a.cluster.cidrs_v4());
  out += "\t}\n";
  out += "\tset cluster6 {\n\t\ttype ipv6_addr\n\t\tflags interval\n";
  render_elements(out, a.cluster.cidrs_v6());
  out += "\t}\n";
  for (const ChainLayout& chain : kChains) {
    out += "\tchain " + std::string(chain.name) + " {\n";
    out += "\t\ttype filter hook " + std::string(chain.name) + " priority " +
           std::to_string(chain.priority) + "; policy accept;\n";
    for (const bool v4 : {true, false}) {
      out += "\t\ttcp dport @ports ";
      if (chain.local_only) out += "fib daddr type local ";
      if (chain.cluster_only) out += v4 ? "ip daddr @cluster4 " : "ip6 daddr @cluster6 ";
      out += v4 ? "ip saddr != @allowed4" : "ip6 saddr != @allowed6";
      out += std::string(" counter ") + verdict_text(a.verdict) + "\n";
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
  render_port_command(out, "delete", d.ports_removed);
  render_element_command(out, "add", "allowed4", family(d.added, true));
  render_element_command(out, "add", "allowed6", family(d.added, false));
  render_port_command(out, "add", d.ports_added);
  render_element_command(out, "delete", "cluster4", family(d.cluster_removed, true));
  render_element_command(out, "delete", "cluster6", family(d.cluster_removed, false));
  render_element_command(out, "add", "cluster4", family(d.cluster_added, true));
  render_element_command(out, "add", "cluster6", family(d.cluster_added, false));
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
  // The rules of each chain, as listed, counters taken out.
  std::array<std::vector<json::array>, kChains.size()> rules;
  for (const json::value& item : *items) {
    if (!item.is_object()) continue;
    const json::object& o = item.get_object();
    if (const json::value* s = find(o, "set"); s && s->is_object()) {
      const json::object& set = s->get_object();
      const json::value* name = find(set, "name");
      const json::value* elems = find(set, "elem");
      if (!name || !name->is_string() || !elems) continue;
      if (!elems->is_array()) return make_error("set elements are not a list");
      const std::string_view n = name->get_string();
      for (const json::value& e : elems->get_array()) {
        if (n == "ports") {
          if (!e.is_int64() || e.get_int64() < 1 || e.get_int64() > 65535) {
            return make_error("unexpected element in set ports");
          }
          live.allowlist.ports.push_back(static_cast<std::uint16_t>(e.get_int64()));
        } else if ((n == "allowed4" || n == "allowed6") &&
                   !add_element(live.allowlist.sources, e)) {
          return make_error("unexpected element in set " + std::string(n));
        } else if ((n == "cluster4" || n == "cluster6") &&
                   !add_element(live.allowlist.cluster, e)) {
          return make_error("unexpected element in set " + std::string(n));
        }
      }
    } else if (const json::value* c = find(o, "chain"); c && c->is_object()) {
      const json::object& chain = c->get_object();
      ++chains;
      const ChainLayout* want = layout_of(nft_json::string_at(chain, "name"));
      const json::value* prio = find(chain, "prio");
      chains_ok = chains_ok && want && nft_json::string_at(chain, "type") == "filter" &&
                  nft_json::string_at(chain, "hook") == want->name && prio && prio->is_int64() &&
                  prio->get_int64() == want->priority &&
                  nft_json::string_at(chain, "policy") == "accept";
    } else if (const json::value* r = find(o, "rule"); r && r->is_object()) {
      const ChainLayout* in = layout_of(nft_json::string_at(r->get_object(), "chain"));
      const json::value* expr = find(r->get_object(), "expr");
      if (!in || !expr || !expr->is_array()) {
        chains_ok = false;
        continue;
      }
      rules[static_cast<std::size_t>(in - kChains.data())].push_back(
          without_counts(expr->get_array(), live.dropped_packets));
    }
  }
  std::sort(live.allowlist.ports.begin(), live.allowlist.ports.end());

  // Every chain holds exactly its two rules, in order, all with one verdict.
  auto intact_with = [&](Verdict verdict) {
    for (std::size_t i = 0; i < kChains.size(); ++i) {
      if (rules[i].size() != 2 || rules[i][0] != expected_rule(kChains[i], true, verdict) ||
          rules[i][1] != expected_rule(kChains[i], false, verdict))
        return false;
    }
    return true;
  };
  const bool whole = chains_ok && chains == static_cast<int>(kChains.size());
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
