#include "streamrec/kmeans.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "streamrec/hungarian.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

// k Gaussian blobs (sd `sigma`) at 10 * (1 + j / d) along axis j % d: pairwise >= 14 apart.
// Point i belongs to blob i % k. Portable: SplitMix64 + Box-Muller.
struct Blobs {
  int64_t n = 0;
  int d = 0;
  int k = 0;
  std::vector<float> x;
  std::vector<float> centres;
  std::vector<int32_t> truth;
};

Blobs MakeBlobs(int64_t n, int d, int k, double sigma, uint64_t seed) {
  Blobs b;
  b.n = n, b.d = d, b.k = k;
  b.centres.assign(static_cast<size_t>(k) * d, 0.0f);
  for (int j = 0; j < k; ++j) b.centres[j * d + j % d] = 10.0f * (1 + j / d);
  detail::SplitMix64 rng(seed);
  b.x.resize(static_cast<size_t>(n) * d);
  b.truth.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % k);
    b.truth[i] = c;
    for (int l = 0; l < d; ++l) {
      const double u1 = (static_cast<double>(rng.Next() >> 11) + 0.5) * 0x1.0p-53;
      const double u2 = rng.Unit();
      const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
      b.x[i * d + l] = b.centres[c * d + l] + static_cast<float>(sigma * z);
    }
  }
  return b;
}

std::vector<float> Uniform(int64_t n, int d, uint64_t seed) {
  detail::SplitMix64 rng(seed);
  std::vector<float> x(static_cast<size_t>(n) * d);
  for (float& v : x) v = static_cast<float>(rng.Unit());
  return x;
}

double ObjectiveOf(const std::vector<float>& x, int64_t n, int d, const std::vector<float>& centres,
                   int k) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    float dist = 0;
    NearestCentre(centres.data(), k, d, x.data() + i * d, &dist);
    total += dist;
  }
  return total;
}

// Every found centre is within `tol` of a distinct true centre.
void ExpectCentresNear(const std::vector<float>& found, const std::vector<float>& truth, int k,
                       int d, double tol) {
  ASSERT_OK_AND_ASSIGN(m, MatchCentres(truth.data(), k, found.data(), k, d));
  for (int i = 0; i < k; ++i) {
    ASSERT_GE(m.new_to_old[i], 0);
    const float dist = std::sqrt(
        detail::SquaredDistance(found.data() + i * d, truth.data() + m.new_to_old[i] * d, d));
    EXPECT_LT(dist, tol) << "centre " << i;
  }
}

// ---- full fit -----------------------------------------------------------------------------------

TEST(KMeansTest, RefusesBadInputWithTheNumbers) {
  const std::vector<float> x = Uniform(5, 2, 1);
  KMeansParameters p;
  p.k = 8;
  StatusOr<KMeansResult> r = KMeansFit(x.data(), 5, 2, p);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_EQ(r.status().message(), "number of points 5 should be at least k=8");

  p.k = 2;
  p.initial_centres = {1, 2, 3};
  r = KMeansFit(x.data(), 5, 2, p);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "initial centres hold 3 values, expected k*d = 4");

  p.initial_centres.clear();
  std::vector<float> bad = x;
  bad[7] = NAN;
  r = KMeansFit(bad.data(), 5, 2, p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("point 3 column 1 is not finite"), std::string::npos)
      << r.status().ToString();

  p.n_init = 0;
  EXPECT_FALSE(KMeansFit(x.data(), 5, 2, p).ok());
  p.n_init = 1;
  p.k = 0;
  EXPECT_FALSE(KMeansFit(x.data(), 5, 2, p).ok());
}

