#include "streamrec/kmeans.h"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <thread>

namespace streamrec {

namespace {

// Work is split into chunks of this many rows whatever the thread count; each chunk's partial
// sums go to their own slot and are combined in chunk order, so results are bit-identical for
// any number of threads.
constexpr int64_t kChunkRows = 8192;
// Rows per distance block (block x k products, kept in L1/L2).
constexpr int64_t kBlockRows = 256;

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstRowMap = Eigen::Map<const RowMatrix>;
using RowMap = Eigen::Map<RowMatrix>;

int EffectiveThreads(int threads) {
  if (threads > 0) return threads;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

int64_t NumChunks(int64_t n) { return (n + kChunkRows - 1) / kChunkRows; }

// Runs fn(task, worker) for task in [0, tasks) on up to `threads` threads (the caller is worker
// 0). Every thread started here is joined before returning.
template <typename Fn>
void ParallelFor(int64_t tasks, int threads, Fn&& fn) {
  const int workers = static_cast<int>(std::min<int64_t>(EffectiveThreads(threads), tasks));
  if (workers <= 1) {
    for (int64_t t = 0; t < tasks; ++t) fn(t, 0);
    return;
  }
  std::atomic<int64_t> next{0};
  auto work = [&](int worker) {
    for (int64_t t = next.fetch_add(1); t < tasks; t = next.fetch_add(1)) fn(t, worker);
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (int w = 1; w < workers; ++w) pool.emplace_back(work, w);
  work(0);
  for (std::thread& t : pool) t.join();
}

std::string Num(double v) { return std::to_string(v); }

// Four floats in one SIMD register (GCC/Clang vector extension: SSE on x86, NEON on ARM).
typedef float Float4 __attribute__((vector_size(16)));

inline Float4 Load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Squared Euclidean distance with two independent SIMD accumulators (no reassociation flags
// needed, no single dependency chain).
inline float L2Squared(const float* a, const float* b, int d) {
  Float4 s0 = {0, 0, 0, 0}, s1 = {0, 0, 0, 0};
  int l = 0;
  for (; l + 8 <= d; l += 8) {
    const Float4 t0 = Load4(a + l) - Load4(b + l);
    const Float4 t1 = Load4(a + l + 4) - Load4(b + l + 4);
    s0 += t0 * t0;
    s1 += t1 * t1;
  }
  if (l + 4 <= d) {
    const Float4 t0 = Load4(a + l) - Load4(b + l);
    s0 += t0 * t0;
    l += 4;
  }
  float tail = 0;
  for (; l < d; ++l) {
    const float t = a[l] - b[l];
    tail += t * t;
  }
  const Float4 s = s0 + s1;
  return ((s[0] + s[2]) + (s[1] + s[3])) + tail;
}

// Squared norms of the k centres.
void CentreNorms(const float* centres, int k, int d, float* out) {
  for (int j = 0; j < k; ++j) {
    const float* c = centres + static_cast<int64_t>(j) * d;
    double s = 0;
    for (int l = 0; l < d; ++l) s += static_cast<double>(c[l]) * c[l];
    out[j] = static_cast<float>(s);
  }
}

// Nearest centre of rows [begin, end) by ||c||^2 - 2 x.c, from a blocked product computed with
// Eigen; `gram` holds kBlockRows x k floats. Writes labels and exact squared distances.
void NearestInRows(const float* x, int64_t begin, int64_t end, int d, const float* centres,
                   const float* centre_norms, int k, float* gram, int32_t* labels, float* dist) {
  const ConstRowMap c(centres, k, d);
  for (int64_t b = begin; b < end; b += kBlockRows) {
    const int64_t rows = std::min(kBlockRows, end - b);
    const ConstRowMap xb(x + b * d, rows, d);
    RowMap g(gram, rows, k);
    g.noalias() = xb * c.transpose();
    for (int64_t r = 0; r < rows; ++r) {
      const float* gr = gram + r * k;
      int32_t best = 0;
      float best_v = centre_norms[0] - 2.0f * gr[0];
      for (int j = 1; j < k; ++j) {
        const float v = centre_norms[j] - 2.0f * gr[j];
        if (v < best_v) {
          best_v = v;
          best = j;
        }
      }
      const int64_t i = b + r;
      labels[i - begin] = best;
      // The expansion loses precision far from the origin: the reported distance is exact.
      dist[i - begin] = L2Squared(x + i * d, centres + static_cast<int64_t>(best) * d, d);
    }
  }
}

// Exact squared distances of point `xi` to up to 4 centres held transposed in `ct` (d entries of
// 4 lanes). Reads the point once and packs nothing: for the few-centre passes of k-means++ this
// beats a GEMM.
inline Float4 SquaredDistances4(const float* xi, int d, const Float4* ct) {
  Float4 a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
  int l = 0;
  for (; l + 2 <= d; l += 2) {
    const Float4 d0 = xi[l] - ct[l];
    const Float4 d1 = xi[l + 1] - ct[l + 1];
    a0 += d0 * d0;
    a1 += d1 * d1;
  }
  if (l < d) {
    const Float4 d0 = xi[l] - ct[l];
    a0 += d0 * d0;
  }
  return a0 + a1;
}

// Scratch of an assignment pass: per-chunk partial results.
struct PassScratch {
  int64_t chunks = 0;
  std::vector<double> sums;       // chunks x k x d
  std::vector<int64_t> counts;    // chunks x k
  std::vector<double> objective;  // chunks
  std::vector<int64_t> changed;   // chunks
};

struct PassTotals {
  double objective = 0;
  int64_t changed = 0;
};

// One assignment pass over all n points with `centres`: updates `labels` (counting changes),
// and when `sums`/`counts` are given, the per-cluster coordinate sums and sizes.
PassTotals AssignPass(const float* x, int64_t n, int d, const float* centres, int k, int threads,
                      int32_t* labels, double* sums, int64_t* counts, PassScratch* scratch) {
  const int64_t chunks = NumChunks(n);
  const bool accumulate = sums != nullptr;
  scratch->chunks = chunks;
  scratch->objective.assign(chunks, 0.0);
  scratch->changed.assign(chunks, 0);
  if (accumulate) {
    scratch->sums.assign(static_cast<size_t>(chunks) * k * d, 0.0);
    scratch->counts.assign(static_cast<size_t>(chunks) * k, 0);
  }
  std::vector<float> norms(k);
  CentreNorms(centres, k, d, norms.data());
  const int workers = static_cast<int>(std::min<int64_t>(EffectiveThreads(threads), chunks));
  std::vector<std::vector<float>> gram(std::max(workers, 1));
  std::vector<std::vector<int32_t>> new_labels(std::max(workers, 1));
  std::vector<std::vector<float>> dist(std::max(workers, 1));

  ParallelFor(chunks, threads, [&](int64_t chunk, int worker) {
    const int64_t begin = chunk * kChunkRows;
    const int64_t end = std::min(n, begin + kChunkRows);
    auto& g = gram[worker];
    auto& nl = new_labels[worker];
    auto& dd = dist[worker];
    if (g.empty()) {
      g.resize(kBlockRows * k);
      nl.resize(kChunkRows);
      dd.resize(kChunkRows);
    }
    NearestInRows(x, begin, end, d, centres, norms.data(), k, g.data(), nl.data(), dd.data());
    double obj = 0;
    int64_t changed = 0;
    double* s = accumulate ? scratch->sums.data() + chunk * k * d : nullptr;
    int64_t* cnt = accumulate ? scratch->counts.data() + chunk * k : nullptr;
    for (int64_t i = begin; i < end; ++i) {
      const int32_t label = nl[i - begin];
      obj += dd[i - begin];
      changed += labels[i] != label;
      labels[i] = label;
      if (accumulate) {
        double* sl = s + static_cast<int64_t>(label) * d;
        const float* xi = x + i * d;
        for (int l = 0; l < d; ++l) sl[l] += xi[l];
        ++cnt[label];
      }
    }
    scratch->objective[chunk] = obj;
    scratch->changed[chunk] = changed;
  });

  PassTotals totals;
  if (accumulate) {
    std::fill(sums, sums + static_cast<size_t>(k) * d, 0.0);
    std::fill(counts, counts + k, 0);
  }
  for (int64_t c = 0; c < chunks; ++c) {
    totals.objective += scratch->objective[c];
    totals.changed += scratch->changed[c];
    if (accumulate) {
      const double* s = scratch->sums.data() + c * k * d;
      for (int64_t t = 0; t < static_cast<int64_t>(k) * d; ++t) sums[t] += s[t];
      const int64_t* cnt = scratch->counts.data() + c * k;
      for (int j = 0; j < k; ++j) counts[j] += cnt[j];
    }
  }
  return totals;
}

struct RunOutput {
  std::vector<float> centres;
  std::vector<int32_t> labels;
  double objective = 0;
  int iterations = 0;
  bool converged = false;
  std::vector<KMeansIterationStats> stats;
};

// Lloyd iterations from `init` (k x d) on n training points.
RunOutput LloydRun(const float* x, int64_t n, int d, const KMeansParameters& p, double tol_abs,
                   std::vector<float> init) {
  const int k = p.k;
  RunOutput out;
  out.centres = std::move(init);
  out.labels.assign(n, -1);
  std::vector<double> sums(static_cast<size_t>(k) * d);
  std::vector<int64_t> counts(k);
  std::vector<float> next(static_cast<size_t>(k) * d);
  PassScratch scratch;
  bool strict = false;
  for (int it = 0; it < p.max_iterations; ++it) {
    const PassTotals t = AssignPass(x, n, d, out.centres.data(), k, p.threads, out.labels.data(),
                                    sums.data(), counts.data(), &scratch);
    ++out.iterations;
    KMeansIterationStats st;
    st.objective = t.objective;
    st.changed = t.changed;
    out.objective = t.objective;
    if (t.changed == 0) {
      // Same assignment as last time: the centres are already its means.
      strict = true;
      out.converged = true;
      if (p.record_iterations) out.stats.push_back(st);
      break;
    }
    for (int j = 0; j < k; ++j) {
      const float* old = out.centres.data() + static_cast<int64_t>(j) * d;
      float* c = next.data() + static_cast<int64_t>(j) * d;
      if (counts[j] == 0) {
        std::copy(old, old + d, c);  // replaced by a split below
        continue;
      }
      const double inv = 1.0 / static_cast<double>(counts[j]);
      for (int l = 0; l < d; ++l) c[l] = static_cast<float>(sums[j * d + l] * inv);
    }
    st.empty_splits = detail::SplitEmptyClusters(k, d, next.data(), counts.data());
    double shift = 0;
    for (size_t t2 = 0; t2 < next.size(); ++t2) {
      const double diff = static_cast<double>(next[t2]) - out.centres[t2];
      shift += diff * diff;
    }
    st.centre_shift = shift;
    out.centres.swap(next);
    if (p.record_iterations) out.stats.push_back(st);
    if (shift <= tol_abs && st.empty_splits == 0) {
      out.converged = true;
      break;
    }
  }
  if (!strict) {
    // Labels and objective must describe the final centres (scikit-learn does the same).
    std::vector<int32_t> labels = out.labels;
    const PassTotals t = AssignPass(x, n, d, out.centres.data(), k, p.threads, labels.data(),
                                    nullptr, nullptr, &scratch);
    out.labels.swap(labels);
    out.objective = t.objective;
  }
  return out;
}

// Per-column mean variance of n x d points (for the relative tolerance), and a finiteness check.
Status CheckAndMeanVariance(const float* x, int64_t n, int d, int threads, double* mean_variance) {
  const int64_t chunks = NumChunks(n);
  std::vector<double> sum(static_cast<size_t>(chunks) * d, 0.0);
  std::vector<double> sq(static_cast<size_t>(chunks) * d, 0.0);
  // Shift by the first row so the one-pass variance does not cancel.
  const float* ref = x;
  ParallelFor(chunks, threads, [&](int64_t c, int) {
    const int64_t begin = c * kChunkRows;
    const int64_t end = std::min(n, begin + kChunkRows);
    double* s = sum.data() + c * d;
    double* q = sq.data() + c * d;
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = x + i * d;
      for (int l = 0; l < d; ++l) {
        const double v = static_cast<double>(xi[l]) - ref[l];
        s[l] += v;
        q[l] += v * v;
      }
    }
  });
  double total = 0;
  for (int l = 0; l < d; ++l) {
    double s = 0, q = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      s += sum[c * d + l];
      q += sq[c * d + l];
    }
    if (!std::isfinite(s) || !std::isfinite(q)) {
      for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i * d + l])) {
          return Status::InvalidArgument("point " + std::to_string(i) + " column " +
                                         std::to_string(l) + " is not finite (" +
                                         Num(x[i * d + l]) + ")");
        }
      }
      return Status::InvalidArgument("column " + std::to_string(l) +
                                     " overflows (values too large for squared distances)");
    }
    const double mean = s / static_cast<double>(n);
    total += std::max(0.0, q / static_cast<double>(n) - mean * mean);
  }
  *mean_variance = total / d;
  return Status::OK();
}

}  // namespace

