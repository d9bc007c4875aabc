#include "firewall/address_set.h"

#include <algorithm>

namespace tetherd::firewall {
namespace {

namespace ip = boost::asio::ip;

Uint128 to_uint(const ip::address_v6& a) {
  Uint128 v = 0;
  for (unsigned char byte : a.to_bytes())
    v = (v << 8) | byte;
  return v;
}

ip::address_v6 to_v6(Uint128 v) {
  ip::address_v6::bytes_type bytes;
  for (int i = 15; i >= 0; --i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<unsigned char>(v & 0xff);
    v >>= 8;
  }
  return ip::address_v6(bytes);
}

// Inclusive range of a prefix in a W-bit address space.
template <class U, int W>
std::pair<U, U> range_of(U network, unsigned prefix) {
  const U host_mask = prefix == 0 ? ~U(0) : prefix >= W ? U(0) : (U(1) << (W - prefix)) - 1;
  return {network & ~host_mask, network | host_mask};
}

// Inserts a range and restores the invariant: sorted, disjoint, not adjacent.
template <class U>
void insert(std::vector<std::pair<U, U>>& ranges, std::pair<U, U> r) {
  auto it = std::lower_bound(ranges.begin(), ranges.end(), r);
  // Step back if the previous range overlaps or touches the new one.
  if (it != ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->second == ~U(0) || prev->second + 1 >= r.first) it = prev;
  }
  auto end = it;
  while (end != ranges.end() && (r.second == ~U(0) || end->first <= r.second + 1)) {
    r.first = std::min(r.first, end->first);
    r.second = std::max(r.second, end->second);
    ++end;
  }
  it = ranges.erase(it, end);
  ranges.insert(it, r);
}

template <class U>
bool range_contains(const std::vector<std::pair<U, U>>& ranges, U v) {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), std::pair<U, U>{v, ~U(0)});
  return it != ranges.begin() && std::prev(it)->second >= v;
}

// The parts of `ranges` outside `cut` (both sorted and disjoint).
template <class U>
std::vector<std::pair<U, U>> minus(const std::vector<std::pair<U, U>>& ranges,
                                   const std::vector<std::pair<U, U>>& cut) {
  std::vector<std::pair<U, U>> out;
  auto c = cut.begin();
  for (auto [first, last] : ranges) {
    while (c != cut.end() && c->second < first)
      ++c;
    bool left = true;  // something of [first, last] is still to place
    for (auto k = c; left && k != cut.end() && k->first <= last; ++k) {
      if (k->first > first) out.emplace_back(first, k->first - 1);
      if (k->second >= last)
        left = false;
      else
        first = k->second + 1;
    }
    if (left) out.emplace_back(first, last);
  }
  return out;
}

// Number of trailing zero bits, for U up to 128 bits.
template <class U>
int trailing_zeros(U v, int width) {
  if (v == 0) return width;
  int n = 0;
  while ((v & 1) == 0) {
    v >>= 1;
    ++n;
  }
  return n;
}

// Splits [first, last] into the fewest aligned blocks (CIDRs).
template <class U, int W, class Emit>
void decompose(U first, U last, Emit emit) {
  for (;;) {
    // The largest block starting at `first` that is aligned and fits.
    int size_bits = trailing_zeros(first, W);
    while (size_bits > 0) {
      const U span_minus_one = size_bits >= W ? ~U(0) : (U(1) << size_bits) - 1;
      if (last - first >= span_minus_one) break;
      --size_bits;
    }
    emit(first, static_cast<unsigned>(W - size_bits));
    const U span_minus_one = size_bits >= W ? ~U(0) : (U(1) << size_bits) - 1;
    if (last - first == span_minus_one) return;
    first += span_minus_one + 1;
  }
}

}  // namespace

AddressSet::AddressSet(const std::vector<Cidr>& cidrs) {
  for (const Cidr& c : cidrs)
    add(c);
}

void AddressSet::add(const Cidr& c) {
  if (c.is_v4()) {
    insert(v4_, range_of<std::uint32_t, 32>(c.network.to_v4().to_uint(), c.prefix));
  } else {
    insert(v6_, range_of<Uint128, 128>(to_uint(c.network.to_v6()), c.prefix));
  }
}

void AddressSet::add(const AddressSet& other) {
  for (const auto& r : other.v4_)
    insert(v4_, r);
  for (const auto& r : other.v6_)
    insert(v6_, r);
}

void AddressSet::remove(const AddressSet& other) {
  v4_ = minus(v4_, other.v4_);
  v6_ = minus(v6_, other.v6_);
}

bool AddressSet::add_range(const ip::address& first, const ip::address& last) {
  if (first.is_v4() && last.is_v4()) {
    const auto a = first.to_v4().to_uint(), b = last.to_v4().to_uint();
    if (a > b) return false;
    insert(v4_, {a, b});
    return true;
  }
  if (first.is_v6() && last.is_v6()) {
    const Uint128 a = to_uint(first.to_v6()), b = to_uint(last.to_v6());
    if (a > b) return false;
    insert(v6_, {a, b});
    return true;
  }
  return false;
}

bool AddressSet::contains(const ip::address& a) const {
  if (a.is_v4()) return range_contains(v4_, a.to_v4().to_uint());
  if (a.to_v6().is_v4_mapped()) {
    return range_contains(v4_, ip::make_address_v4(ip::v4_mapped, a.to_v6()).to_uint());
  }
  return range_contains(v6_, to_uint(a.to_v6()));
}

std::vector<Cidr> AddressSet::cidrs_v4() const {
  std::vector<Cidr> out;
  for (const auto& [first, last] : v4_) {
    decompose<std::uint32_t, 32>(first, last, [&](std::uint32_t net, unsigned prefix) {
      out.push_back(Cidr{ip::address_v4(net), static_cast<std::uint8_t>(prefix)});
    });
  }
  return out;
}

std::vector<Cidr> AddressSet::cidrs_v6() const {
  std::vector<Cidr> out;
  for (const auto& [first, last] : v6_) {
    decompose<Uint128, 128>(first, last, [&](Uint128 net, unsigned prefix) {
      out.push_back(Cidr{to_v6(net), static_cast<std::uint8_t>(prefix)});
    });
  }
  return out;
}

std::vector<Cidr> AddressSet::cidrs() const {
  std::vector<Cidr> out = cidrs_v4();
  std::vector<Cidr> v6 = cidrs_v6();
  out.insert(out.end(), v6.begin(), v6.end());
  return out;
}

}  // namespace tetherd::firewall
