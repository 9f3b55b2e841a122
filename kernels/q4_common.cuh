// Device helpers shared by the 4-bit kernels (q4_*.cu): per-activation-type packing, mma, loads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "quantbench/kernels/q4_gemm.h"

namespace qb::kernels::q4 {

template <typename Act>
struct ActOps;

template <>
struct ActOps<__half> {
  // Two values in one register, `lo` in the low 16 bits (the lower fragment / memory index).
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __forceinline__ uint32_t sub(uint32_t a, uint32_t b) {
    __half2 r = __hsub2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&b));
    return *reinterpret_cast<uint32_t*>(&r);
  }
  // d += A(16x16, row) * B(16x8, col), fp32 accumulators.
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
  static __device__ __forceinline__ __half from_float(float v) { return __float2half_rn(v); }
  // Packed pair arithmetic for the CUDA-core decode path and awq's (code - zero).
  // awq codes enter fp16 sums as (code - zero) / 16 = fma(code, 1/16, -zero/16), exact; |(c - z) / 16| < 1 keeps
  // an 8-product fp16 partial finite up to |x| ~ 8700 (as nf4's codebook does), and the scale takes the 16 back
  // in fp32 (exact).
  static constexpr uint32_t kAffineMul = 0x2C002C00u;  // (1/16, 1/16)
  static constexpr float kAffineMul1 = 0.0625f;
  static constexpr float kAffineScale = 1.0f / kAffineMul1;
  static __device__ __forceinline__ uint32_t fma2(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  static __device__ __forceinline__ float2 to_float2(uint32_t v) {
    return __half22float2(*reinterpret_cast<const __half2*>(&v));
  }
};

template <>
struct ActOps<__nv_bfloat16> {
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t*>(&h);
  }
  static __device__ __forceinline__ uint32_t sub(uint32_t a, uint32_t b) {
    __nv_bfloat162 r =
        __hsub2(*reinterpret_cast<__nv_bfloat162*>(&a), *reinterpret_cast<__nv_bfloat162*>(&b));
    return *reinterpret_cast<uint32_t*>(&r);
  }
  static __device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __device__ __forceinline__ __nv_bfloat16 from_float(float v) { return __float2bfloat16_rn(v); }
  // bf16 has fp32's range: awq codes enter as (code - zero) = fma(code, 1, -zero), exact.
  static constexpr uint32_t kAffineMul = 0x3F803F80u;  // (1, 1)
  static constexpr float kAffineMul1 = 1.0f;
  static constexpr float kAffineScale = 1.0f / kAffineMul1;
  static __device__ __forceinline__ uint32_t fma2(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t d;
    asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
    return d;
  }
  // bf16 -> fp32 is a shift: the low half moves up, the high half is masked.
  static __device__ __forceinline__ float2 to_float2(uint32_t v) {
    return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xFFFF0000u));
  }
};

template <>
struct ActOps<float> {
  static __device__ __forceinline__ float to_float(float v) { return v; }
  static __device__ __forceinline__ float from_float(float v) { return v; }
};

// The [256 byte values][32 lanes] pair table of (codebook[hi], codebook[lo]) words in shared memory (lane l reads
// column l: no bank conflicts): byte B of `word` looked up at shared address value * 128 + lane_base, with
// lane_base = table + lane * 4 (PRMT to isolate the byte, IMAD for the address, LDS: 3 instructions).
constexpr int kPairTableWords = 256 * 32;
template <int B>
__device__ __forceinline__ uint32_t table_pair(uint32_t lane_base, uint32_t word) {
  const uint32_t value = __byte_perm(word, 0u, 0x4440u | B);
  uint32_t pair;
  asm volatile("ld.shared.u32 %0, [%1];" : "=r"(pair) : "r"(value * 128u + lane_base));
  return pair;
}

// Fills a pair table (every thread of the block, strided; the caller synchronizes).
template <typename Act>
__device__ __forceinline__ void fill_pair_table(uint32_t* table, const float (&codebook)[16]) {
  for (int i = threadIdx.x; i < kPairTableWords / 4; i += blockDim.x) {
    const int b = i >> 3;  // 8 uint4 (32 lanes) per byte value
    const uint32_t v = ActOps<Act>::pack(codebook[b >> 4], codebook[b & 15]);
    reinterpret_cast<uint4*>(table)[i] = make_uint4(v, v, v, v);
  }
}

// Weights are read once: keep them out of L1 so that the activations (re-read by every warp) stay.
__device__ __forceinline__ uint4 load_stream16(const void* ptr) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(ptr));
  return v;
}

__device__ __forceinline__ uint4 load_cached16(const void* ptr) { return __ldg(reinterpret_cast<const uint4*>(ptr)); }

__device__ __forceinline__ uint32_t word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}

// absmax of a double-quantized block, rounded like bitsandbytes' CPU/CUDA code: code[u8] * nested
// absmax in fp32, then + offset in fp32 (two roundings, never an FMA).
__device__ __forceinline__ float nested_absmax(float code_value, float2 nested) {
  return __fadd_rn(__fmul_rn(code_value, nested.x), nested.y);
}

// Bytes of one (tile, unit) scale record of the tile layout (quantbench/kernels/q4_layout.h): 16 values.
constexpr int scale_record_bytes(Q4ScaleMode mode) {
  return mode == Q4ScaleMode::kAbsmaxNested ? 16 : mode == Q4ScaleMode::kAbsmax16 ? 32 : 64;
}

// kAbsmax16: the 16 bits of an absmax (bf16, or fp16 when f16) as the fp32 value they store exactly.
__device__ __forceinline__ float absmax16(uint32_t bits, bool f16) {
  bits &= 0xFFFFu;
  return f16 ? __half2float(__ushort_as_half(static_cast<unsigned short>(bits))) : __uint_as_float(bits << 16);
}

__device__ __forceinline__ float affine_scale(uint32_t packed) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(packed & 0xFFFFu)));
}
__device__ __forceinline__ float affine_zero(uint32_t packed) { return static_cast<float>(packed >> 16); }

}  // namespace qb::kernels::q4