// ---- detail -------------------------------------------------------------------------------------

namespace detail {

uint64_t SplitMix64::Next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::Below(uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64);
}

double SplitMix64::Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

uint64_t DeriveSeed(uint64_t seed, uint64_t i) {
  SplitMix64 a(seed ^ 0x6a09e667f3bcc909ULL);
  SplitMix64 b(a.Next() + i * 0x9e3779b97f4a7c15ULL);
  return b.Next();
}

std::vector<int64_t> SampleIndices(int64_t n, int64_t s, uint64_t seed) {
  std::vector<int64_t> out;
  if (s >= n) {
    out.resize(std::max<int64_t>(n, 0));
    std::iota(out.begin(), out.end(), 0);
    return out;
  }
  if (s <= 0) return out;
  out.reserve(s);
  SplitMix64 rng(seed);
  int64_t needed = s;
  for (int64_t i = 0; i < n && needed > 0; ++i) {
    // Select i with probability needed / remaining.
    if (static_cast<int64_t>(rng.Below(static_cast<uint64_t>(n - i))) < needed) {
      out.push_back(i);
      --needed;
    }
  }
  return out;
}

float SquaredDistance(const float* a, const float* b, int d) { return L2Squared(a, b, d); }

void KMeansPlusPlus(const float* x, int64_t n, int d, int k, uint64_t seed, int local_trials,
                    int threads, float* centres_out) {
  SplitMix64 rng(seed);
  const int trials =
      local_trials > 0 ? local_trials : 2 + static_cast<int>(std::log(static_cast<double>(k)));
  const int groups = (trials + 3) / 4;  // candidates are scored four at a time
  const int64_t chunks = NumChunks(n);
  std::vector<float> closest(n);
  std::vector<double> chunk_pot(chunks);
  std::vector<double> trial_pot(static_cast<size_t>(chunks) * trials);

  auto set_centre = [&](int j, int64_t i) {
    std::copy(x + i * d, x + (i + 1) * d, centres_out + static_cast<int64_t>(j) * d);
  };
  // Index whose cumulative potential first reaches r (numpy.searchsorted, side='left').
  auto pick = [&](double total) -> int64_t {
    if (!(total > 0)) return static_cast<int64_t>(rng.Below(n));
    const double r = rng.Unit() * total;
    double acc = 0;
    int64_t c = 0;
    for (; c < chunks - 1 && acc + chunk_pot[c] < r; ++c) acc += chunk_pot[c];
    const int64_t begin = c * kChunkRows, end = std::min(n, begin + kChunkRows);
    int64_t last_positive = -1;
    for (int64_t i = begin; i < end; ++i) {
      if (closest[i] > 0) last_positive = i;
      acc += closest[i];
      if (acc >= r && closest[i] > 0) return i;
    }
    // Rounding left r just above the sum: take the last point with a positive potential.
    if (last_positive >= 0) return last_positive;
    for (int64_t i = n - 1; i >= 0; --i) {
      if (closest[i] > 0) return i;
    }
    return static_cast<int64_t>(rng.Below(n));
  };
  // closest = min(closest, distance to centre j) (= for the first centre); chunk potentials.
  auto absorb = [&](int j) {
    const float* c = centres_out + static_cast<int64_t>(j) * d;
    ParallelFor(chunks, threads, [&](int64_t chunk, int) {
      const int64_t begin = chunk * kChunkRows, end = std::min(n, begin + kChunkRows);
      double pot = 0;
      for (int64_t i = begin; i < end; ++i) {
        const float dist_i = L2Squared(x + i * d, c, d);
        closest[i] = j == 0 ? dist_i : std::min(closest[i], dist_i);
        pot += closest[i];
      }
      chunk_pot[chunk] = pot;
    });
  };

  set_centre(0, static_cast<int64_t>(rng.Below(n)));
  absorb(0);

  std::vector<int64_t> candidates(trials);
  std::vector<Float4> cand_t(static_cast<size_t>(groups) * d);  // group g: d x 4, transposed
  for (int j = 1; j < k; ++j) {
    double pot = 0;
    for (double p : chunk_pot) pot += p;
    std::fill(cand_t.begin(), cand_t.end(), Float4{0, 0, 0, 0});
    for (int t = 0; t < trials; ++t) {
      candidates[t] = pick(pot);
      for (int l = 0; l < d; ++l) cand_t[(t / 4) * d + l][t % 4] = x[candidates[t] * d + l];
    }
    // Potential after adding each candidate: one pass over the points for all of them. Sums of
    // up to kBlockRows terms are kept in float lanes, then added up in double.
    ParallelFor(chunks, threads, [&](int64_t chunk, int) {
      const int64_t begin = chunk * kChunkRows, end = std::min(n, begin + kChunkRows);
      double* tp = trial_pot.data() + chunk * trials;
      std::fill(tp, tp + trials, 0.0);
      for (int g = 0; g < groups; ++g) {
        const Float4* ct = cand_t.data() + g * d;
        const int lanes = std::min(4, trials - 4 * g);
        for (int64_t b = begin; b < end; b += kBlockRows) {
          Float4 acc = {0, 0, 0, 0};
          const int64_t block_end = std::min(end, b + kBlockRows);
          for (int64_t i = b; i < block_end; ++i) {
            const Float4 dist_i = SquaredDistances4(x + i * d, d, ct);
            const Float4 c = {closest[i], closest[i], closest[i], closest[i]};
            acc += dist_i < c ? dist_i : c;
          }
          for (int t = 0; t < lanes; ++t) tp[4 * g + t] += acc[t];
        }
      }
    });
    int best = 0;
    double best_pot = std::numeric_limits<double>::infinity();
    for (int t = 0; t < trials; ++t) {
      double p = 0;
      for (int64_t c = 0; c < chunks; ++c) p += trial_pot[c * trials + t];
      if (p < best_pot) {
        best_pot = p;
        best = t;
      }
    }
    set_centre(j, candidates[best]);
    absorb(j);
  }
}

