#include "firewall/coexistence.h"

#include <algorithm>
#include <set>
#include <utility>

#include "firewall/nft_json.h"
#include "firewall/nft_ruleset.h"

namespace tetherd::firewall {

namespace json = boost::json;

Result<std::vector<BlockingChain>> parse_blocking_chains(std::string_view text) {
  auto items = nft_json::items(text);
  if (!items) return items.error();
  std::vector<BlockingChain> out;
  std::set<std::pair<std::string, std::string>> ufw_tables;
  for (const json::value& item : *items) {
    const json::object* o = item.if_object();
    const json::value* c = o ? nft_json::find(*o, "chain") : nullptr;
    if (!c || !c->is_object()) continue;
    const json::object& chain = c->get_object();
    BlockingChain b{std::string(nft_json::string_at(chain, "family")),
                    std::string(nft_json::string_at(chain, "table")),
                    std::string(nft_json::string_at(chain, "name")),
                    std::string(nft_json::string_at(chain, "hook"))};
    if (b.chain == "ufw-user-input" || b.chain == "ufw6-user-input") {
      ufw_tables.emplace(b.family, b.table);
      continue;
    }
    if (b.family == kTableFamily && b.table == kTableName) continue;
    if (nft_json::string_at(chain, "policy") != "drop") continue;
    const bool on_path = (b.family == "ip" || b.family == "ip6" || b.family == "inet")
                             ? (b.hook == "prerouting" || b.hook == "input" || b.hook == "forward")
                             : (b.family == "netdev" && b.hook == "ingress");
    if (on_path) out.push_back(std::move(b));
  }
  for (BlockingChain& b : out)
    b.ufw = ufw_tables.contains({b.family, b.table});
  return out;
}

std::string explain(const BlockingChain& c, const std::vector<std::uint16_t>& ports) {
  std::string list;
  for (std::uint16_t p : ports)
    list += (list.empty() ? "" : ", ") + std::to_string(p);
  const std::string where = "table " + c.family + " " + c.table + ", chain " + c.chain + " (hook " +
                            c.hook + ", policy drop)";
  const std::string what = c.hook == "forward"
                               ? "ports published through DNAT (NodePort, servicelb, hostPort) "
                                 "among TCP " +
                                     list
                               : "TCP " + list;
  if (c.ufw) {
    return "ufw is active (" + where + "): the cloud will be blocked on " + what +
           " unless ufw allows its sources; tetherd cannot open what ufw closes. Use "
           "firewall.backend: ufw, or allow the sources in ufw yourself";
  }
  return where + " drops by default: the cloud will be blocked on " + what +
         " unless that table accepts it; tetherd cannot open what another table closes";
}

}  // namespace tetherd::firewall
