// openautoglm custom operators: schemas (declared once, here) and their CPU kernels.
//
//   fused_bias_gelu(x, bias, approximate)                 y = gelu(x + bias)
//   fused_layernorm_gelu(x, weight, bias, eps, approximate) y = gelu(layer_norm(x) * weight + bias)
//
// Each has a backward op. x is viewed as (rows, n) with n = x.size(-1); kernels walk rows in
// parallel (at::parallel_for) and columns with ATen's Vectorized<T>, which is SIMD only when the
// file is built with -DCPU_CAPABILITY=AVX2 -mavx2 -mfma (see setup.py; openautoglm/ops.py checks
// the CPU before loading). setup.py builds this file twice: openautoglm._C for AVX2 (the
// baseline, with the CUDA kernels) and, through ops_avx512.cpp, openautoglm._C_avx512 for
// AVX-512; a process loads exactly one of them (both declare the same library). The fused versions win over eager by reading x once and allocating one
// output instead of one per step. The CUDA kernels live in cuda/ops.cu.
//
// Importing the Python module openautoglm._C runs the registrations below; the module itself is
// empty (pattern of pytorch/extension-cpp, no pybind11, one abi3 .so).
#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ops_common.h"

// The module's name: _C (AVX2, the baseline), or _C_avx512 when ops_avx512.cpp includes this file.
#ifndef OPENAUTOGLM_MODULE
#define OPENAUTOGLM_MODULE _C
#endif
#define OPENAUTOGLM_CONCAT_(a, b) a##b
#define OPENAUTOGLM_CONCAT(a, b) OPENAUTOGLM_CONCAT_(a, b)
#define OPENAUTOGLM_STR_(a) #a
#define OPENAUTOGLM_STR(a) OPENAUTOGLM_STR_(a)

extern "C" {
// An empty module: `import openautoglm._C` only needs to load the .so so the TORCH_LIBRARY
// static initialisers run.
PyObject* OPENAUTOGLM_CONCAT(PyInit_, OPENAUTOGLM_MODULE)(void) {
  static struct PyModuleDef module_def = {
      PyModuleDef_HEAD_INIT, OPENAUTOGLM_STR(OPENAUTOGLM_MODULE), /* m_doc */ nullptr,
      /* m_size */ -1, /* m_methods */ nullptr,
  };
  return PyModule_Create(&module_def);
}
}