int SplitEmptyClusters(int k, int d, float* centres, int64_t* sizes) {
  constexpr float kEps = 1.0f / 1024.0f;
  int splits = 0;
  for (int e = 0; e < k; ++e) {
    if (sizes[e] != 0) continue;
    int largest = 0;
    for (int j = 1; j < k; ++j) {
      if (sizes[j] > sizes[largest]) largest = j;
    }
    if (sizes[largest] < 2) break;  // nothing left to split
    float* ce = centres + static_cast<int64_t>(e) * d;
    float* cl = centres + static_cast<int64_t>(largest) * d;
    // Relative nudge; coordinates at 0 are moved relative to the centre's scale instead.
    double norm = 0;
    for (int l = 0; l < d; ++l) norm += static_cast<double>(cl[l]) * cl[l];
    const float scale = std::max(static_cast<float>(std::sqrt(norm / d)), 1e-3f);
    for (int l = 0; l < d; ++l) {
      const float delta = kEps * std::max(std::abs(cl[l]), scale);
      const float sign = l % 2 == 0 ? 1.0f : -1.0f;
      const float base = cl[l];
      ce[l] = base + sign * delta;
      cl[l] = base - sign * delta;
    }
    sizes[e] = sizes[largest] / 2;
    sizes[largest] -= sizes[e];
    ++splits;
  }
  return splits;
}

}  // namespace detail

