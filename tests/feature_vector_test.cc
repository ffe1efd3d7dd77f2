#include "streamrec/feature_vector.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

constexpr int64_t kDay = 86400000;
constexpr int64_t kT0 = 1700000000000;

PurchaseEvent Event(int64_t t, double amount, const std::string& channel, double discount = 0) {
  PurchaseEvent e;
  e.customer_id = "c1";
  e.item_id = "A";
  e.event_time_ms = t;
  e.amount = amount;
  e.discount = discount;
  e.channel = channel;
  return e;
}

// Deterministic right-skewed sample: exp of a normal.
std::vector<double> LogNormalSample(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<double> x(n);
  for (int i = 0; i < n; ++i) {
    // Box-Muller on the raw generator output (portable, unlike std::normal_distribution).
    const double u1 = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
    x[i] = std::exp(1.0 + 0.8 * z);
  }
  return x;
}

TEST(FeatureVectorTest, DefaultSpecAndNames) {
  const FeatureSpec spec = FeatureSpec::Default();
  EXPECT_EQ(spec.Names(),
            (std::vector<std::string>{"recency_days", "frequency", "monetary", "avg_spend",
                                      "avg_discount", "mean_gap_days", "tenure_days"}));
  const FeatureSpec shares = FeatureSpec::WithShares({"app", "ussd"}, {"data"});
  ASSERT_EQ(shares.dim(), 10);
  EXPECT_EQ(shares.features[7].Name(), "channel_share:app");
  EXPECT_EQ(shares.features[9].Name(), "service_share:data");

  ASSERT_OK_AND_ASSIGN(parsed, FeatureSpec::FromNames(shares.Names()));
  EXPECT_EQ(parsed.features, shares.features);
}

TEST(FeatureVectorTest, RefusesUnknownDuplicateAndEmptyNames) {
  StatusOr<FeatureSpec> bad = FeatureSpec::FromNames({"frequency", "recencyy"});
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(bad.status().IsInvalidArgument());
  EXPECT_NE(bad.status().message().find("'recencyy'"), std::string::npos);
  StatusOr<FeatureSpec> dup = FeatureSpec::FromNames({"frequency", "frequency"});
  ASSERT_FALSE(dup.ok());
  EXPECT_NE(dup.status().message().find("twice"), std::string::npos);
  EXPECT_FALSE(FeatureSpec::FromNames({}).ok());
  EXPECT_FALSE(FeatureSpec::FromNames({"channel_share:"}).ok());
}

TEST(FeatureVectorTest, BuildRawVectorReadsDerivedFeaturesAndShares) {
  FeatureOptions options;
  CustomerState s = NewCustomerState("c1");
  ApplyEvent(options, Event(kT0, 10.0, "app"), nullptr, &s);
  ApplyEvent(options, Event(kT0 + 10 * kDay, 30.0, "app", 10.0), nullptr, &s);
  ApplyEvent(options, Event(kT0 + 30 * kDay, 20.0, "ussd"), nullptr, &s);
  const int64_t now = kT0 + 40 * kDay;

  const FeatureSpec spec = FeatureSpec::WithShares({"app", "ussd", "web"}, {"data"});
  std::vector<float> v(spec.dim());
  BuildRawVector(spec, s, now, v.data());
  EXPECT_FLOAT_EQ(v[0], 10.0f);          // recency: 40 - 30 days
  EXPECT_FLOAT_EQ(v[1], 3.0f);           // baskets
  EXPECT_FLOAT_EQ(v[2], 60.0f);          // spend
  EXPECT_FLOAT_EQ(v[3], 20.0f);          // per basket
  EXPECT_FLOAT_EQ(v[4], 10.0f / 70.0f);  // discount share
  EXPECT_FLOAT_EQ(v[5], 15.0f);          // gaps 10 and 20 days
  EXPECT_FLOAT_EQ(v[6], 30.0f);          // tenure
  EXPECT_FLOAT_EQ(v[7], 2.0f / 3.0f);    // app
  EXPECT_FLOAT_EQ(v[8], 1.0f / 3.0f);    // ussd
  EXPECT_FLOAT_EQ(v[9], 0.0f);           // web: never used
  EXPECT_FLOAT_EQ(v[10], 0.0f);          // no catalogue item: no service types

  // A customer without events is all zeros.
  std::vector<float> empty(spec.dim(), -1.0f);
  BuildRawVector(spec, NewCustomerState("c2"), now, empty.data());
  for (float e : empty) EXPECT_EQ(e, 0.0f);
}

TEST(FeatureVectorTest, DefaultTransformKinds) {
  const std::vector<FeatureTransformKind> kinds =
      DefaultTransformKinds(FeatureSpec::WithShares({"app"}, {}));
  using K = FeatureTransformKind;
  EXPECT_EQ(kinds, (std::vector<K>{K::kLog1p, K::kLog1p, K::kLog1p, K::kLog1p, K::kNone, K::kLog1p,
                                   K::kLog1p, K::kNone}));
}