TEST(KMeansTest, KMeansPlusPlusSeedsEveryBlobDeterministically) {
  const Blobs b = MakeBlobs(1000, 6, 5, 0.5, 17);
  std::vector<float> first;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> seeds(b.k * b.d);
    detail::KMeansPlusPlus(b.x.data(), b.n, b.d, b.k, seed, 0, 1, seeds.data());
    std::set<int32_t> blobs;
    for (int j = 0; j < b.k; ++j) {
      blobs.insert(NearestCentre(b.centres.data(), b.k, b.d, seeds.data() + j * b.d));
    }
    EXPECT_EQ(blobs.size(), 5u) << "seed " << seed;
    // Same seed, same centres, whatever the thread count.
    std::vector<float> again(b.k * b.d);
    detail::KMeansPlusPlus(b.x.data(), b.n, b.d, b.k, seed, 0, 2, again.data());
    EXPECT_EQ(seeds, again);
    if (seed == 1) first = seeds;
    if (seed == 2) {
      EXPECT_NE(seeds, first);
    }
  }
  // Seeds are data points.
  std::vector<float> seeds(b.k * b.d);
  detail::KMeansPlusPlus(b.x.data(), b.n, b.d, b.k, 3, 0, 1, seeds.data());
  for (int j = 0; j < b.k; ++j) {
    bool found = false;
    for (int64_t i = 0; i < b.n && !found; ++i) {
      found =
          std::equal(seeds.begin() + j * b.d, seeds.begin() + (j + 1) * b.d, b.x.begin() + i * b.d);
    }
    EXPECT_TRUE(found) << "seed centre " << j;
  }
}

TEST(KMeansTest, KMeansPlusPlusHandlesDuplicatePoints) {
  // 3 distinct points, 10 copies each: every seed lands on a distinct point.
  std::vector<float> x;
  for (int i = 0; i < 30; ++i) x.push_back(static_cast<float>(i % 3) * 5.0f);
  std::vector<float> seeds(3);
  detail::KMeansPlusPlus(x.data(), 30, 1, 3, 5, 0, 1, seeds.data());
  std::set<float> distinct(seeds.begin(), seeds.end());
  EXPECT_EQ(distinct.size(), 3u);
}

TEST(KMeansTest, LloydFindsTheTrueCentres) {
  const Blobs b = MakeBlobs(3000, 6, 5, 1.0, 3);
  KMeansParameters p;
  p.k = 5;
  ASSERT_OK_AND_ASSIGN(r, KMeansFit(b.x.data(), b.n, b.d, p));
  EXPECT_TRUE(r.converged);
  ExpectCentresNear(r.centres, b.centres, b.k, b.d, 0.25);
  // Every blob is exactly one cluster.
  for (int64_t i = 0; i < b.n; ++i) {
    EXPECT_EQ(r.assignments[i], r.assignments[b.truth[i]]) << "point " << i;
  }
  EXPECT_EQ(r.sizes, std::vector<int64_t>(5, 600));
  // The objective is the sum of squared distances to the assigned centres.
  EXPECT_NEAR(r.objective, ObjectiveOf(b.x, b.n, b.d, r.centres, b.k), 1e-4 * r.objective);
  EXPECT_NEAR(r.objective / (b.n * b.d), 1.0, 0.05);  // unit variance per coordinate
}

TEST(KMeansTest, ObjectiveDecreasesMonotonically) {
  // Unstructured data takes many iterations to settle.
  const std::vector<float> x = Uniform(4000, 2, 9);
  KMeansParameters p;
  p.k = 12;
  p.tolerance = 0;
  ASSERT_OK_AND_ASSIGN(r, KMeansFit(x.data(), 4000, 2, p));
  ASSERT_GE(r.iteration_stats.size(), 5u);
  EXPECT_EQ(static_cast<int>(r.iteration_stats.size()), r.iterations);
  for (size_t i = 1; i < r.iteration_stats.size(); ++i) {
    EXPECT_LE(r.iteration_stats[i].objective, r.iteration_stats[i - 1].objective * (1 + 1e-6))
        << "iteration " << i;
  }
  EXPECT_LE(r.objective, r.iteration_stats.back().objective * (1 + 1e-6));
  EXPECT_EQ(r.iteration_stats.front().changed, 4000);
  if (r.converged) {
    EXPECT_EQ(r.iteration_stats.back().changed, 0);
  }
}

