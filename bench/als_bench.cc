// Benchmarks of implicit ALS (streamrec/als.h): the full re-fit on 1M customers x 300 items with
// ~10M non-zeros, 32 factors, 15 iterations, 2 threads (the target: <= 60 s on 2 cores),
// the fold-in of one customer with 20 and 200 items, and a top-10 over 5000 items.
//
//   cmake --preset release && cmake --build build-release -j2 --target als_bench
//   build-release/als_bench                          (all; the fit runs once, ~1 min)
//   build-release/als_bench --benchmark_filter=FoldIn
//
// Data: every customer draws 6..18 purchases (uniform) of items with Zipf(1) popularity (item r
// has weight 1 / (r + 1)); repeated draws add to the count. Fixed seed. The fit reports the
// matrix size and the process's peak RSS (getrusage ru_maxrss) as counters.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "streamrec/als.h"

namespace streamrec {
namespace {

std::vector<std::string> ItemNames(uint32_t n) {
  std::vector<std::string> ids;
  for (uint32_t i = 0; i < n; ++i) ids.push_back("item" + std::to_string(i));
  return ids;
}

std::vector<double> ZipfCdf(uint32_t items) {
  std::vector<double> cdf(items);
  double sum = 0;
  for (uint32_t i = 0; i < items; ++i) cdf[i] = (sum += 1.0 / (i + 1));
  for (double& c : cdf) c /= sum;
  return cdf;
}

AlsMatrix ZipfMatrix(uint32_t users, uint32_t items, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> draws(6, 18);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const std::vector<double> cdf = ZipfCdf(items);
  std::vector<AlsTriplet> t;
  t.reserve(static_cast<size_t>(users) * 12);
  for (uint32_t u = 0; u < users; ++u) {
    const int n = draws(rng);
    for (int k = 0; k < n; ++k) {
      const uint32_t i = static_cast<uint32_t>(
          std::lower_bound(cdf.begin(), cdf.end(), unit(rng)) - cdf.begin());
      t.push_back({u, std::min(i, items - 1), 1.0});
    }
  }
  return std::move(AlsMatrixFromTriplets(users, ItemNames(items), t)).value();
}

double PeakRssMiB() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return static_cast<double>(r.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

void BM_AlsFit1Mx300(benchmark::State& state) {
  const AlsMatrix m = ZipfMatrix(1000000, 300, 1);
  AlsOptions o;  // factors 32, 15 iterations, 2 threads
  o.factors = 32;
  o.iterations = 15;
  o.threads = 2;
  for (auto _ : state) {
    auto model = AlsFit(m, o);
    if (!model.ok()) state.SkipWithError(model.status().ToString().c_str());
    benchmark::DoNotOptimize(model);
  }
  state.counters["users"] = m.users;
  state.counters["items"] = m.items();
  state.counters["nonzeros"] = static_cast<double>(m.nonzeros());
  state.counters["peak_rss_MiB"] = PeakRssMiB();
}
BENCHMARK(BM_AlsFit1Mx300)->Unit(benchmark::kSecond)->UseRealTime()->Iterations(1);

// A model with random item factors: fold-in and scoring costs do not depend on the values.
AlsModel RandomModel(uint32_t items, int factors) {
  std::mt19937_64 rng(2);
  std::normal_distribution<float> g(0.0f, 0.1f);
  AlsFactors y(items, factors);
  for (Eigen::Index k = 0; k < y.size(); ++k) y.data()[k] = g(rng);
  AlsOptions o;
  o.factors = factors;
  return AlsModel(ItemNames(items), std::move(y), o);
}

void BM_AlsFoldIn(benchmark::State& state) {
  const AlsModel model = RandomModel(300, 32);
  std::vector<AlsInteraction> history;
  for (int64_t k = 0; k < state.range(0); ++k) {
    history.push_back({static_cast<uint32_t>((k * 7) % 300), 1.0 + k % 3});
  }
  AlsWorkspace ws;
  AlsVector x;
  for (auto _ : state) {
    model.FoldIn(history, &ws, &x);
    benchmark::DoNotOptimize(x.data());
  }
}
BENCHMARK(BM_AlsFoldIn)->Arg(20)->Arg(200)->Unit(benchmark::kMicrosecond);

void BM_AlsTop10Of5000(benchmark::State& state) {
  const AlsModel model = RandomModel(5000, 32);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> g(0.0f, 1.0f);
  AlsVector x(32);
  for (int k = 0; k < 32; ++k) x[k] = g(rng);
  const std::vector<uint32_t> owned = {1, 17, 250, 4000};
  for (auto _ : state) {
    std::vector<AlsScored> top = model.TopN(x, 10, owned);
    benchmark::DoNotOptimize(top.data());
  }
}
BENCHMARK(BM_AlsTop10Of5000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace streamrec

BENCHMARK_MAIN();