TEST(FeatureVectorTest, TransformsFromConfigurationKeepDefaultsForUnnamedFeatures) {
  const FeatureSpec spec = FeatureSpec::WithShares({"app"}, {});
  ASSERT_OK_AND_ASSIGN(kinds,
                       ParseTransformKinds(spec,
                                           " monetary:yeo-johnson, frequency:none,"
                                           "avg_discount:log1p,channel_share:app:yeo_johnson"));
  std::vector<FeatureTransformKind> expected = DefaultTransformKinds(spec);
  expected[1] = FeatureTransformKind::kNone;        // frequency
  expected[2] = FeatureTransformKind::kYeoJohnson;  // monetary
  expected[4] = FeatureTransformKind::kLog1p;       // avg_discount
  expected[7] = FeatureTransformKind::kYeoJohnson;  // channel_share:app
  EXPECT_EQ(kinds, expected);
  ASSERT_OK_AND_ASSIGN(defaults, ParseTransformKinds(spec, ""));
  EXPECT_EQ(defaults, DefaultTransformKinds(spec));
  EXPECT_EQ(FeatureTransformKindName(FeatureTransformKind::kYeoJohnson), "yeo-johnson");
}

TEST(FeatureVectorTest, TransformListErrorsNameTheBadEntry) {
  const FeatureSpec spec = FeatureSpec::Default();
  auto expect_error = [&](const std::string& list, const std::vector<std::string>& parts) {
    auto kinds = ParseTransformKinds(spec, list);
    ASSERT_FALSE(kinds.ok()) << list;
    EXPECT_TRUE(kinds.status().IsInvalidArgument());
    for (const std::string& p : parts) {
      EXPECT_NE(kinds.status().message().find(p), std::string::npos)
          << "'" << p << "' not in: " << kinds.status().message();
    }
  };
  expect_error("monetary:box-cox", {"monetary", "'box-cox'", "yeo-johnson"});
  expect_error("monetory:log1p", {"'monetory'", "recency_days"});
  expect_error("channel_share:app:none", {"'channel_share:app'"});  // not in the spec
  expect_error("monetary", {"'monetary'", "feature:transform"});
  expect_error("monetary:log1p,monetary:none", {"'monetary'", "twice"});
}

TEST(FeatureVectorTest, YeoJohnsonValues) {
  // ((x+1)^l - 1) / l for x >= 0; -((1-x)^(2-l) - 1) / (2-l) for x < 0.
  EXPECT_NEAR(detail::YeoJohnson(3.0, 0.5), 2.0, 1e-12);
  EXPECT_NEAR(detail::YeoJohnson(-3.0, 0.5), -7.0 / 1.5, 1e-12);
  EXPECT_NEAR(detail::YeoJohnson(3.0, 0.0), std::log(4.0), 1e-12);
  EXPECT_NEAR(detail::YeoJohnson(-3.0, 2.0), -std::log(4.0), 1e-12);
  EXPECT_NEAR(detail::YeoJohnson(2.5, 1.0), 2.5, 1e-12);  // lambda 1: identity
  EXPECT_NEAR(detail::YeoJohnson(-2.5, 1.0), -2.5, 1e-12);
  // Continuous in lambda at 0 and 2.
  EXPECT_NEAR(detail::YeoJohnson(3.0, 1e-9), std::log(4.0), 1e-8);
  EXPECT_NEAR(detail::YeoJohnson(-3.0, 2.0 - 1e-9), -std::log(4.0), 1e-8);
  for (double lambda : {-2.5, -1.0, 0.0, 0.3, 1.0, 2.0, 2.7}) {
    for (double x : {-50.0, -3.0, -0.2, 0.0, 0.7, 4.0, 1000.0}) {
      EXPECT_NEAR(detail::InverseYeoJohnson(detail::YeoJohnson(x, lambda), lambda), x,
                  1e-9 * std::max(1.0, std::abs(x)))
          << "lambda " << lambda << " x " << x;
    }
  }
}

TEST(FeatureVectorTest, YeoJohnsonLambdaIsTheMaximumLikelihood) {
  const std::vector<double> x = LogNormalSample(1000, 7);
  const double lambda = detail::FitYeoJohnsonLambda(x, -3, 3);
  // Brute force: the best lambda on a 1e-2 grid, refined on a 1e-5 grid around it.
  double best = 0, best_llf = -INFINITY;
  for (double l = -3; l <= 3; l += 1e-2) {
    const double llf = detail::YeoJohnsonLogLikelihood(x, l);
    if (llf > best_llf) best_llf = llf, best = l;
  }
  const double coarse = best;
  for (double l = coarse - 1e-2; l <= coarse + 1e-2; l += 1e-5) {
    const double llf = detail::YeoJohnsonLogLikelihood(x, l);
    if (llf > best_llf) best_llf = llf, best = l;
  }
  EXPECT_NEAR(lambda, best, 1e-4);
  // Right-skewed positive data wants a compressing transform (lambda well below 1).
  EXPECT_LT(lambda, 0.6);
  EXPECT_GE(detail::YeoJohnsonLogLikelihood(x, lambda) + 1e-9, best_llf);
}