TEST(KMeansTest, ResultDoesNotDependOnThreads) {
  const Blobs b = MakeBlobs(20000, 4, 3, 2.0, 5);  // three chunks of work
  KMeansParameters p;
  p.k = 6;
  p.n_init = 2;
  p.threads = 1;
  ASSERT_OK_AND_ASSIGN(one, KMeansFit(b.x.data(), b.n, b.d, p));
  p.threads = 2;
  ASSERT_OK_AND_ASSIGN(two, KMeansFit(b.x.data(), b.n, b.d, p));
  p.threads = 0;
  ASSERT_OK_AND_ASSIGN(all, KMeansFit(b.x.data(), b.n, b.d, p));
  EXPECT_EQ(one.centres, two.centres);
  EXPECT_EQ(one.assignments, two.assignments);
  EXPECT_EQ(one.objective, two.objective);
  EXPECT_EQ(one.centres, all.centres);
  EXPECT_EQ(one.iterations, all.iterations);
}

TEST(KMeansTest, EmptyClusterIsRecreatedBySplittingTheLargest) {
  const Blobs b = MakeBlobs(2000, 4, 4, 0.5, 8);
  KMeansParameters p;
  p.k = 4;
  // Blobs 0 and 1 share a centre between them, and one centre is far from every point: after
  // the first assignment it is empty and must take over half of the largest cluster.
  p.initial_centres = b.centres;
  for (int l = 0; l < 4; ++l) {
    p.initial_centres[0 * 4 + l] = (b.centres[0 * 4 + l] + b.centres[1 * 4 + l]) / 2;
    p.initial_centres[1 * 4 + l] = 1000.0f;
  }
  ASSERT_OK_AND_ASSIGN(r, KMeansFit(b.x.data(), b.n, b.d, p));
  ASSERT_FALSE(r.iteration_stats.empty());
  EXPECT_EQ(r.iteration_stats[0].empty_splits, 1);
  for (int64_t s : r.sizes) EXPECT_EQ(s, 500);
  ExpectCentresNear(r.centres, b.centres, 4, 4, 0.2);
}

TEST(KMeansTest, SplitEmptyClustersUnit) {
  std::vector<float> centres = {1, 2, 0, 0, 5, -4};
  std::vector<int64_t> sizes = {10, 0, 5};
  EXPECT_EQ(detail::SplitEmptyClusters(3, 2, centres.data(), sizes.data()), 1);
  EXPECT_EQ(sizes, (std::vector<int64_t>{5, 5, 5}));
  // The empty centre is a nudged copy of the largest; the two are distinct and straddle it.
  EXPECT_NE(centres[0], centres[2]);
  EXPECT_NEAR(centres[2], 1.0f, 0.01f);
  EXPECT_NEAR(centres[3], 2.0f, 0.01f);
  EXPECT_FLOAT_EQ((centres[0] + centres[2]) / 2, 1.0f);
  EXPECT_FLOAT_EQ(centres[4], 5.0f);  // untouched
  // A centre at the origin still gets nudged.
  std::vector<float> zero = {0, 0, 0, 0};
  std::vector<int64_t> sizes2 = {0, 8};
  detail::SplitEmptyClusters(2, 2, zero.data(), sizes2.data());
  EXPECT_NE(zero[0], zero[2]);
}

TEST(KMeansTest, NInitKeepsTheBestRun) {
  const std::vector<float> x = Uniform(2000, 3, 4);
  KMeansParameters p;
  p.k = 7;
  p.n_init = 4;
  ASSERT_OK_AND_ASSIGN(r, KMeansFit(x.data(), 2000, 3, p));
  ASSERT_EQ(r.init_objectives.size(), 4u);
  const double best = *std::min_element(r.init_objectives.begin(), r.init_objectives.end());
  EXPECT_EQ(r.init_objectives[r.best_init], best);
  EXPECT_EQ(r.objective, best);
}

TEST(KMeansTest, WarmStartFromInitialCentres) {
  const Blobs b = MakeBlobs(1000, 3, 3, 0.5, 2);
  KMeansParameters p;
  p.k = 3;
  p.initial_centres = b.centres;
  ASSERT_OK_AND_ASSIGN(r, KMeansFit(b.x.data(), b.n, b.d, p));
  // Started on the truth: the order of the centres is kept.
  for (int j = 0; j < 3; ++j) {
    EXPECT_LT(detail::SquaredDistance(r.centres.data() + j * 3, b.centres.data() + j * 3, 3), 0.01);
  }
  EXPECT_LE(r.iterations, 2);
}

