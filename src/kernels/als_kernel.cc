// Built twice (CMakeLists.txt): STREAMREC_ALS_KERNEL_NS is `generic` (baseline flags) or `avx2`
// (-mavx2 -mfma). -O3 for both: the loops below are what the vectoriser has to see. Every loop
// runs in a fixed order, so a kernel's results do not depend on the data's alignment or the
// thread; the two builds differ only in rounding (FMA). No standard headers with inline
// functions here (see als_kernel.h).
#include "kernels/als_kernel.h"

#ifndef STREAMREC_ALS_KERNEL_NS
#error "STREAMREC_ALS_KERNEL_NS must name the build (generic or avx2)"
#endif

namespace streamrec::als_kernel::STREAMREC_ALS_KERNEL_NS {

namespace {

// The end of row r's part of the lower triangle, rounded up to a multiple of four columns (and
// at most k): whole vectors, no remainder loop. The few entries past the diagonal this reaches
// are in the upper triangle, which nothing reads.
template <int K>
inline int RowEnd(int k, int r) {
  const int kk = K > 0 ? K : k;
  const int end = (r | 3) + 1;
  return end < kk ? end : kk;
}

// a[r][0..r] += sum over the rows p of w_p y_p[r] y_p[0..r]: up to four rank-1 updates per pass
// over a, because the loads and stores of a, not the multiplications, bound these loops. K is
// k when known at compile time (the default 32 factors), else 0.
template <int K, int kRows>
inline void RankUpdate(int k, const double* const* y, const double* w, double* __restrict a) {
  const int kk = K > 0 ? K : k;
  for (int r = 0; r < kk; ++r) {
    double s[kRows];
    for (int p = 0; p < kRows; ++p) s[p] = w[p] * y[p][r];
    double* __restrict ar = a + static_cast<size_t>(r) * kk;
    const int end = RowEnd<K>(kk, r);
    if constexpr (kRows == 4) {
      const double* __restrict y0 = y[0];
      const double* __restrict y1 = y[1];
      const double* __restrict y2 = y[2];
      const double* __restrict y3 = y[3];
      for (int c = 0; c < end; ++c) {
        ar[c] += (s[0] * y0[c] + s[1] * y1[c]) + (s[2] * y2[c] + s[3] * y3[c]);
      }
    } else {
      const double* __restrict y0 = y[0];
      for (int c = 0; c < end; ++c) ar[c] += s[0] * y0[c];
    }
  }
}

inline void Widen(const float* __restrict f, int k, double* __restrict out) {
  for (int c = 0; c < k; ++c) out[c] = f[c];
}

template <int K>
void AccumulateK(const float* factors, int k, const uint32_t* index, const double* confidence,
                 size_t n, double* a, double* rhs, double* scratch) {
  const int kk = K > 0 ? K : k;
  double* y[4] = {scratch, scratch + kk, scratch + 2 * kk, scratch + 3 * kk};
  double w[4];
  size_t i = 0;
  for (; i + 3 < n; i += 4) {
    for (int p = 0; p < 4; ++p) {
      Widen(factors + static_cast<size_t>(index[i + p]) * kk, kk, y[p]);
      w[p] = confidence[i + p] - 1.0;
    }
    for (int p = 0; p < 4; ++p) {
      const double c = confidence[i + p];
      const double* __restrict yp = y[p];
      for (int j = 0; j < kk; ++j) rhs[j] += c * yp[j];
    }
    RankUpdate<K, 4>(kk, y, w, a);
  }
  for (; i < n; ++i) {
    Widen(factors + static_cast<size_t>(index[i]) * kk, kk, y[0]);
    w[0] = confidence[i] - 1.0;
    const double c = confidence[i];
    const double* __restrict y0 = y[0];
    for (int j = 0; j < kk; ++j) rhs[j] += c * y0[j];
    RankUpdate<K, 1>(kk, y, w, a);
  }
}

void Accumulate(const float* factors, int k, const uint32_t* index, const double* confidence,
                size_t n, double* a, double* rhs, double* scratch) {
  if (k == 32) return AccumulateK<32>(factors, k, index, confidence, n, a, rhs, scratch);
  AccumulateK<0>(factors, k, index, confidence, n, a, rhs, scratch);
}

template <int K>
void AddGramK(const float* factors, int k, size_t rows, double* a, double* scratch) {
  const int kk = K > 0 ? K : k;
  double* y[4] = {scratch, scratch + kk, scratch + 2 * kk, scratch + 3 * kk};
  const double w[4] = {1.0, 1.0, 1.0, 1.0};
  size_t r = 0;
  for (; r + 3 < rows; r += 4) {
    for (int p = 0; p < 4; ++p) Widen(factors + (r + p) * kk, kk, y[p]);
    RankUpdate<K, 4>(kk, y, w, a);
  }
  for (; r < rows; ++r) {
    Widen(factors + r * kk, kk, y[0]);
    RankUpdate<K, 1>(kk, y, w, a);
  }
}

void AddGram(const float* factors, int k, size_t rows, double* a, double* scratch) {
  if (k == 32) return AddGramK<32>(factors, k, rows, a, scratch);
  AddGramK<0>(factors, k, rows, a, scratch);
}

// Right-looking, two pivots per pass: after pivots j and j + 1, every later row r takes away
// l_rj (d_j l_cj) + l_r,j+1 (d_j+1 l_c,j+1) from its entries c in (j + 1, r]. `cj` and `cj1` hold
// the columns before division (d l), so the inner loop runs over contiguous arrays, and one pass
// over the trailing triangle serves both pivots.
void FactorLdlt(double* a, int k, double* scratch) {
  double* __restrict cj = scratch;
  double* __restrict cj1 = scratch + k;
  auto pivot = [&](int j, double* col) {
    double* aj = a + static_cast<size_t>(j) * k;
    double d = aj[j];
    if (!(d > 0)) d = __builtin_inf();
    aj[j] = d;
    for (int r = j + 1; r < k; ++r) {
      double* ar = a + static_cast<size_t>(r) * k;
      col[r] = ar[j];
      ar[j] = col[r] / d;
    }
  };
  int j = 0;
  for (; j + 1 < k; j += 2) {
    pivot(j, cj);
    // Column j + 1 (from the diagonal down) takes pivot j's update first.
    for (int r = j + 1; r < k; ++r) {
      double* ar = a + static_cast<size_t>(r) * k;
      ar[j + 1] -= ar[j] * cj[j + 1];
    }
    pivot(j + 1, cj1);
    for (int r = j + 2; r < k; ++r) {
      double* __restrict ar = a + static_cast<size_t>(r) * k;
      const double l0 = ar[j];
      const double l1 = ar[j + 1];
      for (int c = j + 2; c <= r; ++c) ar[c] -= l0 * cj[c] + l1 * cj1[c];
    }
  }
  if (j < k) pivot(j, cj);  // the last pivot of an odd k: nothing follows it
}

}  // namespace

#define STREAMREC_STR2(x) #x
#define STREAMREC_STR(x) STREAMREC_STR2(x)
extern const Kernels kKernels = {STREAMREC_STR(STREAMREC_ALS_KERNEL_NS), &Accumulate, &AddGram,
                                 &FactorLdlt};

}  // namespace streamrec::als_kernel::STREAMREC_ALS_KERNEL_NS
