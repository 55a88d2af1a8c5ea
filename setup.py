"""Builds openautoglm._C from cuda_ext/ (pattern of pytorch/extension-cpp).

Metadata lives in pyproject.toml; this file only declares the extension.

- One abi3 module (``py_limited_api``, no pybind11): importing it runs the ``TORCH_LIBRARY``
  registrations of the custom operators.
- The CPU kernels are built with AVX2 + FMA so ATen's ``Vectorized<T>`` is really SIMD; a scalar
  build is slower than eager PyTorch. ``openautoglm.ops`` checks the CPU before loading the module.
- A second module, ``openautoglm._C_avx512``, holds the same CPU kernels built for AVX-512 (ATen's
  own flags); ``openautoglm.ops`` loads it instead of ``_C`` where ATen runs AVX-512 itself.
  ``OPENAUTOGLM_NO_AVX512=1`` skips it.
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
import time
import warnings

import torch
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))
EXT_DIR = os.path.join("cuda_ext")

# py_limited_api=True below makes BuildExtension define Py_LIMITED_API: one _C.abi3.so for
# every CPython the wheel tag allows (cp311 = requires-python in pyproject).
# ATen's Vectorized<T> picks its SIMD implementation from the CPU_CAPABILITY macros + target flags.
AVX2 = ["-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
AVX512 = ["-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"]
if sys.platform == "win32":
    CXX_FLAGS = ["/O2", "/arch:AVX2", *AVX2]
    CXX_FLAGS_AVX512 = ["/O2", "/arch:AVX512", *AVX512]
else:
    # -g0: no debug info (Python's CFLAGS add -g: a 4 MB module instead of a few hundred kB).
    COMMON = ["-O3", "-g0", "-Wno-unknown-pragmas"]
    CXX_FLAGS = [*COMMON, *AVX2, "-mavx2", "-mfma"]
    # The flags ATen builds its own AVX-512 kernels with.
    CXX_FLAGS_AVX512 = [*COMMON, *AVX512, "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma"]
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
    # The AVX-512 build of the same CPU kernels; openautoglm.ops loads it instead of _C where ATen
    # runs AVX-512 itself (CPU-only torch; with CUDA, _C carries the CUDA kernels and is used).
    avx512 = CppExtension(
        "openautoglm._C_avx512",
        [os.path.join(EXT_DIR, "ops_avx512.cpp")],
        extra_compile_args={"cxx": CXX_FLAGS_AVX512},
        **kwargs,
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
    base = CppExtension("openautoglm._C", sources, extra_compile_args={"cxx": CXX_FLAGS}, **kwargs)
    if os.environ.get("OPENAUTOGLM_NO_AVX512", "0") == "1":
        return [base]
    return [base, avx512]


class ProgressBuildExtension(BuildExtension):
    """torch's BuildExtension (ninja) that says what it compiles, where it puts it and how long it
    took, on stderr. pip shows a spinner and keeps a build's output to itself unless it runs with
    ``-v``; ``python setup.py build_ext --inplace`` shows it as it comes."""

    def build_extensions(self) -> None:
        self._count = (0, len(self.extensions))
        if self.extensions:
            _say(f"building the C++ operators: {len(self.extensions)} module(s) "
                 f"({', '.join(e.name for e in self.extensions)}), compiled once at install; "
                 f"objects in {self.build_temp}, with ninja's [k/n] lines below")
        super().build_extensions()

    def build_extension(self, ext) -> None:
        done, total = self._count
        target = self.get_ext_fullpath(ext.name)
        _say(f"[{done + 1}/{total}] compiling {ext.name} from {', '.join(ext.sources)} "
             f"-> {target}")
        t0 = time.perf_counter()
        super().build_extension(ext)
        self._count = (done + 1, total)
        _say(f"[{done + 1}/{total}] {ext.name} built in {time.perf_counter() - t0:.0f} s")


def _say(message: str) -> None:
    print(f"openautoglm setup: {message}", file=sys.stderr, flush=True)


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": ProgressBuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp311"}},
)