TEST(KMeansTest, TrainsOnASampleAndAssignsEveryPoint) {
  const Blobs b = MakeBlobs(3000, 4, 4, 0.5, 6);
  KMeansParameters p;
  p.k = 4;
  p.max_points_per_centroid = 50;
  ASSERT_OK_AND_ASSIGN(r, KMeansFit(b.x.data(), b.n, b.d, p));
  EXPECT_EQ(r.trained_points, 200);
  ASSERT_EQ(r.assignments.size(), 3000u);
  EXPECT_EQ(r.sizes, std::vector<int64_t>(4, 750));
  EXPECT_NEAR(r.objective, ObjectiveOf(b.x, b.n, b.d, r.centres, 4), 1e-4 * r.objective);
  ExpectCentresNear(r.centres, b.centres, 4, 4, 0.3);
}

TEST(KMeansTest, AssignNearestMatchesBruteForce) {
  const std::vector<float> x = Uniform(10000, 5, 12);
  const std::vector<float> centres = Uniform(9, 5, 13);
  std::vector<int32_t> labels(10000);
  std::vector<float> dist(10000);
  AssignNearest(centres.data(), 9, x.data(), 10000, 5, labels.data(), dist.data(), 2);
  int differ = 0;
  for (int i = 0; i < 10000; ++i) {
    float d = 0;
    const int32_t want = NearestCentre(centres.data(), 9, 5, x.data() + i * 5, &d);
    EXPECT_NEAR(dist[i], d, 1e-4);
    if (labels[i] != want) {
      ++differ;  // only a float near-tie may go the other way
      EXPECT_NEAR(detail::SquaredDistance(x.data() + i * 5, centres.data() + labels[i] * 5, 5), d,
                  1e-5);
    }
  }
  EXPECT_LE(differ, 2);
}

// ---- scores -------------------------------------------------------------------------------------

double NaiveSilhouette(const std::vector<float>& x, int64_t n, int d, const std::vector<int32_t>& a,
                       int k) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<double> sum(k, 0.0);
    std::vector<int64_t> cnt(k, 0);
    for (int64_t j = 0; j < n; ++j) {
      sum[a[j]] += std::sqrt(detail::SquaredDistance(x.data() + i * d, x.data() + j * d, d));
      ++cnt[a[j]];
    }
    if (cnt[a[i]] <= 1) continue;
    const double own = sum[a[i]] / (cnt[a[i]] - 1);
    double other = INFINITY;
    for (int c = 0; c < k; ++c) {
      if (c != a[i] && cnt[c] > 0) other = std::min(other, sum[c] / cnt[c]);
    }
    total += (other - own) / std::max(own, other);
  }
  return total / n;
}

TEST(KMeansTest, SilhouetteMatchesTheDefinition) {
  const std::vector<float> x = Uniform(300, 3, 21);
  std::vector<int32_t> a(300);
  for (int i = 0; i < 300; ++i) a[i] = x[i * 3] < 0.3f ? 0 : (x[i * 3 + 1] < 0.5f ? 1 : 2);
  a[5] = 3;  // a singleton cluster scores 0
  ASSERT_OK_AND_ASSIGN(s, Silhouette(x.data(), 300, 3, a.data(), 4, 0, 1));
  EXPECT_NEAR(s, NaiveSilhouette(x, 300, 3, a, 4), 1e-9);
  ASSERT_OK_AND_ASSIGN(s2, Silhouette(x.data(), 300, 3, a.data(), 4, 0, 1, 2));
  EXPECT_EQ(s, s2);
}

