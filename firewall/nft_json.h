#pragma once
// Reading nftables' JSON listings (`nft -j list ...`, libnftables with
// NFT_CTX_OUTPUT_JSON), shared by the table reader and the coexistence
// check. The text comes from the local kernel through libnftables.

#include <string_view>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "agent/core/result.h"

namespace tetherd::firewall::nft_json {

const boost::json::value* find(const boost::json::object& o, std::string_view key);
// The member `key` if it is a string; empty otherwise.
std::string_view string_at(const boost::json::object& o, std::string_view key);
// The listing's "nftables" array, or what is wrong with the text.
Result<boost::json::array> items(std::string_view text);

}  // namespace tetherd::firewall::nft_json