// ---- full fit -----------------------------------------------------------------------------------

StatusOr<KMeansResult> KMeansFit(const float* x, int64_t n, int d, const KMeansParameters& p) {
  if (p.k < 1) return Status::InvalidArgument("k=" + std::to_string(p.k) + " should be >= 1");
  if (d < 1) return Status::InvalidArgument("dimension d=" + std::to_string(d) + " should be >= 1");
  if (n < p.k) {
    return Status::InvalidArgument("number of points " + std::to_string(n) +
                                   " should be at least k=" + std::to_string(p.k));
  }
  if (x == nullptr) return Status::InvalidArgument("points matrix is null");
  if (p.max_iterations < 1) {
    return Status::InvalidArgument("max_iterations " + std::to_string(p.max_iterations) +
                                   " should be >= 1");
  }
  if (p.n_init < 1) {
    return Status::InvalidArgument("n_init " + std::to_string(p.n_init) + " should be >= 1");
  }
  if (!(p.tolerance >= 0)) {
    return Status::InvalidArgument("tolerance " + Num(p.tolerance) + " should be >= 0");
  }
  if (p.threads < 0 || p.max_points_per_centroid < 0 || p.local_trials < 0) {
    return Status::InvalidArgument(
        "threads (" + std::to_string(p.threads) + "), max_points_per_centroid (" +
        std::to_string(p.max_points_per_centroid) + ") and local_trials (" +
        std::to_string(p.local_trials) + ") should be >= 0");
  }
  const size_t kd = static_cast<size_t>(p.k) * d;
  if (!p.initial_centres.empty() && p.initial_centres.size() != kd) {
    return Status::InvalidArgument("initial centres hold " +
                                   std::to_string(p.initial_centres.size()) +
                                   " values, expected k*d = " + std::to_string(kd));
  }
  for (size_t t = 0; t < p.initial_centres.size(); ++t) {
    if (!std::isfinite(p.initial_centres[t])) {
      return Status::InvalidArgument("initial centre " + std::to_string(t / d) + " column " +
                                     std::to_string(t % d) + " is not finite");
    }
  }

  // Training set: all points, or a uniform sample (faiss's max_points_per_centroid).
  const float* train = x;
  int64_t n_train = n;
  std::vector<float> sample;
  const int64_t limit = static_cast<int64_t>(p.k) * p.max_points_per_centroid;
  if (p.max_points_per_centroid > 0 && n > limit) {
    const std::vector<int64_t> idx = detail::SampleIndices(n, limit, detail::DeriveSeed(p.seed, 0));
    sample.resize(static_cast<size_t>(limit) * d);
    for (int64_t s = 0; s < limit; ++s) {
      std::copy(x + idx[s] * d, x + (idx[s] + 1) * d, sample.data() + s * d);
    }
    train = sample.data();
    n_train = limit;
  }
  double mean_variance = 0;
  // Checks every input value (not only the sample's).
  STREAMREC_RETURN_IF_ERROR(CheckAndMeanVariance(x, n, d, p.threads, &mean_variance));
  if (train != x) {
    STREAMREC_RETURN_IF_ERROR(CheckAndMeanVariance(train, n_train, d, p.threads, &mean_variance));
  }
  const double tol_abs = p.tolerance * mean_variance;

  KMeansResult result;
  result.k = p.k;
  result.d = d;
  result.trained_points = n_train;
  RunOutput best;
  bool have_best = false;
  for (int run = 0; run < p.n_init; ++run) {
    std::vector<float> init(kd);
    if (run == 0 && !p.initial_centres.empty()) {
      init = p.initial_centres;
    } else {
      detail::KMeansPlusPlus(train, n_train, d, p.k, detail::DeriveSeed(p.seed, run + 1),
                             p.local_trials, p.threads, init.data());
    }
    RunOutput out = LloydRun(train, n_train, d, p, tol_abs, std::move(init));
    result.init_objectives.push_back(out.objective);
    if (!have_best || out.objective < best.objective) {
      best = std::move(out);
      result.best_init = run;
      have_best = true;
    }
  }

  result.centres = std::move(best.centres);
  result.iterations = best.iterations;
  result.converged = best.converged;
  result.iteration_stats = std::move(best.stats);
  if (train == x) {
    result.assignments = std::move(best.labels);
    result.objective = best.objective;
  } else {
    result.assignments.assign(n, -1);
    PassScratch scratch;
    result.objective = AssignPass(x, n, d, result.centres.data(), p.k, p.threads,
                                  result.assignments.data(), nullptr, nullptr, &scratch)
                           .objective;
  }
  result.sizes.assign(p.k, 0);
  for (int32_t a : result.assignments) ++result.sizes[a];
  return result;
}

