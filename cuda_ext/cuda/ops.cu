// CUDA kernels for the openautoglm operators (schemas are declared once, in ../ops.cpp).
//
//   fused_bias_gelu           grid-stride elementwise gelu(x + bias)
//   fused_bias_gelu_backward  one pass: grad_x per element, grad_bias summed per column block
//   fused_layernorm_gelu      one block per row: mean, rstd (block reductions), then gelu(.)
//   fused_layernorm_gelu_backward
//                             per row: grad_x (+ mean/rstd saved per row); per column block:
//                             grad_weight, grad_bias from the saved row statistics
//
// Arithmetic is in float for float tensors and double for double tensors. Built only where torch
// has CUDA (setup.py); tests/test_cuda_compile.py compile-checks this file with nvcc elsewhere.
// Headers stay narrow: ATen/cuda/CUDAContext.h pulls in cuBLAS/cuSPARSE; the stream comes from c10.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <string_view>
#include <tuple>

#include "ops_common.h"

namespace openautoglm {
namespace {

constexpr int kThreads = 256;
constexpr int kColumnsPerBlock = 32;  // column kernels: blockDim (32, kRowsPerBlock)
constexpr int kRowsPerBlock = 8;

template <typename T, bool kTanh>
__device__ __forceinline__ T gelu(T x) {
  if constexpr (kTanh) {
    const T u = T(kSqrt2OverPi) * x * (T(1) + T(kKappa) * x * x);
    return T(0.5) * x * (T(1) + tanh(u));
  } else {
    return T(0.5) * x * (T(1) + erf(x * T(kAlpha)));
  }
}

template <typename T, bool kTanh>
__device__ __forceinline__ T gelu_grad(T x) {
  if constexpr (kTanh) {
    const T x2 = x * x;
    const T t = tanh(T(kSqrt2OverPi) * x * (T(1) + T(kKappa) * x2));
    const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kKappa) * x2);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
  } else {
    const T cdf = T(0.5) * (T(1) + erf(x * T(kAlpha)));
    const T pdf = exp(T(-0.5) * x * x) * T(kBeta);
    return cdf + x * pdf;
  }
}

// Sum of v over the block; every thread gets the result. `shared` holds one value per warp.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) >> 5;
  v = threadIdx.x < warps ? shared[threadIdx.x] : T(0);
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (lane == 0) shared[0] = v;
  }
  __syncthreads();
  const T total = shared[0];
  __syncthreads();  // shared is reused by the next call
  return total;
}

int blocks_for(int64_t work, int threads) {
  return static_cast<int>(std::min<int64_t>((work + threads - 1) / threads, 65535 * 8));
}

// ---------------------------------------------------------------- fused_bias_gelu

template <typename T, bool kTanh>
__global__ void bias_gelu_kernel(const T* __restrict__ x, const T* __restrict__ b, T* __restrict__ y,
                                 int64_t numel, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < numel;
       i += int64_t(blockDim.x) * gridDim.x) {
    y[i] = gelu<T, kTanh>(x[i] + b[i % n]);
  }
}

// Threads of a warp walk adjacent columns (coalesced); the y threads of a block and the blocks
// of a grid column split the rows. Partial column sums meet in shared memory, then one atomicAdd
// per column per block.
template <typename T, bool kTanh>
__global__ void bias_gelu_backward_kernel(const T* __restrict__ g, const T* __restrict__ x,
                                          const T* __restrict__ b, T* __restrict__ gx,
                                          T* __restrict__ gb, int64_t rows, int64_t n) {
  __shared__ T partial[kRowsPerBlock][kColumnsPerBlock];
  const int64_t c = blockIdx.x * int64_t(kColumnsPerBlock) + threadIdx.x;
  T acc = 0;
  if (c < n) {
    const T bc = b[c];
    for (int64_t r = blockIdx.y * int64_t(kRowsPerBlock) + threadIdx.y; r < rows;
         r += int64_t(gridDim.y) * kRowsPerBlock) {
      const int64_t i = r * n + c;
      const T d = g[i] * gelu_grad<T, kTanh>(x[i] + bc);
      gx[i] = d;
      acc += d;
    }
  }
  partial[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    for (int k = 1; k < kRowsPerBlock; ++k) acc += partial[k][threadIdx.x];
    atomicAdd(gb + c, acc);
  }
}

dim3 column_grid(int64_t rows, int64_t n) {
  const int64_t col_blocks = (n + kColumnsPerBlock - 1) / kColumnsPerBlock;
  const int64_t row_blocks = std::min<int64_t>((rows + kRowsPerBlock - 1) / kRowsPerBlock, 1024);
  return dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(std::max<int64_t>(row_blocks, 1)));
}

