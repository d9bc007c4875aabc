#pragma once
// The simulations' seeds: SIM_SEED=<seed> alone when given (a failure's
// replay), else the fixed ones and `drawn` drawn afresh (printed with a
// failure).

#include <cstdint>
#include <cstdlib>
#include <random>
#include <vector>

namespace tetherd::sim {

inline std::vector<std::uint64_t> seeds(std::vector<std::uint64_t> fixed, int drawn) {
  if (const char* given = std::getenv("SIM_SEED"); given && *given)
    return {std::strtoull(given, nullptr, 10)};
  std::random_device device;
  for (int i = 0; i < drawn; ++i)
    fixed.push_back((static_cast<std::uint64_t>(device()) << 32) | device());
  return fixed;
}

}  // namespace tetherd::sim