void AssignNearest(const float* centres, int k, const float* x, int64_t n, int d,
                   int32_t* assignments_out, float* distances_out, int threads) {
  if (n <= 0 || k <= 0) return;
  std::vector<float> norms(k);
  CentreNorms(centres, k, d, norms.data());
  const int64_t chunks = NumChunks(n);
  const int workers = static_cast<int>(std::min<int64_t>(EffectiveThreads(threads), chunks));
  std::vector<std::vector<float>> gram(std::max(workers, 1));
  std::vector<std::vector<float>> dist(std::max(workers, 1));
  ParallelFor(chunks, threads, [&](int64_t chunk, int worker) {
    const int64_t begin = chunk * kChunkRows;
    const int64_t end = std::min(n, begin + kChunkRows);
    if (gram[worker].empty()) {
      gram[worker].resize(kBlockRows * k);
      dist[worker].resize(kChunkRows);
    }
    float* dd = distances_out != nullptr ? distances_out + begin : dist[worker].data();
    NearestInRows(x, begin, end, d, centres, norms.data(), k, gram[worker].data(),
                  assignments_out + begin, dd);
  });
}

int32_t NearestCentre(const float* centres, int k, int d, const float* point, float* distance_out) {
  int32_t best = 0;
  float best_d = std::numeric_limits<float>::infinity();
  for (int j = 0; j < k; ++j) {
    const float dist = L2Squared(point, centres + static_cast<int64_t>(j) * d, d);
    if (dist < best_d) {
      best_d = dist;
      best = j;
    }
  }
  if (distance_out != nullptr) *distance_out = best_d;
  return best;
}

// ---- scores -------------------------------------------------------------------------------------

