// Fuzz target: an EdgeNode from the control plane, through everything that
// acts on it before the kernel: the decoder, firewall::validate, and the
// status written back (whose reasons and messages may carry the node's own
// strings). Refused or decoded, never a crash; what tetherd would write
// always fits the CRD.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "agent/core/edge_node.h"
#include "agent/core/node_status.h"
#include "agent/kube/api_error.h"
#include "firewall/allowlist.h"

namespace {

using namespace tetherd;

bool crd_reason(std::string_view r) {
  const auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); };
  const auto allowed = [&](char c) {
    return letter(c) || (c >= '0' && c <= '9') || c == '_' || c == ',' || c == ':';
  };
  if (r.empty()) return true;
  if (!letter(r.front()) || r.back() == ',' || r.back() == ':') return false;
  for (char c : r) {
    if (!allowed(c)) return false;
  }
  return true;
}

void check(const NodeStatus& status) {
  for (const Condition& c : status.conditions.all()) {
    if (!crd_reason(c.reason) || c.reason.size() > kMaxConditionReasonBytes) std::abort();
    if (c.message.size() > kMaxConditionMessageBytes) std::abort();
  }
  // Boost.JSON refuses invalid UTF-8 when parsing: what we write must read back.
  const std::string body = boost::json::serialize(status_patch(status));
  boost::system::error_code ec;
  (void)boost::json::parse(body, ec);
  if (ec) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const WallTime now{std::chrono::seconds(1795253405)};

  // The raw bytes as a message and a reason: they need not be UTF-8.
  NodeStatus raw;
  raw.conditions.set(condition_type::kConnected, ConditionStatus::kFalse, text, text, now);
  raw.agent_version = std::string(text);
  check(raw);

  boost::system::error_code ec;
  const boost::json::value value =
      boost::json::parse(text, ec, boost::json::storage_ptr(), kube::api_json_options());
  if (ec || !value.is_object()) return 0;
  const auto node = decode_edge_node(value.get_object());
  if (!node) return 0;

  if (node->firewall.sources.size() > kMaxAllowedSourcesDecoded) std::abort();
  const auto valid = firewall::validate(node->firewall, firewall::Policy{});

  NodeStatus status;
  status.observed_generation = node->generation;
  status.conditions.set(condition_type::kConnected, ConditionStatus::kTrue, node->rotate,
                        node->name, now);
  if (valid) {
    status.firewall_sources = valid->size();
    status.conditions.set(condition_type::kFirewallInSync, ConditionStatus::kTrue, "Applied",
                          node->resource_version, now);
  } else {
    status.conditions.set(condition_type::kFirewallInSync, ConditionStatus::kFalse,
                          "InvalidSources", valid.error().message, now);
  }
  check(status);

  StatusPublisher publisher(std::chrono::seconds(30));
  const auto patch = status_patch(status);
  if (!publisher.due(patch, now)) std::abort();
  publisher.written(patch, now);
  if (publisher.due(patch, now)) std::abort();
  return 0;
}