at::Tensor fused_bias_gelu_cuda(const at::Tensor& x, const at::Tensor& bias, std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_float(x, "fused_bias_gelu", "x");
  check_feature_vector(x, bias, "fused_bias_gelu", "bias");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  const int64_t numel = y.numel(), n = x.size(-1);
  if (numel == 0) return y;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_bias_gelu_cuda", [&] {
    auto kernel = tanh ? bias_gelu_kernel<scalar_t, true> : bias_gelu_kernel<scalar_t, false>;
    kernel<<<blocks_for(numel, kThreads), kThreads, 0, stream>>>(
        xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(), numel, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor> fused_bias_gelu_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& bias, std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_float(x, "fused_bias_gelu_backward", "x");
  check_feature_vector(x, bias, "fused_bias_gelu_backward", "bias");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(),
              "openautoglm.fused_bias_gelu_backward: grad must match x in shape and dtype, got ",
              grad.sizes(), " vs ", x.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor gc = grad.contiguous(), xc = x.contiguous(), bc = bias.contiguous();
  at::Tensor gx = at::empty(x.sizes(), x.options());
  at::Tensor gb = at::zeros(bias.sizes(), bias.options());
  const int64_t n = x.size(-1);
  if (gx.numel() == 0) return {gx, gb};
  const int64_t rows = xc.numel() / n;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_bias_gelu_backward_cuda", [&] {
    auto kernel = tanh ? bias_gelu_backward_kernel<scalar_t, true> : bias_gelu_backward_kernel<scalar_t, false>;
    kernel<<<column_grid(rows, n), dim3(kColumnsPerBlock, kRowsPerBlock), 0, stream>>>(
        gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
        gx.mutable_data_ptr<scalar_t>(), gb.mutable_data_ptr<scalar_t>(), rows, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {gx, gb};
}

// ---------------------------------------------------------------- fused_layernorm_gelu

// Mean and rstd of row r, computed by the whole block (two passes: the row is in L1/L2).
template <typename T>
__device__ void row_moments(const T* xr, int64_t n, double eps, T* shared, T* mean, T* rstd) {
  T s = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) s += xr[c];
  const T m = block_sum(s, shared) / T(n);
  T ss = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const T d = xr[c] - m;
    ss += d * d;
  }
  *mean = m;
  *rstd = T(1) / sqrt(block_sum(ss, shared) / T(n) + T(eps));
}

template <typename T, bool kTanh>
__global__ void layernorm_gelu_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                      const T* __restrict__ b, T* __restrict__ y, int64_t n, double eps) {
  __shared__ T shared[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  T mean, rstd;
  row_moments(xr, n, eps, shared, &mean, &rstd);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    y[r * n + c] = gelu<T, kTanh>((xr[c] - mean) * rstd * w[c] + b[c]);
  }
}

// Per row: grad_x = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = grad * gelu'(h) * w.
template <typename T, bool kTanh>
__global__ void layernorm_gelu_backward_rows_kernel(
    const T* __restrict__ grad, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
    T* __restrict__ gx, T* __restrict__ means, T* __restrict__ rstds, int64_t n, double eps) {
  __shared__ T shared[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  const T* gr = grad + r * n;
  T mean, rstd;
  row_moments(xr, n, eps, shared, &mean, &rstd);
  T s1 = 0, s2 = 0;
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const T xhat = (xr[c] - mean) * rstd;
    const T g = gr[c] * gelu_grad<T, kTanh>(xhat * w[c] + b[c]) * w[c];
    s1 += g;
    s2 += g * xhat;
  }
  const T m1 = block_sum(s1, shared) / T(n);
  const T m2 = block_sum(s2, shared) / T(n);
  for (int64_t c = threadIdx.x; c < n; c += blockDim.x) {
    const T xhat = (xr[c] - mean) * rstd;
    const T g = gr[c] * gelu_grad<T, kTanh>(xhat * w[c] + b[c]) * w[c];
    gx[r * n + c] = rstd * (g - m1 - xhat * m2);
  }
  if (threadIdx.x == 0) {
    means[r] = mean;
    rstds[r] = rstd;
  }
}

// grad_weight[c] = sum_r dh * xhat, grad_bias[c] = sum_r dh, from the saved row statistics.
template <typename T, bool kTanh>
__global__ void layernorm_gelu_backward_columns_kernel(
    const T* __restrict__ grad, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
    const T* __restrict__ means, const T* __restrict__ rstds, T* __restrict__ gw, T* __restrict__ gb,
    int64_t rows, int64_t n) {
  __shared__ T partial_w[kRowsPerBlock][kColumnsPerBlock];
  __shared__ T partial_b[kRowsPerBlock][kColumnsPerBlock];
  const int64_t c = blockIdx.x * int64_t(kColumnsPerBlock) + threadIdx.x;
  T acc_w = 0, acc_b = 0;
  if (c < n) {
    const T wc = w[c], bc = b[c];
    for (int64_t r = blockIdx.y * int64_t(kRowsPerBlock) + threadIdx.y; r < rows;
         r += int64_t(gridDim.y) * kRowsPerBlock) {
      const int64_t i = r * n + c;
      const T xhat = (x[i] - means[r]) * rstds[r];
      const T dh = grad[i] * gelu_grad<T, kTanh>(xhat * wc + bc);
      acc_w += dh * xhat;
      acc_b += dh;
    }
  }
  partial_w[threadIdx.y][threadIdx.x] = acc_w;
  partial_b[threadIdx.y][threadIdx.x] = acc_b;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    for (int k = 1; k < kRowsPerBlock; ++k) {
      acc_w += partial_w[k][threadIdx.x];
      acc_b += partial_b[k][threadIdx.x];
    }
    atomicAdd(gw + c, acc_w);
    atomicAdd(gb + c, acc_b);
  }
}