StatusOr<double> Silhouette(const float* x, int64_t n, int d, const int32_t* assignments, int k,
                            int64_t sample_size, uint64_t seed, int threads) {
  if (n < 2) {
    return Status::InvalidArgument("silhouette needs at least 2 points, got " + std::to_string(n));
  }
  if (k < 2) return Status::InvalidArgument("silhouette needs k >= 2, got k=" + std::to_string(k));
  const int64_t s = sample_size <= 0 || sample_size >= n ? n : sample_size;
  if (s < 2) {
    return Status::InvalidArgument("silhouette sample size " + std::to_string(sample_size) +
                                   " should be at least 2");
  }
  std::vector<int64_t> idx = detail::SampleIndices(n, s, seed);
  for (int64_t i : idx) {
    if (assignments[i] < 0 || assignments[i] >= k) {
      return Status::InvalidArgument("assignment of point " + std::to_string(i) + " is " +
                                     std::to_string(assignments[i]) +
                                     ", outside [0, k=" + std::to_string(k) + ")");
    }
  }
  // Group the sample by cluster so that per-cluster distance sums run over contiguous ranges.
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int64_t a, int64_t b) { return assignments[a] < assignments[b]; });
  std::vector<float> pts(static_cast<size_t>(s) * d);
  std::vector<int32_t> label(s);
  for (int64_t t = 0; t < s; ++t) {
    std::copy(x + idx[t] * d, x + (idx[t] + 1) * d, pts.data() + t * d);
    label[t] = assignments[idx[t]];
  }
  std::vector<int64_t> start(k + 1, 0);
  for (int64_t t = 0; t < s; ++t) ++start[label[t] + 1];
  int present = 0;
  for (int j = 0; j < k; ++j) present += start[j + 1] > 0;
  if (present < 2) {
    return Status::InvalidArgument("silhouette needs at least 2 clusters in the sample, found " +
                                   std::to_string(present));
  }
  for (int j = 0; j < k; ++j) start[j + 1] += start[j];

  std::vector<double> score(s, 0.0);
  constexpr int64_t kRowsPerTask = 64;
  const int64_t tasks = (s + kRowsPerTask - 1) / kRowsPerTask;
  ParallelFor(tasks, threads, [&](int64_t task, int) {
    std::vector<double> mean_dist(k);
    for (int64_t i = task * kRowsPerTask; i < std::min(s, (task + 1) * kRowsPerTask); ++i) {
      const float* pi = pts.data() + i * d;
      for (int j = 0; j < k; ++j) {
        double sum = 0;
        for (int64_t t = start[j]; t < start[j + 1]; ++t) {
          sum += std::sqrt(L2Squared(pi, pts.data() + t * d, d));
        }
        mean_dist[j] = sum;
      }
      const int own = label[i];
      const int64_t own_size = start[own + 1] - start[own];
      if (own_size <= 1) continue;  // silhouette 0
      const double a = mean_dist[own] / static_cast<double>(own_size - 1);
      double b = std::numeric_limits<double>::infinity();
      for (int j = 0; j < k; ++j) {
        const int64_t size = start[j + 1] - start[j];
        if (j == own || size == 0) continue;
        b = std::min(b, mean_dist[j] / static_cast<double>(size));
      }
      const double m = std::max(a, b);
      score[i] = m > 0 ? (b - a) / m : 0.0;
    }
  });
  double total = 0;
  for (double v : score) total += v;
  return total / static_cast<double>(s);
}

double CalinskiHarabasz(double total_sum_squares, double objective, int64_t n, int k) {
  if (k < 2 || n <= k) return 0.0;
  if (!(objective > 0)) return std::numeric_limits<double>::infinity();
  const double between = std::max(0.0, total_sum_squares - objective);
  return (between / (k - 1)) / (objective / static_cast<double>(n - k));
}

StatusOr<KSelection> ChooseK(const float* x, int64_t n, int d, int k_min, int k_max,
                             const KMeansParameters& params, int64_t sample_size,
                             KSelectionCriterion criterion) {
  if (k_min < 2 || k_max < k_min) {
    return Status::InvalidArgument("k range [" + std::to_string(k_min) + ", " +
                                   std::to_string(k_max) + "] should satisfy 2 <= k_min <= k_max");
  }
  if (n < k_max) {
    return Status::InvalidArgument("number of points " + std::to_string(n) +
                                   " should be at least k_max=" + std::to_string(k_max));
  }
  if (d < 1 || x == nullptr) {
    return Status::InvalidArgument("dimension d=" + std::to_string(d) + " should be >= 1");
  }
  // Total sum of squares about the mean (two passes, double).
  std::vector<double> mean(d, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int l = 0; l < d; ++l) mean[l] += x[i * d + l];
  }
  for (double& m : mean) m /= static_cast<double>(n);
  double total_ss = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int l = 0; l < d; ++l) {
      const double v = x[i * d + l] - mean[l];
      total_ss += v * v;
    }
  }

  KSelection selection;
  double best_value = -std::numeric_limits<double>::infinity();
  for (int k = k_min; k <= k_max; ++k) {
    KMeansParameters p = params;
    p.k = k;
    if (!p.initial_centres.empty() && p.initial_centres.size() != static_cast<size_t>(k) * d) {
      p.initial_centres.clear();
    }
    StatusOr<KMeansResult> fit = KMeansFit(x, n, d, p);
    if (!fit.ok()) return fit.status();
    StatusOr<double> sil = Silhouette(x, n, d, fit->assignments.data(), k, sample_size,
                                      detail::DeriveSeed(params.seed, 1000), params.threads);
    KScore score;
    score.k = k;
    score.objective = fit->objective;
    // A fit that left fewer than 2 non-empty clusters has no silhouette: score it lowest.
    score.silhouette = sil.ok() ? *sil : -1.0;
    score.calinski_harabasz = CalinskiHarabasz(total_ss, fit->objective, n, k);
    selection.scores.push_back(score);
    const double value =
        criterion == KSelectionCriterion::kSilhouette ? score.silhouette : score.calinski_harabasz;
    if (value > best_value) {
      best_value = value;
      selection.best_k = k;
      selection.best = std::move(*fit);
    }
  }
  return selection;
}

// ---- mini-batch ---------------------------------------------------------------------------------

