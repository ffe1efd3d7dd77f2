// Benchmarks of the segmentation engine's K-Means: the full Lloyd re-fit on 1M x 16 with k = 8
// (the speed target: faster than scikit-learn KMeans on the same matrix, ~1.6 s with
// n_init=1 on the reference machine) and one online mini-batch step.
//
//   ./kmeans_bench --benchmark_filter=Lloyd    (needs a Release or RelWithDebInfo build)
//
// Data: k well-separated Gaussian blobs (centres uniform in [-10, 10]^d, unit variance), the
// same layout tools/kmeans_compare.py --blobs generates for scikit-learn. To time both on the
// very same matrix:
//   /usr/bin/python3 tools/kmeans_compare.py --blobs 1000000 16 8 --write /tmp/blobs.csv
//   KMEANS_BENCH_CSV=/tmp/blobs.csv ./kmeans_bench --benchmark_filter=Lloyd
//   /usr/bin/python3 tools/kmeans_compare.py /tmp/blobs.csv --n-init 1
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "streamrec/kmeans.h"

namespace streamrec {
namespace {

std::vector<float> Blobs(int64_t n, int d, int k, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> centre(-10.0f, 10.0f);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<float> centres(static_cast<size_t>(k) * d);
  for (float& c : centres) c = centre(rng);
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % k);
    for (int l = 0; l < d; ++l) x[i * d + l] = centres[c * d + l] + noise(rng);
  }
  return x;
}

// customer_id,cluster,f1..f16 rows (header skipped), as tools/kmeans_compare.py reads them.
std::vector<float> LoadCsv(const char* path) {
  std::vector<float> x;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || (line[0] == 'c' && line.rfind("customer_id", 0) == 0)) continue;
    std::stringstream fields(line);
    std::string field;
    for (int col = 0; std::getline(fields, field, ','); ++col) {
      if (col >= 2) x.push_back(std::strtof(field.c_str(), nullptr));
    }
  }
  return x;
}

const std::vector<float>& Matrix1M() {
  static const std::vector<float> x = [] {
    const char* csv = std::getenv("KMEANS_BENCH_CSV");
    if (csv == nullptr) return Blobs(1000000, 16, 8, 42);
    std::vector<float> m = LoadCsv(csv);
    if (m.size() != 1000000u * 16) {
      std::fprintf(stderr, "%s: expected 1000000 x 16 values, read %zu\n", csv, m.size());
      std::exit(1);
    }
    return m;
  }();
  return x;
}

// Args: threads, n_init.
void BM_LloydFit1Mx16k8(benchmark::State& state) {
  const std::vector<float>& x = Matrix1M();
  KMeansParameters p;
  p.k = 8;
  p.threads = static_cast<int>(state.range(0));
  p.n_init = static_cast<int>(state.range(1));
  double objective = 0;
  int iterations = 0;
  for (auto _ : state) {
    StatusOr<KMeansResult> r = KMeansFit(x.data(), 1000000, 16, p);
    if (!r.ok()) {
      state.SkipWithError(r.status().ToString().c_str());
      return;
    }
    objective = r->objective;
    iterations = r->iterations;
  }
  state.counters["objective"] = objective;
  state.counters["iterations"] = iterations;
}
BENCHMARK(BM_LloydFit1Mx16k8)
    ->Args({1, 1})
    ->Args({2, 1})
    ->Args({2, 10})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Assignment pass only (the cost of reassigning every customer after a re-fit).
void BM_AssignNearest1Mx16k8(benchmark::State& state) {
  const std::vector<float>& x = Matrix1M();
  std::vector<float> centres(x.begin(), x.begin() + 8 * 16);
  std::vector<int32_t> labels(1000000);
  for (auto _ : state) {
    AssignNearest(centres.data(), 8, x.data(), 1000000, 16, labels.data(), nullptr,
                  static_cast<int>(state.range(0)));
    benchmark::DoNotOptimize(labels.data());
  }
  state.SetItemsProcessed(state.iterations() * 1000000);
}
BENCHMARK(BM_AssignNearest1Mx16k8)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// One online step of a micro-batch of `range(0)` customers, k = 8, d = 16.
void BM_MiniBatchStep(benchmark::State& state) {
  const int64_t m = state.range(0);
  const std::vector<float> x = Blobs(64 * 1024, 16, 8, 7);
  MiniBatchKMeansParameters params;
  params.half_life_points = 1e6;
  StatusOr<MiniBatchKMeans> model =
      MiniBatchKMeans::Create(params, 8, 16, std::vector<float>(x.begin(), x.begin() + 8 * 16),
                              std::vector<double>(8, 1000.0));
  if (!model.ok()) {
    state.SkipWithError(model.status().ToString().c_str());
    return;
  }
  std::vector<int32_t> labels(m);
  int64_t offset = 0;
  for (auto _ : state) {
    if (offset + m > 64 * 1024) offset = 0;
    model->Step(x.data() + offset * 16, m, labels.data());
    offset += m;
  }
  state.SetItemsProcessed(state.iterations() * m);
}
BENCHMARK(BM_MiniBatchStep)->Arg(256)->Arg(4096);

}  // namespace
}  // namespace streamrec

BENCHMARK_MAIN();