TEST(KMeansTest, SilhouetteOnBlobsIsHighAndRefusesOneCluster) {
  const Blobs b = MakeBlobs(20000, 6, 5, 1.0, 14);
  ASSERT_OK_AND_ASSIGN(s, Silhouette(b.x.data(), b.n, b.d, b.truth.data(), 5, 2000, 3, 2));
  EXPECT_GT(s, 0.7);
  std::vector<int32_t> one(b.n, 0);
  StatusOr<double> bad = Silhouette(b.x.data(), b.n, b.d, one.data(), 5, 500, 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("found 1"), std::string::npos);
  one[0] = 9;
  EXPECT_FALSE(Silhouette(b.x.data(), b.n, b.d, one.data(), 5, 0, 3).ok());
}

TEST(KMeansTest, ChooseKPicksTheTrueK) {
  const Blobs b = MakeBlobs(4000, 6, 4, 1.0, 31);
  KMeansParameters p;
  p.threads = 2;
  ASSERT_OK_AND_ASSIGN(sel, ChooseK(b.x.data(), b.n, b.d, 2, 7, p, 1000));
  EXPECT_EQ(sel.best_k, 4);
  ASSERT_EQ(sel.scores.size(), 6u);
  EXPECT_EQ(sel.scores[2].k, 4);
  EXPECT_GT(sel.scores[2].silhouette, 0.7);
  EXPECT_EQ(sel.best.k, 4);
  // The objective falls with k; the Calinski-Harabasz index also peaks at the true k.
  for (size_t i = 1; i < sel.scores.size(); ++i) {
    EXPECT_LT(sel.scores[i].objective, sel.scores[i - 1].objective);
  }
  ASSERT_OK_AND_ASSIGN(
      ch, ChooseK(b.x.data(), b.n, b.d, 2, 7, p, 1000, KSelectionCriterion::kCalinskiHarabasz));
  EXPECT_EQ(ch.best_k, 4);
  EXPECT_FALSE(ChooseK(b.x.data(), b.n, b.d, 1, 3, p, 100).ok());
}

// ---- mini-batch ---------------------------------------------------------------------------------

TEST(MiniBatchKMeansTest, StepMatchesAHandComputedCase) {
  MiniBatchKMeansParameters params;
  params.reassignment_ratio = 0;
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::Create(params, 2, 2, {0, 0, 10, 10}, {1, 1}));
  const std::vector<float> batch = {2, 0, 0, 2, 10, 12};
  std::vector<int32_t> a(3);
  const MiniBatchStepStats s = m.Step(batch.data(), 3, a.data());
  EXPECT_EQ(a, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_DOUBLE_EQ(s.batch_objective, 4.0);  // (4 + 4 + 4) / 3
  // Centre 0: weight 2, moves halfway to (2, 0) -> (1, 0); weight 3, a third of the way to
  // (0, 2) -> (2/3, 2/3). Centre 1: weight 2, halfway to (10, 12) -> (10, 11).
  EXPECT_FLOAT_EQ(m.centre(0)[0], 2.0f / 3);
  EXPECT_FLOAT_EQ(m.centre(0)[1], 2.0f / 3);
  EXPECT_FLOAT_EQ(m.centre(1)[0], 10.0f);
  EXPECT_FLOAT_EQ(m.centre(1)[1], 11.0f);
  EXPECT_EQ(m.weights(), (std::vector<double>{3, 2}));
  EXPECT_EQ(m.counts(), (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(m.smoothed_objective(), 4.0);
  EXPECT_EQ(m.steps(), 1u);
  EXPECT_EQ(m.points_seen(), 3u);
}

TEST(MiniBatchKMeansTest, CentreIsTheRunningMean) {
  // Without forgetting, a centre with weight w that absorbs points is the mean of w copies of
  // itself and the points.
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::Create({}, 1, 1, {0}, {4}));
  const std::vector<float> batch = {1, 2, 3, 4, 5, 6};
  m.Step(batch.data(), 6, nullptr);
  EXPECT_NEAR(m.centre(0)[0], 21.0 / 10, 1e-6);
}

TEST(MiniBatchKMeansTest, ForgettingByPoints) {
  MiniBatchKMeansParameters params;
  params.half_life_points = 3;  // a batch of 3 points halves the old weights
  params.reassignment_ratio = 0;
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::Create(params, 2, 1, {0, 10}, {4, 8}));
  const std::vector<float> batch = {1, 1, 1};
  m.Step(batch.data(), 3, nullptr);
  EXPECT_DOUBLE_EQ(m.weights()[0], 2 + 3);
  EXPECT_DOUBLE_EQ(m.weights()[1], 4);
  // Centre 0 is the mean of 2 (decayed) copies of 0 and three 1s.
  EXPECT_NEAR(m.centre(0)[0], 3.0 / 5, 1e-6);
}

