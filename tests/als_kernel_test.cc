// The ALS inner loops (src/kernels/als_kernel.h), both builds: the normal equations they build
// and factor solve to what a dense reference solve gives, for factor counts with and without a
// compile-time path and with remainders of every size.
#include "kernels/als_kernel.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace streamrec::als_kernel {
namespace {

using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

std::vector<const Kernels*> Builds() {
  std::vector<const Kernels*> builds = {&generic::kKernels};
  if (const Kernels* avx2 = Avx2IfSupported(); avx2 != nullptr) builds.push_back(avx2);
  return builds;
}

// Solves L D L^T x = b with the factorisation the kernel left in the lower triangle of `a`.
Eigen::VectorXd SolveFactored(const RowMajor& a, Eigen::VectorXd x) {
  const int k = static_cast<int>(a.rows());
  for (int r = 0; r < k; ++r) {
    for (int c = 0; c < r; ++c) x[r] -= a(r, c) * x[c];
  }
  for (int r = 0; r < k; ++r) x[r] /= a(r, r);
  for (int r = k - 1; r >= 0; --r) {
    for (int c = r + 1; c < k; ++c) x[r] -= a(c, r) * x[c];
  }
  return x;
}

TEST(AlsKernelTest, NormalEquationsSolveLikeADenseReference) {
  std::mt19937_64 rng(7);
  std::normal_distribution<float> g(0.0f, 0.3f);
  for (const Kernels* kernels : Builds()) {
    for (int k : {1, 5, 8, 31, 32, 33}) {
      const int items = 50;
      std::vector<float> factors(static_cast<size_t>(items) * k);
      for (float& f : factors) f = g(rng);
      for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{3}, size_t{4}, size_t{5},
                       size_t{7}, size_t{37}}) {
        SCOPED_TRACE(std::string(kernels->name) + " k=" + std::to_string(k) +
                     " n=" + std::to_string(n));
        std::vector<uint32_t> index(n);
        std::vector<double> confidence(n);
        for (size_t i = 0; i < n; ++i) {
          index[i] = static_cast<uint32_t>((i * 7 + 3) % items);
          confidence[i] = 1.0 + 40.0 * static_cast<double>(i % 4);
        }
        // The reference: gram + sum (c - 1) y y^T, b = sum c y, dense, by Eigen's LLT.
        Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>
            y(factors.data(), items, k);
        Eigen::MatrixXd gram = y.cast<double>().transpose() * y.cast<double>();
        gram.diagonal().array() += 0.1;
        Eigen::MatrixXd full = gram;
        Eigen::VectorXd b = Eigen::VectorXd::Zero(k);
        for (size_t i = 0; i < n; ++i) {
          const Eigen::VectorXd yi = y.row(index[i]).cast<double>().transpose();
          full += (confidence[i] - 1.0) * yi * yi.transpose();
          b += confidence[i] * yi;
        }
        const Eigen::VectorXd want = full.llt().solve(b);

        // The kernels: the gram from AddGram over every item row, then the row's equations.
        RowMajor a = RowMajor::Zero(k, k);
        std::vector<double> scratch(ScratchSize(k));
        kernels->add_gram(factors.data(), k, items, a.data(), scratch.data());
        for (int r = 0; r < k; ++r) {
          for (int c = 0; c <= r; ++c) ASSERT_NEAR(a(r, c), gram(r, c) - (r == c ? 0.1 : 0), 1e-9);
        }
        a.diagonal().array() += 0.1;
        Eigen::VectorXd rhs = Eigen::VectorXd::Zero(k);
        kernels->accumulate(factors.data(), k, index.data(), confidence.data(), n, a.data(),
                            rhs.data(), scratch.data());
        for (int r = 0; r < k; ++r) {
          for (int c = 0; c <= r; ++c) {
            ASSERT_NEAR(a(r, c), full(r, c), 1e-9 * (1 + std::abs(full(r, c))));
          }
        }
        ASSERT_LT((rhs - b).norm(), 1e-9 * (1 + b.norm()));
        kernels->factor_ldlt(a.data(), k, scratch.data());
        const Eigen::VectorXd got = SolveFactored(a, rhs);
        EXPECT_LT((got - want).norm(), 1e-8 * (1 + want.norm()));
      }
    }
  }
}

// A singular system (no regularisation, fewer rows than factors) factors without NaNs: the
// directions with no pivot are dropped.
TEST(AlsKernelTest, SingularSystemsGiveFiniteFactors) {
  for (const Kernels* kernels : Builds()) {
    SCOPED_TRACE(kernels->name);
    const int k = 32;
    std::vector<float> factors(3 * k, 0.0f);
    for (int c = 0; c < k; ++c) factors[c] = 1.0f;  // row 0: all ones; rows 1, 2: zero
    RowMajor a = RowMajor::Zero(k, k);
    std::vector<double> scratch(ScratchSize(k));
    kernels->add_gram(factors.data(), k, 3, a.data(), scratch.data());
    kernels->factor_ldlt(a.data(), k, scratch.data());
    Eigen::VectorXd b = Eigen::VectorXd::Ones(k);
    const Eigen::VectorXd x = SolveFactored(a, b);
    for (int c = 0; c < k; ++c) EXPECT_TRUE(std::isfinite(x[c])) << c;
    // The one direction the system has, (1, ..., 1), is solved: sum x = k / k = 1.
    EXPECT_NEAR(x.sum(), 1.0, 1e-9);
  }
}

}  // namespace
}  // namespace streamrec::als_kernel
