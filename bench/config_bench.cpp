// Cost of loading the shipped example configuration: what a SIGHUP reload
// spends before anything is applied.

#include <fstream>
#include <sstream>

#include <benchmark/benchmark.h>

#include "agent/config/config_loader.h"

namespace {

std::string example_config() {
  std::ifstream in(TETHERD_SOURCE_DIR "/packaging/tetherd.yaml");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void BM_ParseExampleConfig(benchmark::State& state) {
  const std::string text = example_config();
  const tetherd::LoadOptions options{"bench-node"};
  for (auto _ : state) {
    auto result = tetherd::parse_config(text, options);
    if (!std::holds_alternative<tetherd::Config>(result)) {
      state.SkipWithError("example configuration does not parse");
      break;
    }
    benchmark::DoNotOptimize(result);
  }
}
BENCHMARK(BM_ParseExampleConfig);

}  // namespace

BENCHMARK_MAIN();