TEST(MiniBatchKMeansTest, ForgettingByEventTime) {
  MiniBatchKMeansParameters params;
  params.half_life_ms = 1000;
  params.reassignment_ratio = 0;
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::Create(params, 2, 1, {0, 10}, {8, 8}));
  const float p = 10;
  m.StepAt(&p, 1, 5000, nullptr);  // first time seen: no decay
  EXPECT_DOUBLE_EQ(m.weights()[0], 8);
  EXPECT_DOUBLE_EQ(m.weights()[1], 9);
  m.StepAt(&p, 1, 7000, nullptr);  // two half-lives later
  EXPECT_DOUBLE_EQ(m.weights()[0], 2);
  EXPECT_DOUBLE_EQ(m.weights()[1], 9.0 / 4 + 1);
  m.StepAt(&p, 1, 6000, nullptr);  // late batch: nothing decays
  EXPECT_DOUBLE_EQ(m.weights()[0], 2);
  EXPECT_EQ(m.last_event_time_ms(), 7000);
}

TEST(MiniBatchKMeansTest, DyingCentreIsReseededToABatchPoint) {
  MiniBatchKMeansParameters params;
  params.reassignment_ratio = 0.01;
  params.seed = 99;
  // Centre 2 has a weight far below 1% of the largest and gets no points.
  ASSERT_OK_AND_ASSIGN(
      m, MiniBatchKMeans::Create(params, 3, 2, {0, 0, 10, 0, 100, 100}, {100, 100, 0.5}));
  const std::vector<float> batch = {1, 0, 0, 1, 9, 0, 11, 0};
  MiniBatchKMeans copy = m;
  const MiniBatchStepStats s = m.Step(batch.data(), 4, nullptr);
  ASSERT_EQ(s.reassigned, std::vector<int32_t>{2});
  EXPECT_EQ(m.reassignments(), 1u);
  bool is_batch_point = false;
  for (int i = 0; i < 4; ++i) {
    is_batch_point |= m.centre(2)[0] == batch[i * 2] && m.centre(2)[1] == batch[i * 2 + 1];
  }
  EXPECT_TRUE(is_batch_point);
  EXPECT_DOUBLE_EQ(m.weights()[2], 102);  // the smallest weight kept
  EXPECT_EQ(m.counts()[2], 0u);
  // Deterministic for the seed.
  copy.Step(batch.data(), 4, nullptr);
  EXPECT_EQ(copy.centres(), m.centres());
  // A healthy centre is left alone.
  const MiniBatchStepStats again = m.Step(batch.data(), 4, nullptr);
  EXPECT_TRUE(again.reassigned.empty());
}

TEST(MiniBatchKMeansTest, ForgettingLetsAnUnusedCentreDieAndComeBack) {
  MiniBatchKMeansParameters params;
  params.half_life_points = 100;
  params.reassignment_ratio = 0.05;
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::Create(params, 2, 1, {0, 50}, {100, 100}));
  // Only points near 0 and 5 arrive: centre 1 (at 50) decays until re-seeded.
  std::vector<float> batch(20);
  for (int i = 0; i < 20; ++i) batch[i] = i % 2 == 0 ? 0.0f : 5.0f;
  int step = 0;
  for (; step < 100 && m.reassignments() == 0; ++step) m.Step(batch.data(), 20, nullptr);
  EXPECT_EQ(m.reassignments(), 1u);
  EXPECT_LT(m.centre(1)[0], 6.0f);  // now covers the data
  EXPECT_GT(step, 5);               // ~log2(1/0.05) half-lives of weight
}

