#include "streamrec/feature_vector.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

namespace streamrec {

namespace {

constexpr std::string_view kChannelPrefix = "channel_share:";
constexpr std::string_view kServicePrefix = "service_share:";

struct NamedKind {
  std::string_view name;
  FeatureKind kind;
};
constexpr NamedKind kPlainFeatures[] = {
    {"recency_days", FeatureKind::kRecencyDays}, {"frequency", FeatureKind::kFrequency},
    {"monetary", FeatureKind::kMonetary},        {"avg_spend", FeatureKind::kAvgSpend},
    {"avg_discount", FeatureKind::kAvgDiscount}, {"mean_gap_days", FeatureKind::kMeanGapDays},
    {"tenure_days", FeatureKind::kTenureDays},
};

// Count of `key` in a CountEntry list sorted by key (0 when absent).
uint64_t CountOf(const google::protobuf::RepeatedPtrField<v1::CountEntry>& entries,
                 const std::string& key) {
  auto it =
      std::lower_bound(entries.begin(), entries.end(), key,
                       [](const v1::CountEntry& e, const std::string& k) { return e.key() < k; });
  return it != entries.end() && it->key() == key ? it->count() : 0;
}

v1::FeatureTransformKind KindToProto(FeatureTransformKind kind) {
  switch (kind) {
    case FeatureTransformKind::kLog1p:
      return v1::FEATURE_TRANSFORM_LOG1P;
    case FeatureTransformKind::kYeoJohnson:
      return v1::FEATURE_TRANSFORM_YEO_JOHNSON;
    case FeatureTransformKind::kNone:
      break;
  }
  return v1::FEATURE_TRANSFORM_NONE;
}

double Forward(const FeatureScaling& c, double x) {
  switch (c.kind) {
    case FeatureTransformKind::kLog1p:
      return detail::SignedLog1p(x);
    case FeatureTransformKind::kYeoJohnson:
      return detail::YeoJohnson(x, c.lambda);
    case FeatureTransformKind::kNone:
      break;
  }
  return x;
}

double Backward(const FeatureScaling& c, double y) {
  switch (c.kind) {
    case FeatureTransformKind::kLog1p:
      return detail::SignedExpm1(y);
    case FeatureTransformKind::kYeoJohnson:
      return detail::InverseYeoJohnson(y, c.lambda);
    case FeatureTransformKind::kNone:
      break;
  }
  return y;
}

// exp() of at most this stays finite in double.
constexpr double kMaxExp = 700.0;

}  // namespace

// ---- spec ---------------------------------------------------------------------------------------

std::string FeatureRef::Name() const {
  switch (kind) {
    case FeatureKind::kChannelShare:
      return std::string(kChannelPrefix) + key;
    case FeatureKind::kServiceShare:
      return std::string(kServicePrefix) + key;
    default:
      break;
  }
  for (const NamedKind& f : kPlainFeatures) {
    if (f.kind == kind) return std::string(f.name);
  }
  return "?";
}

StatusOr<FeatureRef> ParseFeatureName(std::string_view name) {
  for (const NamedKind& f : kPlainFeatures) {
    if (f.name == name) return FeatureRef{f.kind, ""};
  }
  for (auto [prefix, kind] : {std::pair{kChannelPrefix, FeatureKind::kChannelShare},
                              std::pair{kServicePrefix, FeatureKind::kServiceShare}}) {
    if (name.substr(0, prefix.size()) == prefix) {
      if (name.size() == prefix.size()) {
        return Status::InvalidArgument("feature '" + std::string(name) +
                                       "' needs a name after the colon");
      }
      return FeatureRef{kind, std::string(name.substr(prefix.size()))};
    }
  }
  std::string valid;
  for (const NamedKind& f : kPlainFeatures) valid += std::string(f.name) + ", ";
  return Status::InvalidArgument("unknown feature '" + std::string(name) + "'; valid: " + valid +
                                 "channel_share:<channel>, service_share:<service type>");
}

std::vector<std::string> FeatureSpec::Names() const {
  std::vector<std::string> names;
  names.reserve(features.size());
  for (const FeatureRef& f : features) names.push_back(f.Name());
  return names;
}

FeatureSpec FeatureSpec::Default() {
  FeatureSpec spec;
  for (const NamedKind& f : kPlainFeatures) spec.features.push_back({f.kind, ""});
  return spec;
}

FeatureSpec FeatureSpec::WithShares(const std::vector<std::string>& channels,
                                    const std::vector<std::string>& service_types) {
  FeatureSpec spec = Default();
  for (const std::string& c : channels) spec.features.push_back({FeatureKind::kChannelShare, c});
  for (const std::string& s : service_types) {
    spec.features.push_back({FeatureKind::kServiceShare, s});
  }
  return spec;
}

StatusOr<FeatureSpec> FeatureSpec::FromNames(const std::vector<std::string>& names) {
  if (names.empty()) return Status::InvalidArgument("feature list is empty");
  FeatureSpec spec;
  std::set<std::string> seen;
  for (const std::string& name : names) {
    StatusOr<FeatureRef> ref = ParseFeatureName(name);
    if (!ref.ok()) return ref.status();
    if (!seen.insert(name).second) {
      return Status::InvalidArgument("feature '" + name + "' is listed twice");
    }
    spec.features.push_back(std::move(*ref));
  }
  return spec;
}

void BuildRawVector(const FeatureSpec& spec, const CustomerState& state, int64_t now_ms,
                    float* out) {
  const DerivedFeatures f = Derive(state, now_ms);
  uint64_t service_total = 0;
  bool service_total_known = false;
  for (int j = 0; j < spec.dim(); ++j) {
    const FeatureRef& ref = spec.features[j];
    double v = 0;
    switch (ref.kind) {
      case FeatureKind::kRecencyDays:
        v = f.recency_days;
        break;
      case FeatureKind::kFrequency:
        v = f.frequency;
        break;
      case FeatureKind::kMonetary:
        v = f.monetary;
        break;
      case FeatureKind::kAvgSpend:
        v = f.avg_spend;
        break;
      case FeatureKind::kAvgDiscount:
        v = f.avg_discount;
        break;
      case FeatureKind::kMeanGapDays:
        v = f.mean_gap_days;
        break;
      case FeatureKind::kTenureDays:
        v = f.tenure_days;
        break;
      case FeatureKind::kChannelShare:
        // Every purchase line counts one channel, so the line count is the denominator (exact
        // even when the bounded table dropped a rare channel).
        if (state.event_count() > 0) {
          v = static_cast<double>(CountOf(state.channels(), ref.key)) /
              static_cast<double>(state.event_count());
        }
        break;
      case FeatureKind::kServiceShare:
        // Only lines of catalogue items carry a service type: share among those.
        if (!service_total_known) {
          for (const v1::CountEntry& e : state.service_types()) service_total += e.count();
          service_total_known = true;
        }
        if (service_total > 0) {
          v = static_cast<double>(CountOf(state.service_types(), ref.key)) /
              static_cast<double>(service_total);
        }
        break;
    }
    out[j] = static_cast<float>(v);
  }
}

// ---- transforms ---------------------------------------------------------------------------------

std::string_view FeatureTransformKindName(FeatureTransformKind kind) {
  switch (kind) {
    case FeatureTransformKind::kNone:
      return "none";
    case FeatureTransformKind::kLog1p:
      return "log1p";
    case FeatureTransformKind::kYeoJohnson:
      return "yeo-johnson";
  }
  return "?";
}

StatusOr<FeatureTransformKind> ParseFeatureTransformKind(std::string_view name) {
  if (name == "none") return FeatureTransformKind::kNone;
  if (name == "log1p") return FeatureTransformKind::kLog1p;
  if (name == "yeo-johnson" || name == "yeo_johnson") return FeatureTransformKind::kYeoJohnson;
  return Status::InvalidArgument("unknown transform '" + std::string(name) +
                                 "'; valid: none, log1p, yeo-johnson");
}

FeatureTransformKind DefaultTransformKind(FeatureKind kind) {
  switch (kind) {
    case FeatureKind::kRecencyDays:
    case FeatureKind::kFrequency:
    case FeatureKind::kMonetary:
    case FeatureKind::kAvgSpend:
    case FeatureKind::kMeanGapDays:
    case FeatureKind::kTenureDays:
      return FeatureTransformKind::kLog1p;
    case FeatureKind::kAvgDiscount:
    case FeatureKind::kChannelShare:
    case FeatureKind::kServiceShare:
      break;
  }
  return FeatureTransformKind::kNone;
}

std::vector<FeatureTransformKind> DefaultTransformKinds(const FeatureSpec& spec) {
  std::vector<FeatureTransformKind> kinds;
  kinds.reserve(spec.features.size());
  for (const FeatureRef& f : spec.features) kinds.push_back(DefaultTransformKind(f.kind));
  return kinds;
}

StatusOr<std::vector<FeatureTransformKind>> ParseTransformKinds(const FeatureSpec& spec,
                                                                std::string_view list) {
  std::vector<FeatureTransformKind> kinds = DefaultTransformKinds(spec);
  const std::vector<std::string> names = spec.Names();
  std::set<std::string> named;
  auto trim = [](std::string_view v) {
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
    return v;
  };
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string_view::npos) end = list.size();
    const std::string_view entry = trim(list.substr(begin, end - begin));
    begin = end + 1;
    if (entry.empty()) {
      if (end == list.size()) break;
      continue;
    }
    const size_t colon = entry.rfind(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument("entry '" + std::string(entry) +
                                     "' should be feature:transform (transform: none, log1p, "
                                     "yeo-johnson)");
    }
    const std::string feature(trim(entry.substr(0, colon)));
    auto kind = ParseFeatureTransformKind(trim(entry.substr(colon + 1)));
    if (!kind.ok()) {
      return Status::InvalidArgument("feature '" + feature + "': " + kind.status().message());
    }
    auto it = std::find(names.begin(), names.end(), feature);
    if (it == names.end()) {
      std::string valid;
      for (const std::string& n : names) valid += (valid.empty() ? "" : ", ") + n;
      return Status::InvalidArgument("feature '" + feature +
                                     "' is not a clustering feature; the features are: " + valid);
    }
    if (!named.insert(feature).second) {
      return Status::InvalidArgument("feature '" + feature + "' is given a transform twice");
    }
    kinds[it - names.begin()] = *kind;
  }
  return kinds;
}