namespace openautoglm {
namespace {

using at::vec::Vectorized;

// Column sums of float tensors are kept in double across rows so a sum over 10^5 rows stays
// as accurate as eager's cascade sum.
template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

// Rows per block before per-thread partial column sums are flushed into the wider accumulator.
constexpr int64_t kFlushRows = 64;
// About this many elements per parallel chunk: enough work to amortise a thread wake-up.
constexpr int64_t kGrainElements = 32768;

inline int64_t grain_rows(int64_t n) { return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(n, 1)); }

// exp with ATen's 20-ULP polynomial for float (Sleef's 1-ULP exp dominates the cost of GELU);
// double keeps the accurate exp.
template <typename T>
inline Vectorized<T> fast_exp(const Vectorized<T>& x) {
  if constexpr (std::is_same_v<T, float>) {
    return x.exp_u20();
  } else {
    return x.exp();
  }
}

// Phi(x) = 0.5 (1 + erf(x / sqrt 2)) and, for float, e = exp(-x^2 / 2) computed once and shared
// with the caller (the pdf needs the same exponential). Float uses Abramowitz & Stegun 7.1.26
// (|error| < 1.5e-7, the formula ATen's own AVX2 erf uses); double uses Sleef's erf and exp.
template <typename T>
inline Vectorized<T> normal_cdf(const Vectorized<T>& x, Vectorized<T>* e) {
  using Vec = Vectorized<T>;
  const Vec half{T(0.5)}, one{T(1)};
  if constexpr (std::is_same_v<T, float>) {
    const Vec z = x * Vec(T(kAlpha));
    const Vec t = one / (Vec(0.3275911f) * z.abs() + one);
    Vec r = at::vec::fmadd(Vec(1.061405429f), t, Vec(-1.453152027f));
    r = at::vec::fmadd(r, t, Vec(1.421413741f));
    r = at::vec::fmadd(r, t, Vec(-0.284496736f));
    r = at::vec::fmadd(r, t, Vec(0.254829592f));
    *e = fast_exp(Vec(-0.5f) * x * x);
    const Vec erf_abs = one - r * t * *e;
    const Vec erf = Vec::blendv(erf_abs, erf_abs.neg(), z < Vec(0.f));
    return half * (one + erf);
  } else {
    *e = (Vec(T(-0.5)) * x * x).exp();
    return half * (one + (x * Vec(T(kAlpha))).erf());
  }
}

// sigmoid(2u) with u = sqrt(2/pi) (x + 0.044715 x^3): 0.5 (1 + tanh(u)) without a tanh.
template <typename T>
inline Vectorized<T> tanh_gate(const Vectorized<T>& x) {
  using Vec = Vectorized<T>;
  const Vec one{T(1)};
  const Vec minus_two_u = Vec(T(-2 * kSqrt2OverPi)) * x * (one + Vec(T(kKappa)) * x * x);
  return one / (one + fast_exp(minus_two_u));
}

template <typename T, bool kTanh>
inline Vectorized<T> gelu(const Vectorized<T>& x) {
  Vectorized<T> e;
  if constexpr (kTanh) {
    return x * tanh_gate(x);
  } else {
    return x * normal_cdf(x, &e);
  }
}

// d gelu(x) / dx
template <typename T, bool kTanh>
inline Vectorized<T> gelu_grad(const Vectorized<T>& x) {
  using Vec = Vectorized<T>;
  const Vec one{T(1)};
  if constexpr (kTanh) {
    // With s = 0.5 (1 + tanh u): gelu = x s, and d/dx = s + 2 x s (1 - s) u'.
    const Vec s = tanh_gate(x);
    const Vec du = Vec(T(kSqrt2OverPi)) * (one + Vec(T(3 * kKappa)) * x * x);
    return s + Vec(T(2)) * x * s * (one - s) * du;
  } else {
    Vec e;
    const Vec cdf = normal_cdf(x, &e);
    return cdf + x * e * Vec(T(kBeta));
  }
}

template <typename T>
inline T reduce_add(const Vectorized<T>& v) {
  T lanes[Vectorized<T>::size()];
  v.store(lanes);
  T s = 0;
  for (int64_t i = 0; i < Vectorized<T>::size(); ++i) s += lanes[i];
  return s;
}

// Per-thread column sums of `k` arrays of n columns: rows add into a T block that is flushed into
// an acc_t buffer every kFlushRows rows; finish() reduces the threads into (k, n) tensors.
template <typename T>
struct ColumnSums {
  int64_t k, n;
  std::vector<acc_t<T>> per_thread;  // (threads, k, n)
  ColumnSums(int64_t k_, int64_t n_) : k(k_), n(n_), per_thread(at::get_num_threads() * k_ * n_, 0) {}

  void flush(std::vector<T>& block) {
    acc_t<T>* dst = per_thread.data() + at::get_thread_num() * k * n;
    for (int64_t i = 0; i < k * n; ++i) {
      dst[i] += block[i];
      block[i] = 0;
    }
  }
  // Sum over threads of array j into out (n elements).
  void finish(int64_t j, T* out) const {
    const int64_t threads = static_cast<int64_t>(per_thread.size()) / (k * n);
    for (int64_t c = 0; c < n; ++c) {
      acc_t<T> s = 0;
      for (int64_t t = 0; t < threads; ++t) s += per_thread[(t * k + j) * n + c];
      out[c] = static_cast<T>(s);
    }
  }
};

// ---------------------------------------------------------------- fused_bias_gelu

template <typename T, bool kTanh>
void bias_gelu_kernel(const T* x, const T* b, T* y, int64_t rows, int64_t n) {
  using Vec = Vectorized<T>;
  at::parallel_for(0, rows, grain_rows(n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      int64_t c = 0;
      for (; c + Vec::size() <= n; c += Vec::size()) {
        gelu<T, kTanh>(Vec::loadu(xr + c) + Vec::loadu(b + c)).store(yr + c);
      }
      if (c < n) {
        const int64_t rest = n - c;
        gelu<T, kTanh>(Vec::loadu(xr + c, rest) + Vec::loadu(b + c, rest)).store(yr + c, rest);
      }
    }
  });
}