TEST(FeatureVectorTest, YeoJohnsonLambdaMatchesScipyOnASmallSample) {
  // scipy 1.10.1: stats.yeojohnson([0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55])[1].
  constexpr double kScipyLambda = -0.09779638353497956;
  const std::vector<double> x = {0.5, 1, 2, 3, 5, 8, 13, 21, 34, 55};
  const double lambda = detail::FitYeoJohnsonLambda(x, -3, 3);
  const double h = 1e-4;
  const double slope = (detail::YeoJohnsonLogLikelihood(x, lambda + h) -
                        detail::YeoJohnsonLogLikelihood(x, lambda - h)) /
                       (2 * h);
  EXPECT_NEAR(slope, 0.0, 1e-2);
  EXPECT_NEAR(lambda, kScipyLambda, 1e-4);
}

TEST(FeatureVectorTest, BoundedLambdaAndConstantColumns) {
  // Constant sample: identity.
  EXPECT_EQ(detail::FitYeoJohnsonLambda({4, 4, 4}, -3, 3), 1.0);
  // Symmetric data wants lambda near 1; with the interval ending at 0.5 the search stops there.
  std::vector<double> x = LogNormalSample(500, 5);
  for (double& v : x) v = std::log(v);
  EXPECT_NEAR(detail::FitYeoJohnsonLambda(x, -3, 3), 1.0, 0.3);
  EXPECT_NEAR(detail::FitYeoJohnsonLambda(x, -3, 0.5), 0.5, 1e-4);
}

TEST(FeatureVectorTest, Log1pThenStandardise) {
  // Column 0 log1p, column 1 none, column 2 constant.
  const std::vector<float> raw = {0, 1, 5, 3, 2, 5, 8, 3, 5, 99, 6, 5};
  FeatureTransformOptions options;
  using K = FeatureTransformKind;
  options.kinds = {K::kLog1p, K::kNone, K::kNone};
  ASSERT_OK_AND_ASSIGN(t, FeatureTransform::Fit(raw.data(), 4, 3, options));
  ASSERT_EQ(t.dim(), 3);

  const double l[] = {std::log1p(0.0), std::log1p(3.0), std::log1p(8.0), std::log1p(99.0)};
  const double mean0 = (l[0] + l[1] + l[2] + l[3]) / 4;
  double var0 = 0;
  for (double v : l) var0 += (v - mean0) * (v - mean0);
  EXPECT_NEAR(t.columns()[0].mean, mean0, 1e-9);
  EXPECT_NEAR(t.columns()[0].std, std::sqrt(var0 / 4), 1e-9);  // population std (ddof 0)
  EXPECT_NEAR(t.columns()[1].mean, 3.0, 1e-12);
  EXPECT_NEAR(t.columns()[1].std, std::sqrt(14.0 / 4), 1e-12);  // column 1: 1, 2, 3, 6
  EXPECT_EQ(t.columns()[2].mean, 5.0);
  EXPECT_EQ(t.columns()[2].std, 1.0);  // constant column: centred only

  // Transformed columns have mean 0 and std 1.
  std::vector<float> out(raw.size());
  t.ApplyRows(raw.data(), 4, out.data());
  for (int j = 0; j < 2; ++j) {
    double m = 0, q = 0;
    for (int i = 0; i < 4; ++i) m += out[i * 3 + j];
    m /= 4;
    for (int i = 0; i < 4; ++i) q += (out[i * 3 + j] - m) * (out[i * 3 + j] - m);
    EXPECT_NEAR(m, 0.0, 1e-6);
    EXPECT_NEAR(q / 4, 1.0, 1e-5);
  }
  EXPECT_FLOAT_EQ(out[2], 0.0f);
  EXPECT_FLOAT_EQ(out[0], static_cast<float>((l[0] - mean0) / std::sqrt(var0 / 4)));
}