TEST(MiniBatchKMeansTest, SmoothedObjective) {
  MiniBatchKMeansParameters params;
  params.objective_half_life_points = 2;
  params.reassignment_ratio = 0;
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::Create(params, 1, 1, {0}, {1e12}));
  const std::vector<float> far = {2, 2}, near = {0, 0};
  m.Step(far.data(), 2, nullptr);
  EXPECT_NEAR(m.smoothed_objective(), 4.0, 1e-6);
  m.Step(near.data(), 2, nullptr);  // two points = one half-life: halfway to 0
  EXPECT_NEAR(m.smoothed_objective(), 2.0, 1e-6);
}

TEST(MiniBatchKMeansTest, OnePassComesCloseToTheFullFit) {
  const Blobs b = MakeBlobs(20000, 6, 5, 1.5, 41);
  KMeansParameters p;
  p.k = 5;
  ASSERT_OK_AND_ASSIGN(full, KMeansFit(b.x.data(), b.n, b.d, p));
  // Cold start from k-means++ seeds on the first batch, then one pass in batches of 500.
  std::vector<float> seeds(5 * 6);
  detail::KMeansPlusPlus(b.x.data(), 500, 6, 5, 1, 0, 1, seeds.data());
  MiniBatchKMeansParameters params;
  params.objective_half_life_points = 2000;  // forget the cold start within the pass
  ASSERT_OK_AND_ASSIGN(m,
                       MiniBatchKMeans::Create(params, 5, 6, seeds, std::vector<double>(5, 0.0)));
  for (int64_t i = 0; i < b.n; i += 500) m.Step(b.x.data() + i * 6, 500, nullptr);
  const double online = ObjectiveOf(b.x, b.n, b.d, m.centres(), 5);
  EXPECT_LT(online, full.objective * 1.03);
  EXPECT_NEAR(m.smoothed_objective(), full.objective / b.n, 0.1 * full.objective / b.n);
}

TEST(MiniBatchKMeansTest, FromFitAndProtoRoundTrip) {
  const Blobs b = MakeBlobs(600, 2, 3, 0.5, 4);
  KMeansParameters p;
  p.k = 3;
  ASSERT_OK_AND_ASSIGN(fit, KMeansFit(b.x.data(), b.n, b.d, p));
  MiniBatchKMeansParameters params;
  params.half_life_ms = 60000;
  ASSERT_OK_AND_ASSIGN(m, MiniBatchKMeans::FromFit(params, fit));
  EXPECT_EQ(m.weights(), (std::vector<double>{200, 200, 200}));
  m.StepAt(b.x.data(), 50, 1000, nullptr);
  v1::SegmentModel model;
  m.ToProto(&model);
  ASSERT_OK_AND_ASSIGN(back, MiniBatchKMeans::FromProto(params, model));
  EXPECT_EQ(back.centres(), m.centres());
  EXPECT_EQ(back.weights(), m.weights());
  EXPECT_EQ(back.counts(), m.counts());
  EXPECT_EQ(back.steps(), 1u);
  EXPECT_EQ(back.last_event_time_ms(), 1000);
  // Continuing from the restored copy gives the same model.
  m.StepAt(b.x.data() + 100, 50, 2000, nullptr);
  back.StepAt(b.x.data() + 100, 50, 2000, nullptr);
  EXPECT_EQ(back.centres(), m.centres());
  model.mutable_weights()->RemoveLast();
  EXPECT_TRUE(MiniBatchKMeans::FromProto(params, model).status().IsCorruption());
}

TEST(MiniBatchKMeansTest, CreateRefusesBadInput) {
  EXPECT_FALSE(MiniBatchKMeans::Create({}, 2, 2, {0, 0, 1}, {1, 1}).ok());
  EXPECT_FALSE(MiniBatchKMeans::Create({}, 2, 2, {0, 0, 1, 1}, {1}).ok());
  EXPECT_FALSE(MiniBatchKMeans::Create({}, 2, 2, {0, 0, 1, 1}, {1, -1}).ok());
  MiniBatchKMeansParameters params;
  params.max_reassign_fraction = 2;
  StatusOr<MiniBatchKMeans> bad = MiniBatchKMeans::Create(params, 1, 1, {0}, {1});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("max_reassign_fraction"), std::string::npos);
}

}  // namespace
}  // namespace streamrec