StatusOr<MiniBatchKMeans> MiniBatchKMeans::Create(const MiniBatchKMeansParameters& params, int k,
                                                  int d, std::vector<float> centres,
                                                  std::vector<double> weights) {
  if (k < 1 || d < 1) {
    return Status::InvalidArgument("mini-batch k-means needs k >= 1 and d >= 1, got k=" +
                                   std::to_string(k) + " d=" + std::to_string(d));
  }
  if (centres.size() != static_cast<size_t>(k) * d) {
    return Status::InvalidArgument("centres hold " + std::to_string(centres.size()) +
                                   " values, expected k*d = " + std::to_string(k * d));
  }
  if (weights.size() != static_cast<size_t>(k)) {
    return Status::InvalidArgument("weights hold " + std::to_string(weights.size()) +
                                   " values, expected k = " + std::to_string(k));
  }
  for (int j = 0; j < k; ++j) {
    if (!(weights[j] >= 0) || !std::isfinite(weights[j])) {
      return Status::InvalidArgument("weight of centre " + std::to_string(j) + " is " +
                                     Num(weights[j]) + "; weights must be finite and >= 0");
    }
  }
  for (size_t t = 0; t < centres.size(); ++t) {
    if (!std::isfinite(centres[t])) {
      return Status::InvalidArgument("centre " + std::to_string(t / d) + " column " +
                                     std::to_string(t % d) + " is not finite");
    }
  }
  if (params.half_life_points < 0 || params.half_life_ms < 0 || params.reassignment_ratio < 0 ||
      params.max_reassign_fraction < 0 || params.max_reassign_fraction > 1 ||
      params.objective_half_life_points < 0) {
    return Status::InvalidArgument(
        "mini-batch parameters out of range: half_life_points " + Num(params.half_life_points) +
        ", half_life_ms " + Num(params.half_life_ms) + ", reassignment_ratio " +
        Num(params.reassignment_ratio) + " and objective_half_life_points " +
        Num(params.objective_half_life_points) + " should be >= 0; max_reassign_fraction " +
        Num(params.max_reassign_fraction) + " should be in [0, 1]");
  }
  MiniBatchKMeans m;
  m.params_ = params;
  m.k_ = k;
  m.d_ = d;
  m.centres_ = std::move(centres);
  m.centres_exact_.assign(m.centres_.begin(), m.centres_.end());
  m.weights_ = std::move(weights);
  m.counts_.resize(k);
  for (int j = 0; j < k; ++j) m.counts_[j] = static_cast<uint64_t>(std::llround(m.weights_[j]));
  return m;
}

StatusOr<MiniBatchKMeans> MiniBatchKMeans::FromFit(const MiniBatchKMeansParameters& params,
                                                   const KMeansResult& fit) {
  std::vector<double> weights(fit.sizes.begin(), fit.sizes.end());
  return Create(params, fit.k, fit.d, fit.centres, std::move(weights));
}

MiniBatchStepStats MiniBatchKMeans::Step(const float* batch, int64_t m, int32_t* assignments_out) {
  double decay = 1.0;
  if (params_.half_life_points > 0 && m > 0) {
    decay = std::exp2(-static_cast<double>(m) / params_.half_life_points);
  }
  return DoStep(batch, m, decay, assignments_out);
}

MiniBatchStepStats MiniBatchKMeans::StepAt(const float* batch, int64_t m, int64_t event_time_ms,
                                           int32_t* assignments_out) {
  double decay = 1.0;
  if (params_.half_life_points > 0 && m > 0) {
    decay = std::exp2(-static_cast<double>(m) / params_.half_life_points);
  }
  if (params_.half_life_ms > 0 && last_event_time_ms_ != INT64_MIN &&
      event_time_ms > last_event_time_ms_) {
    decay *=
        std::exp2(-static_cast<double>(event_time_ms - last_event_time_ms_) / params_.half_life_ms);
  }
  last_event_time_ms_ = std::max(last_event_time_ms_, event_time_ms);
  return DoStep(batch, m, decay, assignments_out);
}

