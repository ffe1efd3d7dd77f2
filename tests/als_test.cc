// Implicit ALS: fold-in against the fit, monotone objective, determinism, encoding, TopN and
// option validation, on small hand-made matrices.
#include "streamrec/als.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <set>

#include "testutil/test_util.h"

namespace streamrec {
namespace {

std::vector<std::string> ItemNames(uint32_t n) {
  std::vector<std::string> ids;
  for (uint32_t i = 0; i < n; ++i) ids.push_back("item" + std::to_string(i));
  return ids;
}

// 30 users x 12 items with a few counts > 1; deterministic.
AlsMatrix ToyMatrix() {
  std::vector<AlsTriplet> t;
  for (uint32_t u = 0; u < 30; ++u) {
    for (uint32_t i = 0; i < 12; ++i) {
      const uint32_t h = (u * 7 + i * 13 + u * i) % 11;
      if (h < 4) t.push_back({u, i, static_cast<double>(1 + (h % 3))});
    }
  }
  auto m = AlsMatrixFromTriplets(30, ItemNames(12), t);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

// Two disjoint groups: users 0..9 hold only items 0..5, users 10..19 only items 6..11; each user
// holds 4 of the 6 items of the group.
AlsMatrix BlockMatrix() {
  std::vector<AlsTriplet> t;
  for (uint32_t u = 0; u < 20; ++u) {
    const uint32_t base = u < 10 ? 0 : 6;
    for (uint32_t k = 0; k < 4; ++k) t.push_back({u, base + (u + k) % 6, 1.0 + (u + k) % 2});
  }
  auto m = AlsMatrixFromTriplets(20, ItemNames(12), t);
  EXPECT_TRUE(m.ok()) << m.status().ToString();
  return std::move(m).value();
}

AlsOptions SmallOptions() {
  AlsOptions o;
  o.factors = 4;
  o.iterations = 10;
  o.regularization = 0.1;
  o.threads = 1;
  return o;
}

std::vector<AlsInteraction> History(const AlsMatrix& m, uint32_t u) {
  std::vector<AlsInteraction> h;
  for (uint64_t p = m.row_offsets[u]; p < m.row_offsets[u + 1]; ++p) {
    h.push_back({m.cols[p], m.counts[p]});
  }
  return h;
}

bool SameBits(const AlsFactors& a, const AlsFactors& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
}

TEST(AlsMatrixTest, BuildsSortedRowsAndSumsDuplicates) {
  std::vector<AlsTriplet> t = {{1, 2, 1}, {0, 1, 2}, {1, 0, 3}, {1, 2, 4}, {0, 0, 0}};
  ASSERT_OK_AND_ASSIGN(m, AlsMatrixFromTriplets(3, ItemNames(3), t));
  EXPECT_EQ(m.row_offsets, (std::vector<uint64_t>{0, 1, 3, 3}));
  EXPECT_EQ(m.cols, (std::vector<uint32_t>{1, 0, 2}));
  EXPECT_EQ(m.counts, (std::vector<double>{2, 3, 5}));
}

TEST(AlsMatrixTest, RefusesOutOfRangeAndNegative) {
  std::vector<AlsTriplet> bad_item = {{0, 3, 1}};
  auto a = AlsMatrixFromTriplets(1, ItemNames(3), bad_item);
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(a.status().IsInvalidArgument());
  EXPECT_NE(a.status().message().find("item 3 of 3"), std::string::npos) << a.status().ToString();
  std::vector<AlsTriplet> negative = {{0, 0, -1}};
  EXPECT_TRUE(AlsMatrixFromTriplets(1, ItemNames(3), negative).status().IsInvalidArgument());
}

TEST(AlsTest, FoldInOfFittedUserEqualsFittedFactors) {
  const AlsMatrix m = ToyMatrix();
  for (AlsConfidence conf : {AlsConfidence::kLinear, AlsConfidence::kLog}) {
    AlsOptions o = SmallOptions();
    o.confidence = conf;
    AlsFactors x;
    ASSERT_OK_AND_ASSIGN(model, AlsFit(m, o, &x));
    AlsWorkspace ws;
    AlsVector v;
    for (uint32_t u = 0; u < m.users; ++u) {
      std::vector<AlsInteraction> h = History(m, u);
      std::reverse(h.begin(), h.end());  // order of the history does not matter
      model.FoldIn(h, &ws, &v);
      ASSERT_EQ(v.size(), 4);
      for (int k = 0; k < 4; ++k) EXPECT_NEAR(v[k], x(u, k), 1e-6) << "user " << u;
    }
  }
}

TEST(AlsTest, FoldInSolvesTheNormalEquations) {
  // The fold-in is the minimiser of sum_i c_i (p_i - x.y_i)^2 + lambda |x|^2: check it against a
  // dense solve of the full (not the Y^T Y + Y^T (C - I) Y) system.
  const AlsMatrix m = ToyMatrix();
  const AlsOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(model, AlsFit(m, o));
  const Eigen::MatrixXd y = model.item_factors().cast<double>();
  std::vector<AlsInteraction> h = {{1, 2}, {5, 1}, {9, 4}};
  Eigen::VectorXd c = Eigen::VectorXd::Ones(12), p = Eigen::VectorXd::Zero(12);
  for (const AlsInteraction& x : h) {
    c[x.item] = AlsConfidenceOf(o, x.count);
    p[x.item] = 1;
  }
  Eigen::MatrixXd a = y.transpose() * c.asDiagonal() * y;
  a.diagonal().array() += o.regularization;
  const Eigen::VectorXd expected = a.ldlt().solve(y.transpose() * c.asDiagonal() * p);
  AlsWorkspace ws;
  AlsVector v;
  model.FoldIn(h, &ws, &v);
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(v[k], expected[k], 1e-5);
  // Empty history: zeros.
  model.FoldIn({}, &ws, &v);
  EXPECT_EQ(v.squaredNorm(), 0.0f);
}

TEST(AlsTest, ObjectiveDecreasesAcrossIterations) {
  const AlsMatrix m = ToyMatrix();
  AlsOptions o = SmallOptions();
  o.iterations = 12;
  o.compute_loss = true;
  std::vector<double> losses;
  o.progress = [&](const AlsIterationStats& s) {
    EXPECT_EQ(s.iteration, static_cast<int>(losses.size()) + 1);
    losses.push_back(s.loss);
  };
  ASSERT_OK_AND_ASSIGN(model, AlsFit(m, o));
  ASSERT_EQ(losses.size(), 12u);
  for (size_t i = 1; i < losses.size(); ++i) {
    EXPECT_LE(losses[i], losses[i - 1] * (1 + 1e-9)) << "iteration " << i + 1;
  }
  EXPECT_LT(losses.back(), losses.front());
}

// The objective of `model`'s item factors with the users solved against them (one user step):
// what a warm start begins from.
double LossAfterUserStep(const AlsMatrix& m, const AlsOptions& o, const AlsModel* warm) {
  double loss = 0;
  AlsOptions one = o;
  one.iterations = 1;
  one.compute_loss = true;
  one.progress = [&](const AlsIterationStats& s) { loss = s.loss; };
  EXPECT_TRUE(AlsFit(m, one, nullptr, warm).ok());
  return loss;
}

TEST(AlsTest, WarmStartContinuesWhereThePreviousFitLeftOff) {
  const AlsMatrix m = ToyMatrix();
  AlsOptions o = SmallOptions();
  o.compute_loss = true;
  std::vector<double> cold;
  o.iterations = 20;
  o.progress = [&](const AlsIterationStats& s) { cold.push_back(s.loss); };
  ASSERT_OK_AND_ASSIGN(converged, AlsFit(m, o));
  ASSERT_EQ(cold.size(), 20u);

  // Three sweeps from the converged model end no worse than where it ended, and far below
  // three sweeps from the random start.
  std::vector<double> warm;
  o.iterations = 3;
  o.progress = [&](const AlsIterationStats& s) { warm.push_back(s.loss); };
  ASSERT_OK_AND_ASSIGN(continued, AlsFit(m, o, nullptr, &converged));
  ASSERT_EQ(warm.size(), 3u);
  EXPECT_LE(warm.back(), cold.back() * (1 + 1e-6));
  EXPECT_LT(warm.back(), cold[2]);
  EXPECT_LT(LossAfterUserStep(m, o, &converged), cold[2]);

  // A model with another number of factors is ignored: the fit is the cold one, bit for bit.
  AlsOptions other = SmallOptions();
  other.factors = 3;
  ASSERT_OK_AND_ASSIGN(narrow, AlsFit(m, other));
  AlsOptions plain = SmallOptions();
  ASSERT_OK_AND_ASSIGN(a, AlsFit(m, plain));
  ASSERT_OK_AND_ASSIGN(b, AlsFit(m, plain, nullptr, &narrow));
  EXPECT_TRUE(SameBits(a.item_factors(), b.item_factors()));
}

TEST(AlsTest, WarmStartTakesInNewItemsAndUsers) {
  // The previous model knows items 0..7 of 20 users; the new matrix has 30 users and 12 items.
  std::vector<AlsTriplet> t;
  const AlsMatrix full = ToyMatrix();
  for (uint32_t u = 0; u < 20; ++u) {
    for (uint64_t p = full.row_offsets[u]; p < full.row_offsets[u + 1]; ++p) {
      if (full.cols[p] < 8) t.push_back({u, full.cols[p], full.counts[p]});
    }
  }
  ASSERT_OK_AND_ASSIGN(old_matrix, AlsMatrixFromTriplets(20, ItemNames(8), t));
  AlsOptions o = SmallOptions();
  ASSERT_OK_AND_ASSIGN(previous, AlsFit(old_matrix, o));
  o.iterations = 3;
  ASSERT_OK_AND_ASSIGN(warm, AlsFit(full, o, nullptr, &previous));
  ASSERT_EQ(warm.items(), 12u);
  for (uint32_t i = 8; i < 12; ++i) {
    EXPECT_GT(warm.item_factors().row(i).norm(), 0) << "new item " << i << " was fitted";
  }
  EXPECT_TRUE(warm.item_factors().allFinite());
  // Same inputs, same model.
  ASSERT_OK_AND_ASSIGN(again, AlsFit(full, o, nullptr, &previous));
  EXPECT_TRUE(SameBits(warm.item_factors(), again.item_factors()));
}

TEST(AlsTest, DeterministicForSeedAndThreadCount) {
  // Enough users for several work chunks, so that two threads really share the work.
  std::vector<AlsTriplet> t;
  const uint32_t users = 5000;
  for (uint32_t u = 0; u < users; ++u) {
    for (uint32_t k = 0; k < 3 + u % 5; ++k) t.push_back({u, (u * 31 + k * k * 7) % 40, 1.0 + k});
  }
  ASSERT_OK_AND_ASSIGN(m, AlsMatrixFromTriplets(users, ItemNames(40), t));
  AlsOptions o;
  o.factors = 8;
  o.iterations = 3;
  o.threads = 1;
  AlsFactors x1, x2, x3;
  ASSERT_OK_AND_ASSIGN(a, AlsFit(m, o, &x1));
  ASSERT_OK_AND_ASSIGN(b, AlsFit(m, o, &x2));
  o.threads = 2;
  ASSERT_OK_AND_ASSIGN(c, AlsFit(m, o, &x3));
  EXPECT_TRUE(SameBits(a.item_factors(), b.item_factors()));
  EXPECT_TRUE(SameBits(a.item_factors(), c.item_factors()));
  EXPECT_TRUE(SameBits(x1, x2));
  EXPECT_TRUE(SameBits(x1, x3));
  o.seed = 7;
  ASSERT_OK_AND_ASSIGN(d, AlsFit(m, o));
  EXPECT_FALSE(SameBits(a.item_factors(), d.item_factors()));
}

TEST(AlsTest, EncodeDecodeRoundTripIsBitIdentical) {
  const AlsMatrix m = ToyMatrix();
  AlsOptions o = SmallOptions();
  o.confidence = AlsConfidence::kLog;
  o.alpha = 3.5;
  o.epsilon = 0.5;
  o.seed = 99;
  ASSERT_OK_AND_ASSIGN(model, AlsFit(m, o));
  const std::string bytes = model.Encode();
  ASSERT_OK_AND_ASSIGN(back, AlsModel::Decode(bytes));
  EXPECT_TRUE(SameBits(model.item_factors(), back.item_factors()));
  EXPECT_EQ(back.Encode(), bytes);
  EXPECT_EQ(back.items(), 12u);
  EXPECT_EQ(back.item_id(7), "item7");
  EXPECT_EQ(back.FindItem("item7"), 7u);
  EXPECT_EQ(back.options().confidence, AlsConfidence::kLog);
  EXPECT_EQ(back.options().alpha, 3.5);
  EXPECT_EQ(back.options().epsilon, 0.5);
  EXPECT_EQ(back.options().seed, 99u);
  EXPECT_EQ(back.options().regularization, 0.1);
  // Fold-ins against the decoded model are bit-identical too (the cached Gram matrix).
  AlsWorkspace ws;
  AlsVector v1, v2;
  const std::vector<AlsInteraction> h = History(m, 3);
  model.FoldIn(h, &ws, &v1);
  back.FoldIn(h, &ws, &v2);
  EXPECT_EQ(std::memcmp(v1.data(), v2.data(), sizeof(float) * 4), 0);

  // Damaged values are refused.
  EXPECT_TRUE(AlsModel::Decode(bytes.substr(0, bytes.size() - 1)).status().IsCorruption());
  EXPECT_TRUE(AlsModel::Decode("").status().IsCorruption());
  std::string other = bytes;
  other[0] = 9;
  EXPECT_TRUE(AlsModel::Decode(other).status().IsNotSupported());
}

TEST(AlsTest, TopNExcludesAndOrders) {
  AlsFactors y(4, 2);
  y << 1, 0,  //
      0, 1,   //
      2, 0,   //
      1, 1;
  AlsModel model(ItemNames(4), y, SmallOptions());
  AlsVector user(2);
  user << 1, 0.5f;
  // Scores: 1, 0.5, 2, 1.5.
  std::vector<AlsScored> top = model.TopN(user, 3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].item, 2u);
  EXPECT_EQ(top[1].item, 3u);
  EXPECT_EQ(top[2].item, 0u);
  EXPECT_FLOAT_EQ(top[0].score, 2.0f);
  const std::vector<uint32_t> exclude = {2, 0};
  top = model.TopN(user, 10, exclude);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].item, 3u);
  EXPECT_EQ(top[1].item, 1u);
}