TEST(FeatureVectorTest, InverseRoundTripsEveryKind) {
  const int n = 500, d = 3;
  const std::vector<double> skewed = LogNormalSample(n, 3);
  std::vector<float> raw(n * d);
  for (int i = 0; i < n; ++i) {
    raw[i * d + 0] = static_cast<float>(skewed[i]);
    raw[i * d + 1] = static_cast<float>(skewed[(i * 7) % n] - 3.0);  // crosses zero
    raw[i * d + 2] = static_cast<float>(i % 10) / 10.0f;
  }
  FeatureTransformOptions options;
  using K = FeatureTransformKind;
  options.kinds = {K::kYeoJohnson, K::kYeoJohnson, K::kLog1p};
  ASSERT_OK_AND_ASSIGN(t, FeatureTransform::Fit(raw.data(), n, d, options));
  EXPECT_NE(t.columns()[0].lambda, 1.0);
  for (int i = 0; i < n; ++i) {
    float y[3];
    t.Apply(raw.data() + i * d, y);
    const std::vector<double> back = t.Inverse(y);
    for (int j = 0; j < d; ++j) {
      EXPECT_NEAR(back[j], raw[i * d + j], 2e-5 * std::max(1.0f, std::abs(raw[i * d + j])))
          << "row " << i << " column " << j;
    }
  }
  // Negative values through log1p are mirrored, not NaN.
  FeatureTransform log1p({{K::kLog1p, 0, 0, 1}});
  float neg = -3.0f, y = 0;
  log1p.Apply(&neg, &y);
  EXPECT_FLOAT_EQ(y, -std::log1p(3.0f));
  EXPECT_NEAR(log1p.Inverse(&y)[0], -3.0, 1e-6);
}

TEST(FeatureVectorTest, FitRefusesBadInput) {
  const std::vector<float> raw = {1, 2, NAN, 4};
  StatusOr<FeatureTransform> t = FeatureTransform::Fit(raw.data(), 2, 2, {});
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("row 1 column 0"), std::string::npos)
      << t.status().ToString();
  FeatureTransformOptions options;
  options.kinds = {FeatureTransformKind::kNone};
  StatusOr<FeatureTransform> wrong = FeatureTransform::Fit(raw.data(), 1, 2, options);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("1 entries for d=2"), std::string::npos);
  EXPECT_FALSE(FeatureTransform::Fit(raw.data(), 0, 2, {}).ok());
}

TEST(FeatureVectorTest, LambdaFitOnEvenlySpacedRows) {
  const std::vector<double> skewed = LogNormalSample(4000, 11);
  std::vector<float> raw(skewed.begin(), skewed.end());
  FeatureTransformOptions all, sampled;
  all.kinds = sampled.kinds = {FeatureTransformKind::kYeoJohnson};
  all.max_lambda_fit_rows = 0;
  sampled.max_lambda_fit_rows = 1000;
  ASSERT_OK_AND_ASSIGN(a, FeatureTransform::Fit(raw.data(), 4000, 1, all));
  ASSERT_OK_AND_ASSIGN(s, FeatureTransform::Fit(raw.data(), 4000, 1, sampled));
  EXPECT_NEAR(a.columns()[0].lambda, s.columns()[0].lambda, 0.1);
}

TEST(FeatureVectorTest, ProtoRoundTrip) {
  const FeatureSpec spec = FeatureSpec::WithShares({"app"}, {"voice"});
  std::vector<FeatureScaling> columns(spec.dim());
  for (int j = 0; j < spec.dim(); ++j) {
    columns[j] = {j % 3 == 0 ? FeatureTransformKind::kYeoJohnson : FeatureTransformKind::kLog1p,
                  j % 3 == 0 ? 0.25 * j : 0.0, 1.5 * j, 1.0 + j};
  }
  const FeatureTransform t(columns);
  v1::SegmentModel model;
  t.ToProto(spec, &model);
  EXPECT_EQ(model.d(), spec.dim());
  EXPECT_EQ(model.features(7).name(), "channel_share:app");
  FeatureSpec spec2;
  FeatureTransform t2;
  ASSERT_OK(FeatureTransform::FromProto(model, &spec2, &t2));
  EXPECT_EQ(spec2.features, spec.features);
  ASSERT_EQ(t2.dim(), t.dim());
  for (int j = 0; j < t.dim(); ++j) {
    EXPECT_EQ(t2.columns()[j].kind, t.columns()[j].kind);
    EXPECT_EQ(t2.columns()[j].mean, t.columns()[j].mean);
    EXPECT_EQ(t2.columns()[j].std, t.columns()[j].std);
    if (t.columns()[j].kind == FeatureTransformKind::kYeoJohnson) {
      EXPECT_EQ(t2.columns()[j].lambda, t.columns()[j].lambda);
    }
  }
  model.mutable_features(2)->set_std(0);
  EXPECT_TRUE(FeatureTransform::FromProto(model, &spec2, &t2).IsCorruption());
  model.set_d(3);
  EXPECT_TRUE(FeatureTransform::FromProto(model, &spec2, &t2).IsCorruption());
}

}  // namespace
}  // namespace streamrec
