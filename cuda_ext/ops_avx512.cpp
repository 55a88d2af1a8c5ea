// The same operators compiled for AVX-512 (setup.py passes -DCPU_CAPABILITY=AVX512 and the
// -mavx512* flags to this file's extension, openautoglm._C_avx512). openautoglm/ops.py loads it
// instead of openautoglm._C where ATen itself runs AVX-512 kernels; never both in one process.
#define OPENAUTOGLM_MODULE _C_avx512
#include "ops.cpp"
