// The clustering vector of a customer: which derived features it holds (FeatureSpec), how they
// are read from a CustomerState (BuildRawVector, original units), and how they are made
// comparable (FeatureTransform: per-feature log1p or Yeo-Johnson, then standardisation).
//
// The transform parameters are fitted at each full re-fit and belong to the model version
// (SegmentModel.features), so a vector is always scored with the parameters of the model that
// scores it. Everything here is pure and deterministic; no state is shared between calls.
#ifndef STREAMREC_FEATURE_VECTOR_H_
#define STREAMREC_FEATURE_VECTOR_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "streamrec/features.h"
#include "streamrec/status.h"
#include "streamrec/v1/model.pb.h"

namespace streamrec {

// Where one column of the vector comes from (see Derive() in features.h for the definitions).
enum class FeatureKind {
  kRecencyDays,   // "recency_days": days since the last purchase
  kFrequency,     // "frequency": baskets
  kMonetary,      // "monetary": total spend
  kAvgSpend,      // "avg_spend": spend per basket
  kAvgDiscount,   // "avg_discount": discount / (spend + discount)
  kMeanGapDays,   // "mean_gap_days": mean days between baskets
  kTenureDays,    // "tenure_days": last purchase - first purchase, in days
  kChannelShare,  // "channel_share:<channel>": that channel's share of purchase lines, 0..1
  kServiceShare,  // "service_share:<type>": that service type's share of purchase lines, 0..1
};

struct FeatureRef {
  FeatureKind kind = FeatureKind::kRecencyDays;
  std::string key;  // channel or service type for the share kinds; empty otherwise

  // "recency_days", ..., "channel_share:app".
  std::string Name() const;
  bool operator==(const FeatureRef&) const = default;
};

// Parses a feature name; InvalidArgument names the bad name and lists the valid ones.
[[nodiscard]] StatusOr<FeatureRef> ParseFeatureName(std::string_view name);

// Which features make the clustering vector, in order. Names are unique.
struct FeatureSpec {
  /// Columns of the vector, in order.
  std::vector<FeatureRef> features;

  int dim() const { return static_cast<int>(features.size()); }
  std::vector<std::string> Names() const;

  // recency_days, frequency, monetary, avg_spend, avg_discount, mean_gap_days, tenure_days.
  static FeatureSpec Default();
  // The default seven, then channel_share:<c> for each of `channels`, then service_share:<s> for
  // each of `service_types`.
  static FeatureSpec WithShares(const std::vector<std::string>& channels,
                                const std::vector<std::string>& service_types);
  // From configuration names; refuses unknown and duplicate names and an empty list.
  [[nodiscard]] static StatusOr<FeatureSpec> FromNames(const std::vector<std::string>& names);
};

// Writes spec.dim() values of `state` seen at event time `now_ms` into `out`, in original units.
// A customer without events gives all zeros. Shares are 0 when the customer has no count for the
// channel / service type. O(d log c) for c distinct channels or service types of the customer.
void BuildRawVector(const FeatureSpec& spec, const CustomerState& state, int64_t now_ms,
                    float* out);

enum class FeatureTransformKind {
  kNone = 0,
  kLog1p = 1,       // sign(x) * log1p(|x|): log1p for x >= 0, odd extension below (refunds)
  kYeoJohnson = 2,  // Yeo-Johnson with lambda fitted by maximum likelihood
};
std::string_view FeatureTransformKindName(FeatureTransformKind kind);
// "none", "log1p", "yeo-johnson" (or "yeo_johnson"); InvalidArgument names the bad name and lists
// the valid ones.
[[nodiscard]] StatusOr<FeatureTransformKind> ParseFeatureTransformKind(std::string_view name);

// The default transform of a feature: log1p for recency, frequency, monetary, average spend,
// mean gap and tenure (counts and amounts, right-skewed); none for ratios and shares.
FeatureTransformKind DefaultTransformKind(FeatureKind kind);
std::vector<FeatureTransformKind> DefaultTransformKinds(const FeatureSpec& spec);
// The transform of each column of `spec` from a configuration list
// "feature:transform,feature:transform,..." (e.g. "monetary:yeo-johnson,frequency:log1p"; the
// feature name is everything before the last colon, so "channel_share:app:none" works). Features
// not named keep DefaultTransformKind; an empty list gives the defaults. InvalidArgument names the
// bad entry: an entry without a colon, an unknown transform, a feature that is not in `spec`, or a
// feature named twice.
[[nodiscard]] StatusOr<std::vector<FeatureTransformKind>> ParseTransformKinds(
    const FeatureSpec& spec, std::string_view list);

// Parameters of one column: transformed = (T_kind,lambda(raw) - mean) / std.
struct FeatureScaling {
  /// Transform applied before standardisation.
  FeatureTransformKind kind = FeatureTransformKind::kNone;
  /// Yeo-Johnson lambda (ignored for other kinds).
  double lambda = 1.0;
  /// Mean of the transformed column over the fit population.
  double mean = 0.0;
  /// Standard deviation (population, ddof=0) of the transformed column; 1 when it was 0.
  double std = 1.0;
};

struct FeatureTransformOptions {
  /// Transform per column; empty = DefaultTransformKinds of the spec (or kNone for all when
  /// fitting a bare matrix).
  std::vector<FeatureTransformKind> kinds;
  /// Yeo-Johnson lambda search interval (scipy.stats.yeojohnson searches an unbounded bracket;
  /// bounding it keeps the inverse well defined and the powers finite).
  double lambda_min = -3.0;
  /// Upper end of the lambda search interval.
  double lambda_max = 3.0;
  /// Lambda is fitted on at most this many rows, evenly spaced over the matrix (0 = all rows);
  /// the mean and std always use all rows. The likelihood costs ~40 passes, so this bounds the
  /// fit at ~40 x this many powers.
  int64_t max_lambda_fit_rows = 200000;
};

// Per-column transform + standardisation. Plain data: copyable, serialisable (ToProto), immutable
// once fitted; Apply and Inverse are const and thread-safe.
class FeatureTransform {
 public:
  FeatureTransform() = default;
  explicit FeatureTransform(std::vector<FeatureScaling> columns) : columns_(std::move(columns)) {}