TEST(AlsTest, BlockMatrixRecommendsInsideTheGroup) {
  const AlsMatrix m = BlockMatrix();
  AlsOptions o = SmallOptions();
  o.factors = 2;  // too few to memorise each user: the factors learn the groups
  o.iterations = 15;
  ASSERT_OK_AND_ASSIGN(model, AlsFit(m, o));
  AlsWorkspace ws;
  AlsVector v;
  for (uint32_t u = 0; u < m.users; ++u) {
    const std::vector<AlsInteraction> h = History(m, u);
    std::vector<uint32_t> owned;
    for (const AlsInteraction& x : h) owned.push_back(x.item);
    model.FoldIn(h, &ws, &v);
    // The two items of the group the user does not hold come first.
    const std::vector<AlsScored> top = model.TopN(v, 2, owned);
    ASSERT_EQ(top.size(), 2u);
    for (const AlsScored& s : top) {
      EXPECT_EQ(s.item < 6, u < 10) << "user " << u << " got item " << s.item;
    }
    // The owned item explaining a recommendation is in the same group too.
    double part = 0;
    const uint32_t ref = model.TopContributor(ws, top[0].item, &part);
    EXPECT_EQ(ref < 6, u < 10);
    EXPECT_GT(part, 0);
  }
}

TEST(AlsTest, TopContributionsSumToTheScore) {
  const AlsMatrix m = ToyMatrix();
  ASSERT_OK_AND_ASSIGN(model, AlsFit(m, SmallOptions()));
  AlsWorkspace ws;
  AlsVector v;
  model.FoldIn(History(m, 5), &ws, &v);
  // With a single owned item, its contribution is the whole score.
  const std::vector<AlsInteraction> one = {{4, 2}};
  model.FoldIn(one, &ws, &v);
  double part = 0;
  EXPECT_EQ(model.TopContributor(ws, 7, &part), 4u);
  EXPECT_NEAR(part, v.dot(model.item_factors().row(7).transpose()), 1e-5);
}