at::Tensor fused_bias_gelu_cpu(const at::Tensor& x, const at::Tensor& bias, std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_float(x, "fused_bias_gelu", "x");
  check_feature_vector(x, bias, "fused_bias_gelu", "bias");
  const at::Tensor xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  const int64_t n = x.size(-1);
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_bias_gelu_cpu", [&] {
    auto run = tanh ? bias_gelu_kernel<scalar_t, true> : bias_gelu_kernel<scalar_t, false>;
    run(xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(),
        xc.numel() / n, n);
  });
  return y;
}

template <typename T, bool kTanh>
void bias_gelu_backward_kernel(
    const T* g, const T* x, const T* b, T* gx, ColumnSums<T>& gb, int64_t rows, int64_t n) {
  using Vec = Vectorized<T>;
  at::parallel_for(0, rows, grain_rows(n), [&](int64_t begin, int64_t end) {
    std::vector<T> block(n, 0);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t off = r * n;
      int64_t c = 0;
      for (; c + Vec::size() <= n; c += Vec::size()) {
        const Vec d = Vec::loadu(g + off + c) * gelu_grad<T, kTanh>(Vec::loadu(x + off + c) + Vec::loadu(b + c));
        d.store(gx + off + c);
        (Vec::loadu(block.data() + c) + d).store(block.data() + c);
      }
      if (c < n) {
        const int64_t rest = n - c;
        const Vec d = Vec::loadu(g + off + c, rest) *
            gelu_grad<T, kTanh>(Vec::loadu(x + off + c, rest) + Vec::loadu(b + c, rest));
        d.store(gx + off + c, rest);
        (Vec::loadu(block.data() + c, rest) + d).store(block.data() + c, rest);
      }
      if ((r - begin + 1) % kFlushRows == 0) gb.flush(block);
    }
    gb.flush(block);
  });
}

std::tuple<at::Tensor, at::Tensor> fused_bias_gelu_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias, std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_float(x, "fused_bias_gelu_backward", "x");
  check_feature_vector(x, bias, "fused_bias_gelu_backward", "bias");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(),
              "openautoglm.fused_bias_gelu_backward: grad must match x in shape and dtype, got ",
              grad.sizes(), " vs ", x.sizes());
  const at::Tensor gc = grad.contiguous(), xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor gx = at::empty(x.sizes(), x.options());
  at::Tensor gb = at::zeros(bias.sizes(), bias.options());
  const int64_t n = x.size(-1);
  if (gx.numel() == 0) return {gx, gb};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_bias_gelu_backward_cpu", [&] {
    ColumnSums<scalar_t> sums(1, n);
    auto run = tanh ? bias_gelu_backward_kernel<scalar_t, true> : bias_gelu_backward_kernel<scalar_t, false>;
    run(gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
        gx.mutable_data_ptr<scalar_t>(), sums, xc.numel() / n, n);
    sums.finish(0, gb.mutable_data_ptr<scalar_t>());
  });
  return {gx, gb};
}

// ---------------------------------------------------------------- fused_layernorm_gelu

