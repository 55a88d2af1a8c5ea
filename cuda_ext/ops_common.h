// Shared by the CPU (ops.cpp) and CUDA (cuda/ops.cu) kernels: GELU constants and the
// argument checks every kernel runs before touching memory. Host-only apart from the constants.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string_view>

namespace openautoglm {

// gelu(x)        = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))            ("none")
// gelu_tanh(x)   = 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))   ("tanh")
constexpr double kAlpha = 0.70710678118654752440;         // 1 / sqrt(2)
constexpr double kBeta = 0.39894228040143267794;          // 1 / sqrt(2 pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;   // sqrt(2 / pi)
constexpr double kKappa = 0.044715;

// Returns true for "tanh", false for "none"; anything else is the caller's mistake.
inline bool parse_approximate(std::string_view approximate) {
  TORCH_CHECK(
      approximate == "none" || approximate == "tanh",
      "openautoglm: approximate must be 'none' or 'tanh' (as in torch.nn.functional.gelu), got '",
      std::string(approximate), "'");
  return approximate == "tanh";
}

inline void check_float(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(
      t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble,
      "openautoglm.", op, ": ", name, " must be float32 or float64, got ", t.scalar_type(),
      "; convert it with .float() first");
}

// A 1-D per-feature parameter (bias, weight) that matches x's last dimension, dtype and device.
inline void check_feature_vector(
    const at::Tensor& x, const at::Tensor& v, const char* op, const char* name) {
  TORCH_CHECK(x.dim() >= 1, "openautoglm.", op, ": x must have at least one dimension");
  TORCH_CHECK(
      v.dim() == 1 && v.size(0) == x.size(-1),
      "openautoglm.", op, ": ", name, " must be 1-D with x.size(-1) = ", x.size(-1),
      " elements, got shape ", v.sizes());
  TORCH_CHECK(
      v.scalar_type() == x.scalar_type(), "openautoglm.", op, ": ", name, " has dtype ",
      v.scalar_type(), " but x has ", x.scalar_type(), "; use the same dtype for both");
  TORCH_CHECK(
      v.device() == x.device(), "openautoglm.", op, ": ", name, " is on ", v.device(),
      " but x is on ", x.device(), "; move both to the same device");
}

}  // namespace openautoglm
