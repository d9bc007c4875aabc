#include "firewall/nft_json.h"

#include <boost/json/parse.hpp>

namespace tetherd::firewall::nft_json {

namespace json = boost::json;

const json::value* find(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

std::string_view string_at(const json::object& o, std::string_view key) {
  const json::value* v = find(o, key);
  return v && v->is_string() ? std::string_view(v->get_string()) : std::string_view();
}

Result<json::array> items(std::string_view text) {
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) return make_error("nftables listing is not JSON: " + ec.message());
  if (!doc.is_object()) return make_error("nftables listing is not a JSON object");
  json::value* items = doc.get_object().if_contains("nftables");
  if (!items || !items->is_array()) return make_error("nftables listing has no \"nftables\" array");
  return std::move(items->get_array());
}

}  // namespace tetherd::firewall::nft_json