// Mean and 1/sqrt(var + eps) of one row (biased variance, as nn.LayerNorm). Two passes over a row
// that sits in L1: more accurate than a one-pass sum of squares and no slower in practice.
template <typename T>
inline std::pair<T, T> row_moments(const T* xr, int64_t n, double eps) {
  using Vec = Vectorized<T>;
  Vec acc(T(0));
  int64_t c = 0;
  for (; c + Vec::size() <= n; c += Vec::size()) acc = acc + Vec::loadu(xr + c);
  T sum = reduce_add(acc);
  for (; c < n; ++c) sum += xr[c];
  const T mean = sum / static_cast<T>(n);
  const Vec vmean(mean);
  Vec sq(T(0));
  c = 0;
  for (; c + Vec::size() <= n; c += Vec::size()) {
    const Vec d = Vec::loadu(xr + c) - vmean;
    sq = sq + d * d;
  }
  T ss = reduce_add(sq);
  for (; c < n; ++c) ss += (xr[c] - mean) * (xr[c] - mean);
  const T rstd = T(1) / std::sqrt(ss / static_cast<T>(n) + static_cast<T>(eps));
  return {mean, rstd};
}

template <typename T, bool kTanh>
void layernorm_gelu_kernel(const T* x, const T* w, const T* b, T* y, int64_t rows, int64_t n, double eps) {
  using Vec = Vectorized<T>;
  at::parallel_for(0, rows, grain_rows(n), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * n;
      T* yr = y + r * n;
      const auto [mean, rstd] = row_moments(xr, n, eps);
      const Vec vmean(mean), vrstd(rstd);
      int64_t c = 0;
      for (; c + Vec::size() <= n; c += Vec::size()) {
        const Vec h = (Vec::loadu(xr + c) - vmean) * vrstd * Vec::loadu(w + c) + Vec::loadu(b + c);
        gelu<T, kTanh>(h).store(yr + c);
      }
      if (c < n) {
        const int64_t rest = n - c;
        const Vec h = (Vec::loadu(xr + c, rest) - vmean) * vrstd * Vec::loadu(w + c, rest) +
            Vec::loadu(b + c, rest);
        gelu<T, kTanh>(h).store(yr + c, rest);
      }
    }
  });
}

void check_layernorm_args(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps, const char* op) {
  check_float(x, op, "x");
  check_feature_vector(x, weight, op, "weight");
  check_feature_vector(x, bias, op, "bias");
  TORCH_CHECK(eps >= 0 && std::isfinite(eps), "openautoglm.", op, ": eps must be finite and >= 0, got ", eps);
}

at::Tensor fused_layernorm_gelu_cpu(
    const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps,
    std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_layernorm_args(x, weight, bias, eps, "fused_layernorm_gelu");
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  const int64_t n = x.size(-1);
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_layernorm_gelu_cpu", [&] {
    auto run = tanh ? layernorm_gelu_kernel<scalar_t, true> : layernorm_gelu_kernel<scalar_t, false>;
    run(xc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
        y.mutable_data_ptr<scalar_t>(), xc.numel() / n, n, eps);
  });
  return y;
}