namespace detail {

double SignedLog1p(double x) { return x >= 0 ? std::log1p(x) : -std::log1p(-x); }
double SignedExpm1(double y) {
  y = std::clamp(y, -kMaxExp, kMaxExp);
  return y >= 0 ? std::expm1(y) : -std::expm1(-y);
}

double YeoJohnson(double x, double lambda) {
  // expm1(l * log1p(x)) / l == ((x + 1)^l - 1) / l, accurate for l near 0.
  if (x >= 0) {
    if (lambda == 0) return std::log1p(x);
    return std::expm1(lambda * std::log1p(x)) / lambda;
  }
  const double l2 = 2.0 - lambda;
  if (l2 == 0) return -std::log1p(-x);
  return -std::expm1(l2 * std::log1p(-x)) / l2;
}

double InverseYeoJohnson(double y, double lambda) {
  // The range of the transform is bounded for lambda < 0 (y < -1/lambda) and for lambda > 2
  // (y > -1/(lambda-2)): clamp the power's base to stay inside.
  constexpr double kTiny = 1e-300;
  if (y >= 0) {
    if (lambda == 0) return std::expm1(std::min(y, kMaxExp));
    const double base = std::max(1.0 + lambda * y, kTiny);
    return std::expm1(std::clamp(std::log(base) / lambda, -kMaxExp, kMaxExp));
  }
  const double l2 = 2.0 - lambda;
  if (l2 == 0) return -std::expm1(std::min(-y, kMaxExp));
  const double base = std::max(1.0 - l2 * y, kTiny);
  return -std::expm1(std::clamp(std::log(base) / l2, -kMaxExp, kMaxExp));
}

double YeoJohnsonLogLikelihood(const std::vector<double>& x, double lambda) {
  const double n = static_cast<double>(x.size());
  if (x.empty()) return -std::numeric_limits<double>::infinity();
  double mean = 0;
  double log_term = 0;
  for (double v : x) {
    mean += YeoJohnson(v, lambda);
    log_term += SignedLog1p(v);
  }
  mean /= n;
  double var = 0;
  for (double v : x) {
    const double t = YeoJohnson(v, lambda) - mean;
    var += t * t;
  }
  var /= n;
  if (!(var > 0) || !std::isfinite(var)) return -std::numeric_limits<double>::infinity();
  return -0.5 * n * std::log(var) + (lambda - 1.0) * log_term;
}

double FitYeoJohnsonLambda(const std::vector<double>& x, double lo, double hi) {
  bool constant = true;
  for (double v : x) constant = constant && v == x.front();
  if (x.empty() || constant) return 1.0;
  // Brent's bounded minimisation of -llf, as scipy.optimize.fminbound (xatol 1e-6).
  auto f = [&x](double lambda) {
    const double llf = YeoJohnsonLogLikelihood(x, lambda);
    return std::isfinite(llf) ? -llf : std::numeric_limits<double>::max();
  };
  constexpr double kXatol = 1e-6;
  constexpr int kMaxEvaluations = 500;
  const double sqrt_eps = std::sqrt(2.2e-16);
  const double golden_mean = 0.5 * (3.0 - std::sqrt(5.0));
  double a = lo, b = hi;
  double fulc = a + golden_mean * (b - a);
  double nfc = fulc, xf = fulc;
  double rat = 0, e = 0;
  double fx = f(xf);
  int evaluations = 1;
  double ffulc = fx, fnfc = fx;
  double xm = 0.5 * (a + b);
  double tol1 = sqrt_eps * std::abs(xf) + kXatol / 3.0;
  double tol2 = 2.0 * tol1;
  while (std::abs(xf - xm) > tol2 - 0.5 * (b - a)) {
    bool golden = true;
    if (std::abs(e) > tol1) {  // try a parabolic step
      golden = false;
      double r = (xf - nfc) * (fx - ffulc);
      double q = (xf - fulc) * (fx - fnfc);
      double p = (xf - fulc) * q - (xf - nfc) * r;
      q = 2.0 * (q - r);
      if (q > 0) p = -p;
      q = std::abs(q);
      r = e;
      e = rat;
      if (std::abs(p) < std::abs(0.5 * q * r) && p > q * (a - xf) && p < q * (b - xf)) {
        rat = p / q;
        const double u = xf + rat;
        if (u - a < tol2 || b - u < tol2) rat = xm - xf >= 0 ? tol1 : -tol1;
      } else {
        golden = true;
      }
    }
    if (golden) {
      e = xf >= xm ? a - xf : b - xf;
      rat = golden_mean * e;
    }
    const double step = std::max(std::abs(rat), tol1);
    const double u = xf + (rat >= 0 ? step : -step);
    const double fu = f(u);
    ++evaluations;
    if (fu <= fx) {
      if (u >= xf) {
        a = xf;
      } else {
        b = xf;
      }
      fulc = nfc, ffulc = fnfc;
      nfc = xf, fnfc = fx;
      xf = u, fx = fu;
    } else {
      if (u < xf) {
        a = u;
      } else {
        b = u;
      }
      if (fu <= fnfc || nfc == xf) {
        fulc = nfc, ffulc = fnfc;
        nfc = u, fnfc = fu;
      } else if (fu <= ffulc || fulc == xf || fulc == nfc) {
        fulc = u, ffulc = fu;
      }
    }
    xm = 0.5 * (a + b);
    tol1 = sqrt_eps * std::abs(xf) + kXatol / 3.0;
    tol2 = 2.0 * tol1;
    if (evaluations >= kMaxEvaluations) break;
  }
  return xf;
}

}  // namespace detail

