#include "firewall/nft_ruleset.h"

#include <algorithm>
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

// Does this rule's expression list read like one of ours, and with which verdict?
std::optional<Verdict> our_rule(const json::array& expr, std::string_view family_set,
                                std::uint64_t& packets_out) {
  bool ports = false, local = false, saddr = false;
  std::uint64_t packets = 0;
  std::optional<Verdict> verdict;
  for (const json::value& v : expr) {
    if (!v.is_object()) return std::nullopt;
    const json::object& o = v.get_object();
    if (const json::value* m = find(o, "match"); m && m->is_object()) {
      const json::value* right = find(m->get_object(), "right");
      const json::value* op = find(m->get_object(), "op");
      if (!right || !op) return std::nullopt;
      const std::string r = right->is_string() ? std::string(right->get_string()) : "";
      if (r == "@ports") ports = true;
      if (r == "local") local = true;
      if (r == family_set && op->is_string() && op->get_string() == "!=") saddr = true;
    } else if (const json::value* c = find(o, "counter"); c && c->is_object()) {
      if (const json::value* p = find(c->get_object(), "packets"); p && p->is_int64()) {
        packets += static_cast<std::uint64_t>(p->get_int64());
      }
    } else if (o.contains("drop")) {
      verdict = Verdict::kDrop;
    } else if (o.contains("reject")) {
      verdict = Verdict::kReject;
    } else {
      return std::nullopt;
    }
  }
  if (!ports || !local || !saddr || !verdict) return std::nullopt;
  packets_out += packets;
  return verdict;
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
  out += "\tchain prerouting {\n";
  out += "\t\ttype filter hook prerouting priority " + std::to_string(kChainPriority) +
         "; policy accept;\n";
  for (const char* family : {"ip saddr != @allowed4", "ip6 saddr != @allowed6"}) {
    out += std::string("\t\ttcp dport @ports fib daddr type local ") + family + " counter " +
           verdict_text(a.verdict) + "\n";
  }
  out += "\t}\n}\n";
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
  return out;
}

std::string render_remove() {
  return "add table inet tetherd\ndelete table inet tetherd\n";
}

Result<LiveTable> parse_live_table(std::string_view text) {
  auto items = nft_json::items(text);
  if (!items) return items.error();

  LiveTable live;
  bool chain_ok = false;
  int rules = 0, ours = 0;
  std::optional<Verdict> verdict4, verdict6;
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
        }
      }
    } else if (const json::value* c = find(o, "chain"); c && c->is_object()) {
      const json::object& chain = c->get_object();
      const json::value* hook = find(chain, "hook");
      const json::value* prio = find(chain, "prio");
      const json::value* policy = find(chain, "policy");
      chain_ok = hook && hook->is_string() && hook->get_string() == "prerouting" && prio &&
                 prio->is_int64() && prio->get_int64() == kChainPriority && policy &&
                 policy->is_string() && policy->get_string() == "accept";
    } else if (const json::value* r = find(o, "rule"); r && r->is_object()) {
      ++rules;
      const json::value* expr = find(r->get_object(), "expr");
      if (!expr || !expr->is_array()) continue;
      if (auto v = our_rule(expr->get_array(), "@allowed4", live.dropped_packets)) {
        verdict4 = v, ++ours;
      } else if (auto v6 = our_rule(expr->get_array(), "@allowed6", live.dropped_packets)) {
        verdict6 = v6, ++ours;
      }
    }
  }
  std::sort(live.allowlist.ports.begin(), live.allowlist.ports.end());
  live.allowlist.verdict = verdict4.value_or(Verdict::kDrop);
  live.rules_intact = chain_ok && rules == 2 && ours == 2 && verdict4 && verdict4 == verdict6;
  return live;
}

}  // namespace tetherd::firewall
