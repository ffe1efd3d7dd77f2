// Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren & Volinsky,
// "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008), behind the "als"
// recommendation strategy.
//
// A customer u who bought item i r_ui times "prefers" it (p_ui = 1) with confidence
// c_ui = 1 + alpha r_ui (kLinear) or 1 + alpha log(1 + r_ui / epsilon) (kLog); every other cell
// is p_ui = 0 with confidence 1. ALS minimises
//   sum_{u,i} c_ui (p_ui - x_u.y_i)^2 + lambda (sum_u |x_u|^2 + sum_i |y_i|^2)
// by solving exactly for all users with the items fixed, then for all items with the users fixed.
// Each row solve uses the paper's trick A = Y^T Y + lambda I + Y^T (C_u - I) Y, where the first
// two terms are shared by every row and the last touches only the row's non-zeros, so a user costs
// O(n_u f^2 + f^3) (an LDL^T factorisation of the f x f system, which is symmetric positive
// definite, so no pivoting is needed).
//
// Determinism: every row is solved independently from the same inputs and the initial factors
// come from the seed alone, so results do not depend on the number of threads; sums over rows
// (Gram matrices, the loss) are taken in fixed chunks combined in order. Nothing reads a clock.
//
// The model keeps only the item factors: a customer's factors are folded in on demand from the
// customer's full item history (FoldIn), by exactly the user step of the fit, so the fold-in of a
// customer the model was fitted on reproduces the fitted factors.
#ifndef STREAMREC_ALS_H_
#define STREAMREC_ALS_H_

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "streamrec/status.h"

namespace streamrec {

// "No such item" for item indices of a model.
inline constexpr uint32_t kAlsNoItem = 0xffffffffu;

// Factors, one row per user or item, row-major (a row is contiguous).
using AlsFactors = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using AlsVector = Eigen::VectorXf;

// One (user, item, count) cell; duplicates are summed when a matrix is built.
struct AlsTriplet {
  uint32_t user = 0;
  uint32_t item = 0;
  double count = 0;
};

// Users x items purchase counts in compressed sparse rows: the items of user u are
// cols[row_offsets[u] .. row_offsets[u + 1]), ascending, with their counts (all > 0).
struct AlsMatrix {
  uint32_t users = 0;
  std::vector<std::string> item_ids;  // names of the item columns (size = items)
  std::vector<uint64_t> row_offsets;  // users + 1 entries
  std::vector<uint32_t> cols;
  std::vector<double> counts;

  uint32_t items() const { return static_cast<uint32_t>(item_ids.size()); }
  uint64_t nonzeros() const { return cols.size(); }
};

// Builds the CSR matrix. Duplicated cells are summed; cells whose count is 0 are dropped.
// Refuses user or item indices out of range and negative or non-finite counts (naming the
// triplet).
[[nodiscard]] StatusOr<AlsMatrix> AlsMatrixFromTriplets(uint32_t users,
                                                        std::vector<std::string> item_ids,
                                                        std::span<const AlsTriplet> triplets);

enum class AlsConfidence : uint8_t {
  kLinear = 0,  // c = 1 + alpha r
  kLog = 1,     // c = 1 + alpha log(1 + r / epsilon)
};

// After each iteration (an item step then a user step).
struct AlsIterationStats {
  int iteration = 0;  // 1-based
  // The objective above after the iteration; NaN unless AlsOptions::compute_loss.
  double loss = 0;
};

struct AlsOptions {
  /// Latent factors per user and item (f). Cost grows as f^2 per non-zero and f^3 per row.
  int factors = 32;
  /// ALS iterations (each solves all items, then all users).
  int iterations = 15;
  /// lambda: L2 penalty on every factor row (>= 0). Larger: smoother, more popularity-like.
  double regularization = 0.05;
  /// How a purchase count becomes a confidence.
  AlsConfidence confidence = AlsConfidence::kLinear;
  /// Confidence slope (>= 0): how much more a repeated purchase counts than a single one.
  double alpha = 10.0;
  /// kLog scale (> 0): counts are divided by it before the log.
  double epsilon = 1.0;
  /// Seed of the initial user factors (the only randomness).
  uint64_t seed = 42;
  /// Worker threads (1 = the calling thread only, 0 = hardware concurrency). Results do not
  /// depend on it.
  int threads = 2;
  /// Compute the objective after every iteration (costs about one extra user pass).
  bool compute_loss = false;
  /// Called after every iteration on the calling thread (may be empty).
  std::function<void(const AlsIterationStats&)> progress;
  /// Asks a fit to stop (may be null): read before every half-step (all items, or all users),
  /// and once it holds true AlsFit returns Aborted. A background re-fit is stopped this way at
  /// shutdown instead of running to its end. Not part of the model.
  const std::atomic<bool>* cancel = nullptr;
};

// Refuses factors < 1, iterations < 0, negative or non-finite regularization / alpha,
// epsilon <= 0, threads < 0; the message names the option and the value.
[[nodiscard]] Status ValidateAlsOptions(const AlsOptions& options);

// Confidence of a purchase count under `options` (count > 0).
double AlsConfidenceOf(const AlsOptions& options, double count);

// One item of a customer's history: model item index and purchase count.
struct AlsInteraction {
  uint32_t item = 0;
  double count = 0;
};

// Row-major double matrix of the f x f normal equations.
using AlsSystem = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Scratch space of a fold-in, reused across calls (not thread-safe: one per thread). After
// FoldIn it holds the LDL^T factorisation of that customer's system (see
// AlsModel::TopContributor).
struct AlsWorkspace {
  std::vector<std::pair<uint32_t, double>> rows;  // (item, confidence), ascending item
  std::vector<uint32_t> index;                    // rows, split for the solver
  std::vector<double> confidence;
  AlsSystem system;                               // L strictly below the diagonal, D on it
  Eigen::VectorXd rhs;
  Eigen::VectorXd solution;
  Eigen::VectorXd scratch;
};

struct AlsScored {
  uint32_t item = 0;
  float score = 0;
};

// A fitted model: item factors and ids, and the options that produced them. Immutable once
// built, so one model can be shared by threads (each with its own AlsWorkspace).
class AlsModel {
 public:
  // REQUIRES: item_factors.rows() == item_ids.size(), options valid.
  AlsModel(std::vector<std::string> item_ids, AlsFactors item_factors, AlsOptions options);