StatusOr<FeatureTransform> FeatureTransform::Fit(const float* raw, int64_t n, int d,
                                                 const FeatureTransformOptions& options) {
  if (d < 1) return Status::InvalidArgument("dimension d=" + std::to_string(d) + " should be >= 1");
  if (n < 1) {
    return Status::InvalidArgument("number of rows " + std::to_string(n) +
                                   " should be at least 1 to fit a feature transform");
  }
  if (raw == nullptr) return Status::InvalidArgument("feature matrix is null");
  if (!options.kinds.empty() && static_cast<int>(options.kinds.size()) != d) {
    return Status::InvalidArgument("transform kinds list has " +
                                   std::to_string(options.kinds.size()) +
                                   " entries for d=" + std::to_string(d) + " features");
  }
  if (!(options.lambda_min < options.lambda_max)) {
    return Status::InvalidArgument("Yeo-Johnson lambda interval [" +
                                   std::to_string(options.lambda_min) + ", " +
                                   std::to_string(options.lambda_max) + "] is empty");
  }
  if (options.max_lambda_fit_rows < 0) {
    return Status::InvalidArgument("max_lambda_fit_rows " +
                                   std::to_string(options.max_lambda_fit_rows) + " should be >= 0");
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int j = 0; j < d; ++j) {
      if (!std::isfinite(raw[i * d + j])) {
        return Status::InvalidArgument("raw feature row " + std::to_string(i) + " column " +
                                       std::to_string(j) + " is not finite (" +
                                       std::to_string(raw[i * d + j]) + ")");
      }
    }
  }

  const int64_t lambda_rows =
      options.max_lambda_fit_rows == 0 ? n : std::min<int64_t>(n, options.max_lambda_fit_rows);
  std::vector<FeatureScaling> columns(d);
  std::vector<double> column;
  for (int j = 0; j < d; ++j) {
    FeatureScaling& c = columns[j];
    c.kind = options.kinds.empty() ? FeatureTransformKind::kNone : options.kinds[j];
    c.lambda = c.kind == FeatureTransformKind::kYeoJohnson ? 1.0 : 0.0;
    if (c.kind == FeatureTransformKind::kYeoJohnson) {
      // Evenly spaced rows: deterministic, and unbiased for any row order that is not
      // periodic in the stride (store key order is).
      column.resize(lambda_rows);
      for (int64_t s = 0; s < lambda_rows; ++s) {
        const int64_t i = lambda_rows == n ? s : s * n / lambda_rows;
        column[s] = raw[i * d + j];
      }
      c.lambda = detail::FitYeoJohnsonLambda(column, options.lambda_min, options.lambda_max);
    }
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += Forward(c, raw[i * d + j]);
    mean /= static_cast<double>(n);
    double var = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double t = Forward(c, raw[i * d + j]) - mean;
      var += t * t;
    }
    var /= static_cast<double>(n);
    double std = std::sqrt(var);
    // As sklearn's StandardScaler: a (numerically) constant column is only centred.
    if (!(std > 1e-12 * std::max(1.0, std::abs(mean)))) std = 1.0;
    c.mean = mean;
    c.std = std;
  }
  return FeatureTransform(std::move(columns));
}

