// A pod list from k3s (any JSON), decoded into the meshed pods on a node.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <boost/json/parse.hpp>

#include "agent/core/mesh.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  boost::system::error_code ec;
  const auto value =
      boost::json::parse(std::string_view(reinterpret_cast<const char*>(data), size), ec);
  if (ec || !value.is_object()) return 0;
  const auto* items = value.get_object().if_contains("items");
  if (items == nullptr || !items->is_array()) return 0;
  std::vector<boost::json::object> objects;
  for (const auto& item : items->get_array())
    if (item.is_object()) objects.push_back(item.get_object());
  (void)tetherd::meshed_pods(objects, "edge-1", 4);
  return 0;
}