TEST(AlsTest, CancelStopsTheFitBetweenHalfSteps) {
  const AlsMatrix m = ToyMatrix();
  AlsOptions o = SmallOptions();
  std::atomic<bool> cancel{false};
  o.cancel = &cancel;
  // Not set: the fit is the one without a flag, and the model does not keep the flag.
  ASSERT_OK_AND_ASSIGN(with_flag, AlsFit(m, o));
  ASSERT_OK_AND_ASSIGN(without, AlsFit(m, SmallOptions()));
  EXPECT_TRUE(SameBits(with_flag.item_factors(), without.item_factors()));
  EXPECT_EQ(with_flag.options().cancel, nullptr);
  // Set after the second iteration: the fit stops before the third.
  int iterations = 0;
  o.progress = [&](const AlsIterationStats& stats) {
    iterations = stats.iteration;
    if (stats.iteration == 2) cancel.store(true);
  };
  auto r = AlsFit(m, o);
  ASSERT_TRUE(r.status().IsAborted()) << r.status().ToString();
  EXPECT_EQ(iterations, 2);
  EXPECT_NE(r.status().message().find("iteration 3"), std::string::npos) << r.status().ToString();
}

TEST(AlsTest, RefusesBadOptions) {
  const AlsMatrix m = ToyMatrix();
  AlsOptions o = SmallOptions();
  o.factors = 0;
  auto r = AlsFit(m, o);
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("factors"), std::string::npos) << r.status().ToString();
  o = SmallOptions();
  o.regularization = -0.5;
  r = AlsFit(m, o);
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("regularization"), std::string::npos);
  EXPECT_NE(r.status().message().find("-0.5"), std::string::npos) << r.status().ToString();
  o = SmallOptions();
  o.epsilon = 0;
  EXPECT_NE(ValidateAlsOptions(o).message().find("epsilon"), std::string::npos);
  o = SmallOptions();
  o.alpha = -1;
  EXPECT_NE(ValidateAlsOptions(o).message().find("alpha"), std::string::npos);
  o = SmallOptions();
  o.threads = -1;
  EXPECT_NE(ValidateAlsOptions(o).message().find("threads"), std::string::npos);
}

}  // namespace
}  // namespace streamrec