void check_layernorm_args(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps,
                          const char* op) {
  check_float(x, op, "x");
  check_feature_vector(x, weight, op, "weight");
  check_feature_vector(x, bias, op, "bias");
  TORCH_CHECK(eps >= 0 && std::isfinite(eps), "openautoglm.", op, ": eps must be finite and >= 0, got ", eps);
}

at::Tensor fused_layernorm_gelu_cuda(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                     double eps, std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_layernorm_args(x, weight, bias, eps, "fused_layernorm_gelu");
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous(), bc = bias.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  const int64_t n = x.size(-1);
  if (y.numel() == 0) return y;
  const int64_t rows = xc.numel() / n;
  TORCH_CHECK(rows <= 2147483647, "openautoglm.fused_layernorm_gelu: too many rows for one grid");
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_layernorm_gelu_cuda", [&] {
    auto kernel = tanh ? layernorm_gelu_kernel<scalar_t, true> : layernorm_gelu_kernel<scalar_t, false>;
    kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        xc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(), bc.const_data_ptr<scalar_t>(),
        y.mutable_data_ptr<scalar_t>(), n, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return y;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fused_layernorm_gelu_backward_cuda(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps,
    std::string_view approximate) {
  const bool tanh = parse_approximate(approximate);
  check_layernorm_args(x, weight, bias, eps, "fused_layernorm_gelu_backward");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(),
              "openautoglm.fused_layernorm_gelu_backward: grad must match x in shape and dtype, got ",
              grad.sizes(), " vs ", x.sizes());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor gc = grad.contiguous(), xc = x.contiguous(), wc = weight.contiguous(),
                   bc = bias.contiguous();
  at::Tensor gx = at::empty(x.sizes(), x.options());
  at::Tensor gw = at::zeros(weight.sizes(), weight.options());
  at::Tensor gb = at::zeros(bias.sizes(), bias.options());
  const int64_t n = x.size(-1);
  if (gx.numel() == 0) return {gx, gw, gb};
  const int64_t rows = xc.numel() / n;
  TORCH_CHECK(rows <= 2147483647, "openautoglm.fused_layernorm_gelu_backward: too many rows for one grid");
  at::Tensor means = at::empty({rows}, x.options());
  at::Tensor rstds = at::empty({rows}, x.options());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "fused_layernorm_gelu_backward_cuda", [&] {
    auto rows_kernel = tanh ? layernorm_gelu_backward_rows_kernel<scalar_t, true>
                            : layernorm_gelu_backward_rows_kernel<scalar_t, false>;
    rows_kernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(),
        bc.const_data_ptr<scalar_t>(), gx.mutable_data_ptr<scalar_t>(), means.mutable_data_ptr<scalar_t>(),
        rstds.mutable_data_ptr<scalar_t>(), n, eps);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    auto columns_kernel = tanh ? layernorm_gelu_backward_columns_kernel<scalar_t, true>
                               : layernorm_gelu_backward_columns_kernel<scalar_t, false>;
    columns_kernel<<<column_grid(rows, n), dim3(kColumnsPerBlock, kRowsPerBlock), 0, stream>>>(
        gc.const_data_ptr<scalar_t>(), xc.const_data_ptr<scalar_t>(), wc.const_data_ptr<scalar_t>(),
        bc.const_data_ptr<scalar_t>(), means.const_data_ptr<scalar_t>(), rstds.const_data_ptr<scalar_t>(),
        gw.mutable_data_ptr<scalar_t>(), gb.mutable_data_ptr<scalar_t>(), rows, n);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {gx, gw, gb};
}

}  // namespace

TORCH_LIBRARY_IMPL(openautoglm, CUDA, m) {
  m.impl("fused_bias_gelu", &fused_bias_gelu_cuda);
  m.impl("fused_bias_gelu_backward", &fused_bias_gelu_backward_cuda);
  m.impl("fused_layernorm_gelu", &fused_layernorm_gelu_cuda);
  m.impl("fused_layernorm_gelu_backward", &fused_layernorm_gelu_backward_cuda);
}

}  // namespace openautoglm