  uint32_t items() const { return static_cast<uint32_t>(item_ids_.size()); }
  int factors() const { return static_cast<int>(item_factors_.cols()); }
  const std::string& item_id(uint32_t item) const { return item_ids_[item]; }
  // Index of an item id, or kAlsNoItem when the model has not seen it.
  uint32_t FindItem(std::string_view item_id) const;
  const AlsFactors& item_factors() const { return item_factors_; }
  // The options of the fit (progress callback and cancel flag cleared).
  const AlsOptions& options() const { return options_; }

  // A customer's factors from the full item history against the fixed item factors: exactly the
  // user step of the fit. Items out of range and counts <= 0 are ignored. REQUIRES: each item at
  // most once in `history` (sum the counts first). A customer with no item gets zeros.
  void FoldIn(std::span<const AlsInteraction> history, AlsWorkspace* workspace,
              AlsVector* out) const;
  // The owned item of the last FoldIn on `workspace` that contributes most to the score of
  // `item`: the score decomposes exactly as sum_i c_i y_i^T A^-1 y_item over the owned items i.
  // Returns kAlsNoItem when the history was empty; *contribution gets that item's share.
  uint32_t TopContributor(const AlsWorkspace& workspace, uint32_t item, double* contribution) const;

  // scores[i] = user . y_i for every item.
  void ScoreAll(const AlsVector& user, Eigen::VectorXf* scores) const;
  // The n best items by score (descending, ties by ascending index), skipping `exclude`.
  std::vector<AlsScored> TopN(const AlsVector& user, size_t n,
                              std::span<const uint32_t> exclude = {}) const;

  // Binary form (format version, options, item ids, factors; little-endian), for the model
  // column family. Decode(Encode()) gives a model whose every factor is bit-identical.
  std::string Encode() const;
  // Corruption on a truncated or inconsistent value, NotSupported on another format version.
  [[nodiscard]] static StatusOr<AlsModel> Decode(std::string_view bytes);

 private:
  std::vector<std::string> item_ids_;
  std::unordered_map<std::string, uint32_t> item_index_;
  AlsFactors item_factors_;
  AlsOptions options_;
  AlsSystem gram_;  // Y^T Y + lambda I, lower triangle (shared by every fold-in)
};

inline constexpr uint8_t kAlsFormatVersion = 1;

// Fits the model. `user_factors_out` (optional) receives the users' factors (users x f).
// `warm_start` (optional): a previous model with the same number of factors; its item factors
// (by item id; items it does not know start at zero) replace the random start, and the fit
// begins with a user step, so a few iterations continue where that model left off instead of
// the many a cold start needs. Ignored when its factor count differs.
// InvalidArgument on bad options (ValidateAlsOptions) or an empty item set; Aborted when
// options.cancel was set during the fit.
[[nodiscard]] StatusOr<AlsModel> AlsFit(const AlsMatrix& matrix, const AlsOptions& options,
                                        AlsFactors* user_factors_out = nullptr,
                                        const AlsModel* warm_start = nullptr);

}  // namespace streamrec

#endif  // STREAMREC_ALS_H_
