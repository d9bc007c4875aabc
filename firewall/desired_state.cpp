#include "firewall/desired_state.h"

#include <boost/json.hpp>

namespace tetherd::firewall {

namespace json = boost::json;

std::string encode_desired(const DesiredSources& desired) {
  json::object o;
  o["version"] = 1;
  json::array sources;
  for (const auto& s : desired.sources)
    sources.emplace_back(s);
  o["sources"] = std::move(sources);
  json::array ports;
  for (auto p : desired.ports)
    ports.emplace_back(p);
  o["ports"] = std::move(ports);
  return json::serialize(o) + "\n";
}

Result<DesiredSources> decode_desired(std::string_view text) {
  boost::system::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec) return make_error("not JSON: " + ec.message());
  const json::object* o = v.if_object();
  if (!o) return make_error("not a JSON object");
  const json::value* version = o->if_contains("version");
  if (!version || !version->is_int64() || version->get_int64() != 1) {
    return make_error("unknown version (expected 1)");
  }
  DesiredSources out;
  const json::value* sources = o->if_contains("sources");
  if (!sources || !sources->is_array()) return make_error("\"sources\" is not a list");
  for (const json::value& s : sources->get_array()) {
    if (!s.is_string()) return make_error("\"sources\" holds a non-string");
    out.sources.emplace_back(s.get_string());
  }
  const json::value* ports = o->if_contains("ports");
  if (!ports || !ports->is_array()) return make_error("\"ports\" is not a list");
  for (const json::value& p : ports->get_array()) {
    if (!p.is_int64() || p.get_int64() < 1 || p.get_int64() > 65535) {
      return make_error("\"ports\" holds something that is not a port");
    }
    out.ports.push_back(static_cast<std::uint16_t>(p.get_int64()));
  }
  return out;
}

}  // namespace tetherd::firewall
