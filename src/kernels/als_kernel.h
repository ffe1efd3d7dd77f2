// The inner loops of ALS (als.cc): the normal equations of one row and their LDL^T
// factorisation. They are most of a fit's time (a 1M-customer fit builds and factors 15M small
// systems), so they are compiled twice from kernels/als_kernel.cc: once for the baseline x86-64
// the rest of the build targets, once with AVX2 and FMA. als.cc picks one at start-up by what the
// CPU supports (Kernels()).
//
// This header and kernels/als_kernel.cc include nothing with inline functions: a function both
// copies emitted would be merged by the linker, and the AVX2 one could then run on a CPU without
// AVX2.
#ifndef STREAMREC_KERNELS_ALS_KERNEL_H_
#define STREAMREC_KERNELS_ALS_KERNEL_H_

#include <cstddef>
#include <cstdint>

namespace streamrec::als_kernel {

// `a` is k x k, row-major; only its lower triangle (c <= r) is read. Kernels may write the few
// entries just past the diagonal (they update rows in whole vectors of four): the upper
// triangle is scratch.
//
// Accumulate: a += sum_i (c_i - 1) y_i y_i^T and rhs += sum_i c_i y_i over `n` non-zeros, where
// y_i is row index[i] of `factors` (float, k per row) and c_i = confidence[i].
using AccumulateFn = void (*)(const float* factors, int k, const uint32_t* index,
                              const double* confidence, size_t n, double* a, double* rhs,
                              double* scratch);
// AddGram: a += sum_r f_r f_r^T over `rows` consecutive rows of `factors`.
using AddGramFn = void (*)(const float* factors, int k, size_t rows, double* a, double* scratch);
// FactorLdlt: A = L D L^T in place (L unit lower triangular below the diagonal, D on it). A
// non-positive or NaN pivot becomes +inf, which drops that direction from the solution instead
// of producing NaNs.
using FactorLdltFn = void (*)(double* a, int k, double* scratch);

// Every kernel takes a scratch array of this many doubles.
constexpr size_t ScratchSize(int k) { return 4 * static_cast<size_t>(k); }

struct Kernels {
  const char* name;  // "avx2" or "generic"
  AccumulateFn accumulate;
  AddGramFn add_gram;
  FactorLdltFn factor_ldlt;
};

// Each build of kernels/als_kernel.cc defines one of these.
namespace generic {
extern const Kernels kKernels;
}
namespace avx2 {
extern const Kernels kKernels;  // only where STREAMREC_ALS_AVX2 is defined (x86-64 builds)
}

// The kernels in use: AVX2 + FMA where the build has them and the CPU supports both, else the
// generic ones; the environment variable STREAMREC_ALS_KERNEL=generic forces the generic ones
// (results then match a machine without AVX2 bit for bit). Chosen once per process.
const Kernels& Active();
// The AVX2 + FMA kernels when this build has them and the CPU supports them, else nullptr
// (what Active() would choose without STREAMREC_ALS_KERNEL; tests compare the two builds).
const Kernels* Avx2IfSupported();

}  // namespace streamrec::als_kernel

#endif  // STREAMREC_KERNELS_ALS_KERNEL_H_