void FeatureTransform::Apply(const float* raw, float* out) const {
  const int d = dim();
  for (int j = 0; j < d; ++j) {
    const FeatureScaling& c = columns_[j];
    out[j] = static_cast<float>((Forward(c, raw[j]) - c.mean) / c.std);
  }
}

void FeatureTransform::ApplyRows(const float* raw, int64_t n, float* out) const {
  const int d = dim();
  for (int64_t i = 0; i < n; ++i) Apply(raw + i * d, out + i * d);
}

void FeatureTransform::Inverse(const float* transformed, double* out) const {
  const int d = dim();
  for (int j = 0; j < d; ++j) {
    const FeatureScaling& c = columns_[j];
    out[j] = Backward(c, static_cast<double>(transformed[j]) * c.std + c.mean);
  }
}

std::vector<double> FeatureTransform::Inverse(const float* transformed) const {
  std::vector<double> out(dim());
  Inverse(transformed, out.data());
  return out;
}

void FeatureTransform::ToProto(const FeatureSpec& spec, v1::SegmentModel* model) const {
  assert(spec.dim() == dim());
  model->set_d(dim());
  model->clear_features();
  for (int j = 0; j < dim(); ++j) {
    v1::FeatureColumn* f = model->add_features();
    f->set_name(spec.features[j].Name());
    f->set_transform(KindToProto(columns_[j].kind));
    f->set_lambda(columns_[j].kind == FeatureTransformKind::kYeoJohnson ? columns_[j].lambda : 0);
    f->set_mean(columns_[j].mean);
    f->set_std(columns_[j].std);
  }
}

