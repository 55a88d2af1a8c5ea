"""Builds openautoglm._C from cuda_ext/ (pattern of pytorch/extension-cpp).

Metadata lives in pyproject.toml; this file only declares the extension.

- One abi3 module (``py_limited_api``, no pybind11): importing it runs the ``TORCH_LIBRARY``
  registrations of the custom operators.
- The CPU kernels are built with AVX2 + FMA so ATen's ``Vectorized<T>`` is really SIMD; a scalar
  build is slower than eager PyTorch. ``openautoglm.ops`` checks the CPU before loading the module.
- The CUDA kernels (``cuda_ext/cuda/*.cu``) are built only where the installed torch has CUDA
  (``torch.version.cuda``); a CPU-only torch cannot build them even when nvcc is present.
  ``OPENAUTOGLM_NO_CUDA=1`` skips them anyway.

Install (torch, setuptools, wheel and ninja first; no build isolation, which would fetch another
torch): ``pip install --no-build-isolation -e ".[dev]"``. In a source tree:
``python setup.py build_ext --inplace``.
"""
from __future__ import annotations

import glob
import os
import platform
import sys
import warnings

import torch
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_DIR = os.path.join("cuda_ext")

# py_limited_api=True below makes BuildExtension define Py_LIMITED_API: one _C.abi3.so for
# every CPython the wheel tag allows (cp311 = requires-python in pyproject).
# ATen's Vectorized<T> picks its SIMD implementation from these macros + target flags.
SIMD_MACROS = ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
if sys.platform == "win32":
    CXX_FLAGS = ["/O2", "/arch:AVX2", *SIMD_MACROS]
else:
    # -g0: no debug info (Python's CFLAGS add -g: a 4 MB module instead of a few hundred kB).
    CXX_FLAGS = ["-O3", "-g0", *SIMD_MACROS, "-mavx2", "-mfma", "-Wno-unknown-pragmas"]
NVCC_FLAGS = ["-O3"]


def _with_cuda() -> bool:
    return torch.version.cuda is not None and os.environ.get("OPENAUTOGLM_NO_CUDA", "0") != "1"


def extensions() -> list:
    if platform.machine().lower() not in ("x86_64", "amd64"):
        # The kernels are written for AVX2; openautoglm.ops reports them unavailable here.
        warnings.warn(
            f"openautoglm: not building the fused operators (openautoglm._C) on {platform.machine()}: "
            "they need an x86-64 CPU with AVX2; the rest of the package works without them"
        )
        return []
    sources = [os.path.join(EXT_DIR, "ops.cpp")]
    cuda_sources = sorted(glob.glob(os.path.join(EXT_DIR, "cuda", "*.cu")))
    kwargs = dict(
        include_dirs=[os.path.join(HERE, EXT_DIR)],
        py_limited_api=True,
    )
    if _with_cuda() and cuda_sources:
        return [
            CUDAExtension(
                "openautoglm._C",
                sources + cuda_sources,
                extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
                **kwargs,
            )
        ]
    return [CppExtension("openautoglm._C", sources, extra_compile_args={"cxx": CXX_FLAGS}, **kwargs)]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
