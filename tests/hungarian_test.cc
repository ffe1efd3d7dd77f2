#include "streamrec/hungarian.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "streamrec/kmeans.h"
#include "testutil/test_util.h"

namespace streamrec {
namespace {

std::vector<float> RandomCentres(int k, int d, uint64_t seed, float scale = 10.0f) {
  detail::SplitMix64 rng(seed);
  std::vector<float> c(static_cast<size_t>(k) * d);
  for (float& v : c) v = static_cast<float>(rng.Unit()) * scale;
  return c;
}

std::vector<float> Rows(const std::vector<float>& centres, int d, const std::vector<int>& rows) {
  std::vector<float> out;
  for (int r : rows) out.insert(out.end(), centres.begin() + r * d, centres.begin() + (r + 1) * d);
  return out;
}

TEST(HungarianTest, SolveAssignmentIsOptimal) {
  // Against every permutation of 6 columns, and every injection of 4 rows into 6 columns.
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    detail::SplitMix64 rng(seed);
    for (int rows : {6, 4}) {
      const int cols = 6;
      std::vector<double> cost(rows * cols);
      for (double& c : cost) c = std::floor(rng.Unit() * 20);  // ties included
      const std::vector<int32_t> a = SolveAssignment(cost, rows, cols);
      ASSERT_EQ(static_cast<int>(a.size()), rows);
      std::vector<int32_t> sorted = a;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
      double got = 0;
      for (int r = 0; r < rows; ++r) got += cost[r * cols + a[r]];
      std::vector<int> perm(cols);
      std::iota(perm.begin(), perm.end(), 0);
      double best = INFINITY;
      do {
        double c = 0;
        for (int r = 0; r < rows; ++r) c += cost[r * cols + perm[r]];
        best = std::min(best, c);
      } while (std::next_permutation(perm.begin(), perm.end()));
      EXPECT_EQ(got, best) << "seed " << seed << " rows " << rows;
    }
  }
}

TEST(HungarianTest, PermutedCentresMapBackExactly) {
  const int k = 8, d = 5;
  const std::vector<float> old_c = RandomCentres(k, d, 3);
  const std::vector<int> perm = {5, 2, 7, 0, 1, 6, 4, 3};
  std::vector<float> new_c = Rows(old_c, d, perm);
  for (float& v : new_c) v += 0.01f;  // a little drift
  ASSERT_OK_AND_ASSIGN(m, MatchCentres(old_c.data(), k, new_c.data(), k, d));
  for (int i = 0; i < k; ++i) EXPECT_EQ(m.new_to_old[i], perm[i]) << "new centre " << i;
  EXPECT_TRUE(m.births.empty());
  EXPECT_TRUE(m.deaths.empty());
  EXPECT_NEAR(m.total_squared_distance, k * d * 1e-4, 1e-5);
}

TEST(HungarianTest, MoreNewCentresThanOldAreBirths) {
  const int d = 3;
  const std::vector<float> all = RandomCentres(6, d, 5);
  const std::vector<float> old_c = Rows(all, d, {0, 1, 2, 3});
  const std::vector<float> new_c = Rows(all, d, {4, 2, 0, 5, 3, 1});
  ASSERT_OK_AND_ASSIGN(m, MatchCentres(old_c.data(), 4, new_c.data(), 6, d));
  EXPECT_EQ(m.new_to_old, (std::vector<int32_t>{-1, 2, 0, -1, 3, 1}));
  EXPECT_EQ(m.births, (std::vector<int32_t>{0, 3}));
  EXPECT_TRUE(m.deaths.empty());
  EXPECT_EQ(m.total_squared_distance, 0.0);
}

TEST(HungarianTest, FewerNewCentresThanOldAreDeaths) {
  const int d = 3;
  const std::vector<float> old_c = RandomCentres(5, d, 6);
  const std::vector<float> new_c = Rows(old_c, d, {3, 0});
  ASSERT_OK_AND_ASSIGN(m, MatchCentres(old_c.data(), 5, new_c.data(), 2, d));
  EXPECT_EQ(m.new_to_old, (std::vector<int32_t>{3, 0}));
  EXPECT_EQ(m.deaths, (std::vector<int32_t>{1, 2, 4}));
  EXPECT_TRUE(m.births.empty());
}

TEST(HungarianTest, EmptySides) {
  const std::vector<float> c = RandomCentres(3, 2, 1);
  ASSERT_OK_AND_ASSIGN(none_old, MatchCentres(nullptr, 0, c.data(), 3, 2));
  EXPECT_EQ(none_old.births, (std::vector<int32_t>{0, 1, 2}));
  ASSERT_OK_AND_ASSIGN(none_new, MatchCentres(c.data(), 3, nullptr, 0, 2));
  EXPECT_EQ(none_new.deaths, (std::vector<int32_t>{0, 1, 2}));
}

TEST(HungarianTest, MaxDistanceRefusesFarMatches) {
  // Old: 0 at the origin, 1 at (10, 0). New: 0 near old 0, 1 far from everything.
  const std::vector<float> old_c = {0, 0, 10, 0};
  const std::vector<float> new_c = {0.5f, 0, 40, 40};
  ASSERT_OK_AND_ASSIGN(unlimited, MatchCentres(old_c.data(), 2, new_c.data(), 2, 2));
  EXPECT_EQ(unlimited.new_to_old, (std::vector<int32_t>{0, 1}));
  CentreMatchOptions options;
  options.max_distance = 5;
  ASSERT_OK_AND_ASSIGN(m, MatchCentres(old_c.data(), 2, new_c.data(), 2, 2, options));
  EXPECT_EQ(m.new_to_old, (std::vector<int32_t>{0, -1}));
  EXPECT_EQ(m.births, std::vector<int32_t>{1});
  EXPECT_EQ(m.deaths, std::vector<int32_t>{1});
  EXPECT_FLOAT_EQ(m.total_squared_distance, 0.25f);
}

TEST(HungarianTest, MaxDistanceStillFindsTheBestAllowedMatching) {
  // New 0 is close to both old centres; new 1 only to old 1 (within the cap). The greedy choice
  // (new 0 -> old 1) would leave new 1 unmatched; the optimum matches both.
  const std::vector<float> old_c = {0, 0, 2, 0};
  const std::vector<float> new_c = {1.1f, 0, 3.5f, 0};
  CentreMatchOptions options;
  options.max_distance = 1.6;
  ASSERT_OK_AND_ASSIGN(m, MatchCentres(old_c.data(), 2, new_c.data(), 2, 2, options));
  EXPECT_EQ(m.new_to_old, (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(m.births.empty());
}

TEST(HungarianTest, StableClusterIds) {
  CentreMatching m;
  m.new_to_old = {2, -1, 0, -1};
  int32_t next = 17;
  EXPECT_EQ(StableClusterIds(m, {10, 11, 12}, &next), (std::vector<int32_t>{12, 17, 10, 18}));
  EXPECT_EQ(next, 19);
}

TEST(HungarianTest, RefusesBadInput) {
  const std::vector<float> c = {0, 0, NAN, 1};
  StatusOr<CentreMatching> bad = MatchCentres(c.data(), 2, c.data(), 1, 2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("old centre 1 column 0"), std::string::npos);
  CentreMatchOptions options;
  options.max_distance = 0;
  EXPECT_FALSE(MatchCentres(c.data(), 1, c.data(), 1, 2, options).ok());
  EXPECT_FALSE(MatchCentres(c.data(), 1, c.data(), 1, 0).ok());
}

}  // namespace
}  // namespace streamrec
