#include "streamrec/als.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <thread>

#include "kernels/als_kernel.h"

namespace streamrec {

namespace {

// Rows per work unit of a parallel pass. Fixed (never derived from the thread count) so that
// partial sums are combined the same way whatever the threads.
constexpr uint32_t kChunkRows = 1024;
constexpr uint64_t kChunkNonzeros = 1 << 16;

int ThreadCount(int threads) {
  if (threads > 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

// Runs fn(chunk, worker) for chunks [0, chunks) on `threads` threads (the caller is worker 0).
// Chunks are handed out dynamically: what fn computes must not depend on the worker, which only
// selects scratch space.
template <typename Fn>
void ParallelChunks(uint32_t chunks, int threads, const Fn& fn) {
  const int n = std::min<int>(threads, static_cast<int>(std::max<uint32_t>(chunks, 1)));
  std::atomic<uint32_t> next{0};
  auto worker = [&](int w) {
    for (uint32_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) fn(c, w);
  };
  std::vector<std::thread> pool;
  pool.reserve(n - 1);
  for (int t = 1; t < n; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (std::thread& t : pool) t.join();
}

uint32_t ChunksOf(uint64_t rows) {
  return static_cast<uint32_t>((rows + kChunkRows - 1) / kChunkRows);
}

// F^T F + lambda I (lower triangle) over the rows of F, in fixed chunks summed in order.
AlsSystem RegularizedGram(const AlsFactors& f, double lambda, int threads) {
  const int k = static_cast<int>(f.cols());
  const uint32_t chunks = ChunksOf(f.rows());
  const als_kernel::Kernels& kernels = als_kernel::Active();
  std::vector<AlsSystem> partial(chunks);
  std::vector<std::vector<double>> scratch(std::max(threads, 1),
                                           std::vector<double>(als_kernel::ScratchSize(k)));
  ParallelChunks(chunks, threads, [&](uint32_t c, int worker) {
    const int64_t begin = static_cast<int64_t>(c) * kChunkRows;
    const int64_t end = std::min<int64_t>(begin + kChunkRows, f.rows());
    partial[c] = AlsSystem::Zero(k, k);
    kernels.add_gram(f.row(begin).data(), k, static_cast<size_t>(end - begin), partial[c].data(),
                     scratch[worker].data());
  });
  AlsSystem gram = AlsSystem::Zero(k, k);
  for (const AlsSystem& p : partial) gram += p;
  gram.diagonal().array() += lambda;
  return gram;
}

// Solves L D L^T x = b in place (`x` holds b on entry).
void SolveLdlt(const AlsSystem& a, Eigen::VectorXd* x) {
  const int k = static_cast<int>(a.rows());
  for (int r = 1; r < k; ++r) (*x)[r] -= a.row(r).head(r).dot(x->head(r));
  x->array() /= a.diagonal().array();
  for (int r = k - 1; r > 0; --r) x->head(r).noalias() -= (*x)[r] * a.row(r).head(r).transpose();
}

// Solves one row: A = gram + sum_i (c_i - 1) y_i y_i^T, b = sum_i c_i y_i, out = A^-1 b, over
// the n non-zeros (index[i] into `other`, confidence[i]), ascending by index. `ws->system` keeps
// the factorisation (TopContributor). This single function is both the fit's row step and
// FoldIn, which is what makes a fold-in reproduce the fitted factors.
void SolveRow(const AlsFactors& other, const AlsSystem& gram, const uint32_t* index,
              const double* confidence, size_t n, AlsWorkspace* ws, float* out) {
  const int k = static_cast<int>(other.cols());
  Eigen::Map<Eigen::VectorXf> x(out, k);
  if (n == 0) {
    x.setZero();
    return;
  }
  const als_kernel::Kernels& kernels = als_kernel::Active();
  ws->system = gram;
  ws->rhs.setZero(k);
  ws->scratch.resize(als_kernel::ScratchSize(k));
  kernels.accumulate(other.data(), k, index, confidence, n, ws->system.data(), ws->rhs.data(),
                     ws->scratch.data());
  kernels.factor_ldlt(ws->system.data(), k, ws->scratch.data());
  ws->solution = ws->rhs;
  SolveLdlt(ws->system, &ws->solution);
  x = ws->solution.cast<float>();
}

// One half-step: every row of `solve` from its non-zeros against `other`.
void SolveAll(const std::vector<uint64_t>& offsets, const std::vector<uint32_t>& index,
              const std::vector<double>& confidence, const AlsFactors& other,
              const AlsOptions& options, int threads, AlsFactors* solve) {
  const AlsSystem gram = RegularizedGram(other, options.regularization, threads);
  // Work units of at most kChunkRows rows and about kChunkNonzeros non-zeros (a popular item
  // is a unit of its own), cut from the matrix alone.
  const uint64_t rows = offsets.size() - 1;
  std::vector<uint64_t> bounds = {0};
  while (bounds.back() < rows) {
    const uint64_t begin = bounds.back();
    uint64_t end = begin + 1;
    while (end < rows && end - begin < kChunkRows &&
           offsets[end + 1] - offsets[begin] <= kChunkNonzeros) {
      ++end;
    }
    bounds.push_back(end);
  }
  std::vector<AlsWorkspace> workspaces(threads);
  const uint32_t chunks = static_cast<uint32_t>(bounds.size() - 1);
  ParallelChunks(chunks, threads, [&](uint32_t c, int worker) {
    AlsWorkspace* ws = &workspaces[worker];
    for (uint64_t r = bounds[c]; r < bounds[c + 1]; ++r) {
      SolveRow(other, gram, index.data() + offsets[r], confidence.data() + offsets[r],
               offsets[r + 1] - offsets[r], ws, solve->row(r).data());
    }
  });
}

// The objective of the header, in fixed user chunks summed in order.
double Loss(const AlsMatrix& m, const std::vector<double>& confidence, const AlsFactors& x,
            const AlsFactors& y, double lambda, int threads) {
  const AlsSystem yty = RegularizedGram(y, 0.0, threads);
  const Eigen::MatrixXd full = yty.selfadjointView<Eigen::Lower>();
  const uint32_t chunks = ChunksOf(m.users);
  std::vector<double> partial(chunks, 0.0);
  ParallelChunks(chunks, threads, [&](uint32_t c, int) {
    const uint64_t begin = static_cast<uint64_t>(c) * kChunkRows;
    const uint64_t end = std::min<uint64_t>(begin + kChunkRows, m.users);
    double sum = 0;
    for (uint64_t u = begin; u < end; ++u) {
      const Eigen::VectorXd xu = x.row(u).transpose().cast<double>();
      sum += xu.dot(full * xu) + lambda * xu.squaredNorm();  // every cell as p = 0, c = 1
      for (uint64_t p = m.row_offsets[u]; p < m.row_offsets[u + 1]; ++p) {
        const double s = xu.dot(y.row(m.cols[p]).transpose().cast<double>());
        sum += confidence[p] * (1 - s) * (1 - s) - s * s;
      }
    }
    partial[c] = sum;
  });
  double loss = 0;
  for (double p : partial) loss += p;
  return loss + lambda * y.cast<double>().squaredNorm();
}

// SplitMix64: the initial factors, a pure function of (seed, position).
uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// ---- binary encoding -------------------------------------------------------------------------

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutF64(std::string* out, double v) { PutU64(out, std::bit_cast<uint64_t>(v)); }

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    if (in_.empty()) return false;
    *v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return true;
  }
  bool U32(uint32_t* v) {
    uint64_t w;
    if (!Bytes(4, &w)) return false;
    *v = static_cast<uint32_t>(w);
    return true;
  }
  bool U64(uint64_t* v) { return Bytes(8, v); }
  bool F64(double* v) {
    uint64_t w;
    if (!Bytes(8, &w)) return false;
    *v = std::bit_cast<double>(w);
    return true;
  }
  bool String(std::string* s) {
    uint32_t n;
    if (!U32(&n) || in_.size() < n) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view rest() const { return in_; }
  void Skip(size_t n) { in_.remove_prefix(n); }

 private:
  bool Bytes(int n, uint64_t* v) {
    if (in_.size() < static_cast<size_t>(n)) return false;
    *v = 0;
    for (int i = 0; i < n; ++i)
      *v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
    in_.remove_prefix(n);
    return true;
  }
  std::string_view in_;
};

}  // namespace

namespace als_kernel {

const Kernels* Avx2IfSupported() {
#if defined(STREAMREC_ALS_AVX2)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &avx2::kKernels;
#endif
  return nullptr;
}

const Kernels& Active() {
  static const Kernels* const active = [] {
    const char* forced = std::getenv("STREAMREC_ALS_KERNEL");
    const bool generic_only = forced != nullptr && std::string_view(forced) == "generic";
    const Kernels* avx2 = Avx2IfSupported();
    return avx2 != nullptr && !generic_only ? avx2 : &generic::kKernels;
  }();
  return *active;
}

}  // namespace als_kernel

StatusOr<AlsMatrix> AlsMatrixFromTriplets(uint32_t users, std::vector<std::string> item_ids,
                                          std::span<const AlsTriplet> triplets) {
  const uint64_t items = item_ids.size();
  if (items >= kAlsNoItem) return Status::InvalidArgument("ALS matrix: too many items");
  std::vector<uint64_t> offsets(static_cast<size_t>(users) + 1, 0);
  for (size_t t = 0; t < triplets.size(); ++t) {
    const AlsTriplet& x = triplets[t];
    if (x.user >= users || x.item >= items || !std::isfinite(x.count) || x.count < 0) {
      return Status::InvalidArgument(
          "ALS matrix: bad triplet " + std::to_string(t) + " (user " + std::to_string(x.user) +
          " of " + std::to_string(users) + ", item " + std::to_string(x.item) + " of " +
          std::to_string(items) + ", count " + std::to_string(x.count) + ")");
    }
    if (x.count > 0) ++offsets[x.user + 1];
  }
  for (uint32_t u = 0; u < users; ++u) offsets[u + 1] += offsets[u];
  std::vector<std::pair<uint32_t, double>> cells(offsets[users]);
  std::vector<uint64_t> fill(offsets.begin(), offsets.end() - 1);
  for (const AlsTriplet& x : triplets) {
    if (x.count > 0) cells[fill[x.user]++] = {x.item, x.count};
  }
  AlsMatrix m;
  m.users = users;
  m.item_ids = std::move(item_ids);
  m.row_offsets.reserve(static_cast<size_t>(users) + 1);
  m.row_offsets.push_back(0);
  m.cols.reserve(cells.size());
  m.counts.reserve(cells.size());
  for (uint32_t u = 0; u < users; ++u) {
    auto begin = cells.begin() + offsets[u];
    auto end = cells.begin() + offsets[u + 1];
    std::sort(begin, end, [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto it = begin; it != end; ++it) {
      if (!m.cols.empty() && m.cols.size() > m.row_offsets.back() && m.cols.back() == it->first) {
        m.counts.back() += it->second;
      } else {
        m.cols.push_back(it->first);
        m.counts.push_back(it->second);
      }
    }
    m.row_offsets.push_back(m.cols.size());
  }
  m.cols.shrink_to_fit();
  m.counts.shrink_to_fit();
  return m;
}

Status ValidateAlsOptions(const AlsOptions& o) {
  auto bad = [](const char* name, const std::string& value, const char* rule) {
    return Status::InvalidArgument(std::string("AlsOptions.") + name + " = " + value + ": " + rule);
  };
  if (o.factors < 1) return bad("factors", std::to_string(o.factors), "must be >= 1");
  if (o.iterations < 0) return bad("iterations", std::to_string(o.iterations), "must be >= 0");
  if (!std::isfinite(o.regularization) || o.regularization < 0) {
    return bad("regularization", std::to_string(o.regularization), "must be a number >= 0");
  }
  if (!std::isfinite(o.alpha) || o.alpha < 0) {
    return bad("alpha", std::to_string(o.alpha), "must be a number >= 0");
  }
  if (o.confidence != AlsConfidence::kLinear && o.confidence != AlsConfidence::kLog) {
    return bad("confidence", std::to_string(static_cast<int>(o.confidence)),
               "must be kLinear or kLog");
  }
  if (!std::isfinite(o.epsilon) || o.epsilon <= 0) {
    return bad("epsilon", std::to_string(o.epsilon), "must be a number > 0");
  }
  if (o.threads < 0) return bad("threads", std::to_string(o.threads), "must be >= 0");
  return Status::OK();
}

double AlsConfidenceOf(const AlsOptions& o, double count) {
  if (o.confidence == AlsConfidence::kLog) return 1.0 + o.alpha * std::log1p(count / o.epsilon);
  return 1.0 + o.alpha * count;
}

// ---- AlsModel ------------------------------------------------------------------------------

AlsModel::AlsModel(std::vector<std::string> item_ids, AlsFactors item_factors, AlsOptions options)
    : item_ids_(std::move(item_ids)),
      item_factors_(std::move(item_factors)),
      options_(std::move(options)) {
  options_.progress = nullptr;
  options_.cancel = nullptr;
  item_index_.reserve(item_ids_.size());
  for (uint32_t i = 0; i < item_ids_.size(); ++i) item_index_.emplace(item_ids_[i], i);
  // The same function (and chunking) as the fit's last user step: fold-ins match the fit.
  gram_ = RegularizedGram(item_factors_, options_.regularization, 1);
}

uint32_t AlsModel::FindItem(std::string_view item_id) const {
  auto it = item_index_.find(std::string(item_id));
  return it == item_index_.end() ? kAlsNoItem : it->second;
}

void AlsModel::FoldIn(std::span<const AlsInteraction> history, AlsWorkspace* ws,
                      AlsVector* out) const {
  ws->rows.clear();
  for (const AlsInteraction& h : history) {
    if (h.item < items() && h.count > 0) {
      ws->rows.emplace_back(h.item, AlsConfidenceOf(options_, h.count));
    }
  }
  std::sort(ws->rows.begin(), ws->rows.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  ws->index.resize(ws->rows.size());
  ws->confidence.resize(ws->rows.size());
  for (size_t i = 0; i < ws->rows.size(); ++i) {
    ws->index[i] = ws->rows[i].first;
    ws->confidence[i] = ws->rows[i].second;
  }
  out->resize(factors());
  SolveRow(item_factors_, gram_, ws->index.data(), ws->confidence.data(), ws->rows.size(), ws,
           out->data());
}

uint32_t AlsModel::TopContributor(const AlsWorkspace& ws, uint32_t item,
                                  double* contribution) const {
  *contribution = 0;
  if (ws.rows.empty() || item >= items()) return kAlsNoItem;
  // w = A^-1 y_item; contribution of owned i = c_i y_i . w (A symmetric).
  Eigen::VectorXd w = item_factors_.row(item).transpose().cast<double>();
  SolveLdlt(ws.system, &w);
  uint32_t best = kAlsNoItem;
  for (const auto& [i, c] : ws.rows) {
    const double part = c * item_factors_.row(i).cast<double>().dot(w.transpose());
    if (best == kAlsNoItem || part > *contribution) {
      best = i;
      *contribution = part;
    }
  }
  return best;
}

void AlsModel::ScoreAll(const AlsVector& user, Eigen::VectorXf* scores) const {
  scores->noalias() = item_factors_ * user;
}

std::vector<AlsScored> AlsModel::TopN(const AlsVector& user, size_t n,
                                      std::span<const uint32_t> exclude) const {
  Eigen::VectorXf scores;
  ScoreAll(user, &scores);
  std::vector<bool> skip(items(), false);
  for (uint32_t e : exclude) {
    if (e < items()) skip[e] = true;
  }
  std::vector<AlsScored> all;
  all.reserve(items());
  for (uint32_t i = 0; i < items(); ++i) {
    if (!skip[i]) all.push_back({i, scores[i]});
  }
  auto better = [](const AlsScored& a, const AlsScored& b) {
    return a.score != b.score ? a.score > b.score : a.item < b.item;
  };
  if (all.size() > n) {
    std::partial_sort(all.begin(), all.begin() + n, all.end(), better);
    all.resize(n);
  } else {
    std::sort(all.begin(), all.end(), better);
  }
  return all;
}

// Layout (little-endian): u8 version; u32 factors, iterations; f64 regularization; u8
// confidence; f64 alpha, epsilon; u64 seed; u32 items; per item u32 length + bytes; then
// items x factors float32 bit patterns, row-major.
std::string AlsModel::Encode() const {
  std::string out;
  out.push_back(static_cast<char>(kAlsFormatVersion));
  PutU32(&out, static_cast<uint32_t>(factors()));
  PutU32(&out, static_cast<uint32_t>(options_.iterations));
  PutF64(&out, options_.regularization);
  out.push_back(static_cast<char>(options_.confidence));
  PutF64(&out, options_.alpha);
  PutF64(&out, options_.epsilon);
  PutU64(&out, options_.seed);
  PutU32(&out, items());
  for (const std::string& id : item_ids_) {
    PutU32(&out, static_cast<uint32_t>(id.size()));
    out += id;
  }
  const float* f = item_factors_.data();
  for (Eigen::Index k = 0; k < item_factors_.size(); ++k)
    PutU32(&out, std::bit_cast<uint32_t>(f[k]));
  return out;
}

StatusOr<AlsModel> AlsModel::Decode(std::string_view bytes) {
  Reader in(bytes);
  auto truncated = [] { return Status::Corruption("ALS model: truncated value"); };
  uint8_t version;
  if (!in.U8(&version)) return truncated();
  if (version != kAlsFormatVersion) {
    return Status::NotSupported("ALS model: format version " + std::to_string(version) +
                                ", this build reads " + std::to_string(kAlsFormatVersion));
  }
  AlsOptions o;
  uint32_t factors, iterations, items;
  uint8_t confidence;
  if (!in.U32(&factors) || !in.U32(&iterations) || !in.F64(&o.regularization) ||
      !in.U8(&confidence) || !in.F64(&o.alpha) || !in.F64(&o.epsilon) || !in.U64(&o.seed) ||
      !in.U32(&items)) {
    return truncated();
  }
  o.factors = static_cast<int>(factors);
  o.iterations = static_cast<int>(iterations);
  o.confidence = static_cast<AlsConfidence>(confidence);
  if (factors > (1u << 16) || iterations > (1u << 30)) {
    return Status::Corruption("ALS model: implausible factors " + std::to_string(factors));
  }
  if (Status s = ValidateAlsOptions(o); !s.ok()) {
    return Status::Corruption("ALS model: stored options invalid: " + s.message());
  }
  if (items > in.rest().size() / 4) return truncated();
  std::vector<std::string> ids(items);
  for (std::string& id : ids) {
    if (!in.String(&id)) return truncated();
  }
  const uint64_t values = static_cast<uint64_t>(items) * factors;
  if (in.rest().size() != values * 4) {
    return Status::Corruption("ALS model: " + std::to_string(in.rest().size()) +
                              " factor bytes, expected " + std::to_string(values * 4));
  }
  AlsFactors y(items, factors);
  for (uint64_t k = 0; k < values; ++k) {
    uint32_t w;
    if (!in.U32(&w)) return truncated();
    y.data()[k] = std::bit_cast<float>(w);
  }
  return AlsModel(std::move(ids), std::move(y), std::move(o));
}

// ---- fit -------------------------------------------------------------------------------------

StatusOr<AlsModel> AlsFit(const AlsMatrix& m, const AlsOptions& options,
                          AlsFactors* user_factors_out, const AlsModel* warm_start) {
  STREAMREC_RETURN_IF_ERROR(ValidateAlsOptions(options));
  if (m.items() == 0) return Status::InvalidArgument("ALS fit: the matrix has no item");
  if (m.row_offsets.size() != static_cast<size_t>(m.users) + 1 ||
      m.cols.size() != m.counts.size() || m.row_offsets.back() != m.cols.size()) {
    return Status::InvalidArgument("ALS fit: inconsistent CSR matrix");
  }
  const int threads = ThreadCount(options.threads);
  const int f = options.factors;
  const uint32_t items = m.items();

  // Confidences by user (CSR) and the transpose (items x users) with its confidences.
  std::vector<double> user_conf(m.nonzeros());
  for (uint64_t p = 0; p < m.nonzeros(); ++p) user_conf[p] = AlsConfidenceOf(options, m.counts[p]);
  std::vector<uint64_t> item_offsets(static_cast<size_t>(items) + 1, 0);
  for (uint32_t c : m.cols) ++item_offsets[c + 1];
  for (uint32_t i = 0; i < items; ++i) item_offsets[i + 1] += item_offsets[i];
  std::vector<uint32_t> item_users(m.nonzeros());
  std::vector<double> item_conf(m.nonzeros());
  {
    std::vector<uint64_t> fill(item_offsets.begin(), item_offsets.end() - 1);
    for (uint32_t u = 0; u < m.users; ++u) {
      for (uint64_t p = m.row_offsets[u]; p < m.row_offsets[u + 1]; ++p) {
        const uint64_t q = fill[m.cols[p]]++;
        item_users[q] = u;  // ascending users within an item
        item_conf[q] = user_conf[p];
      }
    }
  }

  // Initial user factors: small uniform values from the seed alone; the first step solves items.
  AlsFactors x(m.users, f);
  const float scale = 0.1f / std::sqrt(static_cast<float>(f));
  for (Eigen::Index k = 0; k < x.size(); ++k) {
    const uint64_t r = SplitMix64(options.seed ^ SplitMix64(static_cast<uint64_t>(k)));
    x.data()[k] = scale * (static_cast<float>(r >> 40) / static_cast<float>(1 << 24) - 0.5f);
  }
  AlsFactors y(items, f);

  auto cancelled = [&] { return options.cancel != nullptr && options.cancel->load(); };
  auto stopped = [](int it) {
    return Status::Aborted("ALS fit: cancelled at iteration " + std::to_string(it));
  };
  if (warm_start != nullptr && warm_start->factors() == f) {
    // The previous item factors, then the users that fit them best: the state the previous
    // fit ended in, extended to the users and items that arrived since.
    y.setZero();
    for (uint32_t i = 0; i < items; ++i) {
      const uint32_t old = warm_start->FindItem(m.item_ids[i]);
      if (old != kAlsNoItem) y.row(i) = warm_start->item_factors().row(old);
    }
    if (cancelled()) return stopped(0);
    SolveAll(m.row_offsets, m.cols, user_conf, y, options, threads, &x);
  }
  for (int it = 1; it <= options.iterations; ++it) {
    if (cancelled()) return stopped(it);
    SolveAll(item_offsets, item_users, item_conf, x, options, threads, &y);
    if (cancelled()) return stopped(it);
    SolveAll(m.row_offsets, m.cols, user_conf, y, options, threads, &x);
    if (options.progress || options.compute_loss) {
      AlsIterationStats stats;
      stats.iteration = it;
      stats.loss = options.compute_loss ? Loss(m, user_conf, x, y, options.regularization, threads)
                                        : std::numeric_limits<double>::quiet_NaN();
      if (options.progress) options.progress(stats);
    }
  }
  if (options.iterations == 0) y.setZero();
  if (user_factors_out != nullptr) *user_factors_out = std::move(x);
  return AlsModel(m.item_ids, std::move(y), options);
}

}  // namespace streamrec