Status FeatureTransform::FromProto(const v1::SegmentModel& model, FeatureSpec* spec,
                                   FeatureTransform* transform) {
  if (model.features_size() != model.d()) {
    return Status::Corruption("model has " + std::to_string(model.features_size()) +
                              " feature columns for d=" + std::to_string(model.d()));
  }
  FeatureSpec s;
  std::vector<FeatureScaling> columns;
  for (const v1::FeatureColumn& f : model.features()) {
    StatusOr<FeatureRef> ref = ParseFeatureName(f.name());
    if (!ref.ok()) return Status::Corruption("model feature column: " + ref.status().message());
    s.features.push_back(std::move(*ref));
    FeatureScaling c;
    switch (f.transform()) {
      case v1::FEATURE_TRANSFORM_NONE:
        c.kind = FeatureTransformKind::kNone;
        break;
      case v1::FEATURE_TRANSFORM_LOG1P:
        c.kind = FeatureTransformKind::kLog1p;
        break;
      case v1::FEATURE_TRANSFORM_YEO_JOHNSON:
        c.kind = FeatureTransformKind::kYeoJohnson;
        break;
      default:
        return Status::Corruption("feature '" + f.name() + "' has unknown transform " +
                                  std::to_string(f.transform()));
    }
    c.lambda = f.lambda();
    c.mean = f.mean();
    c.std = f.std();
    if (!(c.std > 0) || !std::isfinite(c.std) || !std::isfinite(c.mean) ||
        !std::isfinite(c.lambda)) {
      return Status::Corruption("feature '" + f.name() + "' has invalid parameters (mean " +
                                std::to_string(c.mean) + ", std " + std::to_string(c.std) +
                                ", lambda " + std::to_string(c.lambda) + ")");
    }
    columns.push_back(c);
  }
  *spec = std::move(s);
  *transform = FeatureTransform(std::move(columns));
  return Status::OK();
}

}  // namespace streamrec
