#pragma once
// A set of IPv4 and IPv6 addresses, kept as sorted, disjoint, non-adjacent
// ranges: duplicates, overlaps and neighbours merge, host bits do not matter.
// Two sets that allow the same addresses compare equal, however written.

#include <cstdint>
#include <utility>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "firewall/cidr.h"

namespace tetherd::firewall {

__extension__ typedef unsigned __int128 Uint128;

class AddressSet {
 public:
  AddressSet() = default;
  explicit AddressSet(const std::vector<Cidr>& cidrs);

  void add(const Cidr& cidr);
  void add(const AddressSet& other);
  // Takes out every address of `other`.
  void remove(const AddressSet& other);
  // An inclusive range; both ends of one family (else ignored, returns false).
  bool add_range(const boost::asio::ip::address& first, const boost::asio::ip::address& last);

  bool contains(const boost::asio::ip::address& address) const;
  // Every address of `cidr`.
  bool covers(const Cidr& cidr) const {
    AddressSet rest(std::vector<Cidr>{cidr});
    rest.remove(*this);
    return rest.empty();
  }
  bool empty() const { return v4_.empty() && v6_.empty(); }

  // The fewest CIDRs that cover exactly this set: IPv4 first, ascending.
  std::vector<Cidr> cidrs() const;
  std::vector<Cidr> cidrs_v4() const;
  std::vector<Cidr> cidrs_v6() const;

  friend bool operator==(const AddressSet&, const AddressSet&) = default;

 private:
  std::vector<std::pair<std::uint32_t, std::uint32_t>> v4_;  // inclusive ranges
  std::vector<std::pair<Uint128, Uint128>> v6_;
};

}  // namespace tetherd::firewall