MiniBatchStepStats MiniBatchKMeans::DoStep(const float* batch, int64_t m, double decay,
                                           int32_t* assignments_out) {
  MiniBatchStepStats stats;
  stats.points = std::max<int64_t>(m, 0);
  if (m <= 0) return stats;
  if (decay != 1.0) {
    for (double& w : weights_) w *= decay;
  }
  int32_t* assign = assignments_out;
  if (assign == nullptr) {
    scratch_assign_.resize(m);
    assign = scratch_assign_.data();
  }
  // Assign every point with the centres as they were before the batch (Sculley's cache step).
  double sum = 0;
  for (int64_t i = 0; i < m; ++i) {
    float dist = 0;
    assign[i] = NearestCentre(centres_.data(), k_, d_, batch + i * d_, &dist);
    sum += dist;
  }
  stats.batch_objective = sum / static_cast<double>(m);
  // Per-centre learning rate 1 / weight: the centre stays the running (decayed) mean.
  for (int64_t i = 0; i < m; ++i) {
    const int32_t j = assign[i];
    weights_[j] += 1.0;
    ++counts_[j];
    const double eta = 1.0 / weights_[j];
    double* c = centres_exact_.data() + static_cast<int64_t>(j) * d_;
    const float* xi = batch + i * d_;
    for (int l = 0; l < d_; ++l) c[l] += eta * (static_cast<double>(xi[l]) - c[l]);
  }
  for (size_t t = 0; t < centres_.size(); ++t) centres_[t] = static_cast<float>(centres_exact_[t]);

  // Smoothed objective: per-point half-life, whatever the batch size.
  if (steps_ == 0 || params_.objective_half_life_points <= 0) {
    smoothed_objective_ = stats.batch_objective;
  } else {
    const double alpha =
        1.0 - std::exp2(-static_cast<double>(m) / params_.objective_half_life_points);
    smoothed_objective_ += alpha * (stats.batch_objective - smoothed_objective_);
  }

  // Re-seed dying centres (scikit-learn's _mini_batch_step reassignment).
  if (params_.reassignment_ratio > 0 && k_ > 1) {
    const double max_w = *std::max_element(weights_.begin(), weights_.end());
    std::vector<int32_t> dying;
    for (int j = 0; j < k_; ++j) {
      if (weights_[j] < params_.reassignment_ratio * max_w) dying.push_back(j);
    }
    const int64_t limit = static_cast<int64_t>(params_.max_reassign_fraction * m);
    if (static_cast<int64_t>(dying.size()) > limit) {
      std::stable_sort(dying.begin(), dying.end(),
                       [&](int32_t a, int32_t b) { return weights_[a] < weights_[b]; });
      dying.resize(std::max<int64_t>(limit, 0));
      std::sort(dying.begin(), dying.end());
    }
    if (!dying.empty()) {
      // New weight: the smallest weight among the centres kept, so that a re-seeded centre is
      // not re-seeded again at once.
      double min_kept = std::numeric_limits<double>::infinity();
      for (int j = 0, t = 0; j < k_; ++j) {
        if (t < static_cast<int>(dying.size()) && dying[t] == j) {
          ++t;
          continue;
        }
        min_kept = std::min(min_kept, weights_[j]);
      }
      const std::vector<int64_t> picks = detail::SampleIndices(
          m, static_cast<int64_t>(dying.size()), detail::DeriveSeed(params_.seed, steps_));
      // Shuffle the (sorted) picks over the dying centres, so the pairing is random too.
      std::vector<int64_t> order = picks;
      detail::SplitMix64 rng(detail::DeriveSeed(params_.seed ^ 0x5eed, steps_));
      for (size_t t = order.size(); t > 1; --t) std::swap(order[t - 1], order[rng.Below(t)]);
      for (size_t t = 0; t < dying.size(); ++t) {
        const int32_t j = dying[t];
        const float* p = batch + order[t] * d_;
        std::copy(p, p + d_, centres_.begin() + static_cast<int64_t>(j) * d_);
        std::copy(p, p + d_, centres_exact_.begin() + static_cast<int64_t>(j) * d_);
        weights_[j] = min_kept;
        counts_[j] = 0;
      }
      reassignments_ += dying.size();
      stats.reassigned = std::move(dying);
    }
  }
  ++steps_;
  points_seen_ += static_cast<uint64_t>(m);
  return stats;
}

void MiniBatchKMeans::ToProto(v1::SegmentModel* model) const {
  model->set_k(k_);
  model->set_d(d_);
  model->clear_centres();
  model->mutable_centres()->Add(centres_.begin(), centres_.end());
  model->clear_weights();
  model->mutable_weights()->Add(weights_.begin(), weights_.end());
  model->clear_counts();
  model->mutable_counts()->Add(counts_.begin(), counts_.end());
  model->clear_online_centres();
  model->mutable_online_centres()->Add(centres_exact_.begin(), centres_exact_.end());
  model->set_online_objective(smoothed_objective_);
  model->set_online_steps(steps_);
  model->set_online_points(points_seen_);
  model->set_online_last_event_time_ms(last_event_time_ms_ == INT64_MIN ? 0 : last_event_time_ms_);
  model->set_online_reassignments(reassignments_);
}

StatusOr<MiniBatchKMeans> MiniBatchKMeans::FromProto(const MiniBatchKMeansParameters& params,
                                                     const v1::SegmentModel& model) {
  const int k = model.k(), d = model.d();
  if (k < 1 || d < 1 || model.centres_size() != k * d || model.weights_size() != k ||
      (model.counts_size() != 0 && model.counts_size() != k)) {
    return Status::Corruption("segment model sizes disagree: k=" + std::to_string(k) + " d=" +
                              std::to_string(d) + ", " + std::to_string(model.centres_size()) +
                              " centre values, " + std::to_string(model.weights_size()) +
                              " weights, " + std::to_string(model.counts_size()) + " counts");
  }
  StatusOr<MiniBatchKMeans> m =
      Create(params, k, d, std::vector<float>(model.centres().begin(), model.centres().end()),
             std::vector<double>(model.weights().begin(), model.weights().end()));
  if (!m.ok()) return Status::Corruption("segment model: " + m.status().message());
  if (model.counts_size() == k) m->counts_.assign(model.counts().begin(), model.counts().end());
  if (model.online_centres_size() == k * d) {
    for (int t = 0; t < k * d; ++t) {
      if (!std::isfinite(model.online_centres(t))) {
        return Status::Corruption("segment model online centre value " + std::to_string(t) +
                                  " is not finite");
      }
    }
    m->centres_exact_.assign(model.online_centres().begin(), model.online_centres().end());
    for (int t = 0; t < k * d; ++t) m->centres_[t] = static_cast<float>(m->centres_exact_[t]);
  } else if (model.online_centres_size() != 0) {
    return Status::Corruption("segment model has " + std::to_string(model.online_centres_size()) +
                              " online centre values, expected k*d = " + std::to_string(k * d));
  }
  m->smoothed_objective_ = model.online_objective();
  m->steps_ = model.online_steps();
  m->points_seen_ = model.online_points();
  m->last_event_time_ms_ =
      model.online_last_event_time_ms() == 0 ? INT64_MIN : model.online_last_event_time_ms();
  m->reassignments_ = model.online_reassignments();
  return m;
}

}  // namespace streamrec