  // Fits the parameters on `n` rows of `d` raw values (row-major, original units). Refuses
  // n < 1, d < 1, a kinds list of the wrong length, a bad lambda interval and non-finite input
  // (naming the row and column).
  [[nodiscard]] static StatusOr<FeatureTransform> Fit(const float* raw, int64_t n, int d,
                                                      const FeatureTransformOptions& options);

  int dim() const { return static_cast<int>(columns_.size()); }
  const std::vector<FeatureScaling>& columns() const { return columns_; }

  // raw (dim() values, original units) -> out (dim() transformed values). O(d). `out` may alias
  // `raw`.
  void Apply(const float* raw, float* out) const;
  // Apply on n rows.
  void ApplyRows(const float* raw, int64_t n, float* out) const;
  // Transformed -> original units (to print centres). Values outside the range of the
  // Yeo-Johnson transform (possible only for vectors no data point produced) are clamped to its
  // edge, giving a large finite value.
  void Inverse(const float* transformed, double* out) const;
  std::vector<double> Inverse(const float* transformed) const;

  // Writes d and one FeatureColumn per feature (names from `spec`) into `model`, replacing any.
  // REQUIRES: spec.dim() == dim().
  void ToProto(const FeatureSpec& spec, v1::SegmentModel* model) const;
  // Reads the spec and the transform back; Corruption when they are inconsistent.
  [[nodiscard]] static Status FromProto(const v1::SegmentModel& model, FeatureSpec* spec,
                                        FeatureTransform* transform);

 private:
  std::vector<FeatureScaling> columns_;
};

namespace detail {

// Yeo-Johnson transform of x with parameter lambda (as scipy.stats.yeojohnson).
double YeoJohnson(double x, double lambda);
// Its inverse; y beyond the transform's range is clamped to the edge.
double InverseYeoJohnson(double y, double lambda);
// Profile log-likelihood of lambda for the sample (scipy.stats.yeojohnson_llf):
//   -n/2 log(var(T(x))) + (lambda - 1) sum sign(x) log1p(|x|).  -inf when var is 0 or not finite.
double YeoJohnsonLogLikelihood(const std::vector<double>& x, double lambda);
// Maximum-likelihood lambda in [lo, hi] by Brent's bounded search (scipy's fminbound), xtol 1e-6.
// A constant sample gives 1 (identity).
double FitYeoJohnsonLambda(const std::vector<double>& x, double lo, double hi);
// Signed log1p and its inverse.
double SignedLog1p(double x);
double SignedExpm1(double y);

}  // namespace detail

}  // namespace streamrec

#endif  // STREAMREC_FEATURE_VECTOR_H_