// Per row, with xhat = (x - mean) * rstd, h = xhat * w + b and dh = grad * gelu'(h):
//   grad_w += dh * xhat,  grad_b += dh,  g = dh * w,
//   grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)).
// mean and rstd are recomputed from x (one read of a row in L1) instead of being saved.
template <typename T, bool kTanh>
void layernorm_gelu_backward_kernel(
    const T* grad, const T* x, const T* w, const T* b, T* gx, ColumnSums<T>& sums, int64_t rows,
    int64_t n, double eps) {
  using Vec = Vectorized<T>;
  at::parallel_for(0, rows, grain_rows(n), [&](int64_t begin, int64_t end) {
    std::vector<T> block(2 * n, 0);  // [grad_w | grad_b] partial sums
    std::vector<T> g(n);             // dh * w of the current row
    T* bw = block.data();
    T* bb = block.data() + n;
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * n;
      const T* gr = grad + r * n;
      const auto [mean, rstd] = row_moments(xr, n, eps);
      const Vec vmean(mean), vrstd(rstd);
      Vec s1(T(0)), s2(T(0));
      int64_t c = 0;
      // Full vectors, then one masked tail whose zero lanes add nothing to s1, s2 or the sums.
      for (; c < n; c += Vec::size()) {
        const int64_t cnt = std::min<int64_t>(Vec::size(), n - c);
        const Vec wv = Vec::loadu(w + c, cnt);
        const Vec xhat = Vec::set(Vec(T(0)), (Vec::loadu(xr + c, cnt) - vmean) * vrstd, cnt);
        const Vec dh = Vec::loadu(gr + c, cnt) * gelu_grad<T, kTanh>(xhat * wv + Vec::loadu(b + c, cnt));
        const Vec gv = dh * wv;
        gv.store(g.data() + c, cnt);
        s1 = s1 + gv;
        s2 = s2 + gv * xhat;
        (Vec::loadu(bw + c, cnt) + dh * xhat).store(bw + c, cnt);
        (Vec::loadu(bb + c, cnt) + dh).store(bb + c, cnt);
      }
      const T inv_n = T(1) / static_cast<T>(n);
      const Vec m1(reduce_add(s1) * inv_n), m2(reduce_add(s2) * inv_n);
      T* gxr = gx + r * n;
      for (c = 0; c < n; c += Vec::size()) {
        const int64_t cnt = std::min<int64_t>(Vec::size(), n - c);
        const Vec xhat = (Vec::loadu(xr + c, cnt) - vmean) * vrstd;
        (vrstd * (Vec::loadu(g.data() + c, cnt) - m1 - xhat * m2)).store(gxr + c, cnt);
      }
      if ((r - begin + 1) % kFlushRows == 0) sums.flush(block);
    }
    sums.flush(block);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_layernorm_gelu_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
    double eps, std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_layernorm_args(x, weight, bias, eps, "fused_layernorm_gelu_backward");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(),
              "openautoglm.fused_layernorm_gelu_backward: grad must match x in shape and dtype, got ",
              grad.sizes(), " vs ", x.sizes());
  const at::Tensor gc = grad.contiguous(), xc = x.contiguous(), wc = weight.contiguous(),
                   bc = bias.contiguous();
  at::Tensor gx = at::empty(x.sizes(), x.options());
  at::Tensor gw = at::zeros(weight.sizes(), weight.options());
  at::Tensor gb = at::zeros(bias.sizes(), bias.options());
  const int64_t n = x.size(-1);
  if (gx.numel() == 0) return {gx, gw, gb};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_layernorm_gelu_backward_cpu", [&] {
    ColumnSums<scalar_t> sums(2, n);
    auto run = tanh ? layernorm_gelu_backward_kernel<scalar_t, true>
                    : layernorm_gelu_backward_kernel<scalar_t, false>;
    run(gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(),
        bc.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), sums, xc.numel() / n, n, eps);
    sums.finish(0, gw.mutable_data_ptr<scalar_t>());
    sums.finish(1, gb.mutable_data_ptr<scalar_t>());
  });
  return {gx, gw, gb};
}

}  // namespace

// The schemas, declared once. Backward ops are ops of their own so a compiled graph keeps them
// opaque and a CUDA build can register kernels for them too.
TORCH_LIBRARY(openautoglm, m) {
  m.def("fused_bias_gelu(Tensor x, Tensor bias, str approximate='none') -> Tensor");
  m.def(
      "fused_bias_gelu_backward(Tensor grad, Tensor x, Tensor bias, str approximate='none')"
      " -> (Tensor, Tensor)");
  m.def(
      "fused_layernorm_gelu(Tensor x, Tensor weight, Tensor bias, float eps=1e-05,"
      " str approximate='none') -> Tensor");
  m.def(
      "fused_layernorm_gelu_backward(Tensor grad, Tensor x, Tensor weight, Tensor bias,"
      " float eps=1e-05, str approximate='none') -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(openautoglm, CPU, m) {
  m.impl("fused_bias_gelu", &fused_bias_gelu_cpu);
  m.impl("fused_bias_gelu_backward", &fused_bias_gelu_backward_cpu);
  m.impl("fused_layernorm_gelu", &fused_layernorm_gelu_cpu);
  m.impl("fused_layernorm_gelu_backward", &fused_layernorm_gelu_backward_cpu);
}

}  // namespace openautoglm
