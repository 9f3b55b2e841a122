// Hopper (sm_90a) building blocks for the fused dequantize-GEMM kernels: shared-memory mbarriers, copy-engine
// copies (tensor maps, bulk), proxy fences and warpgroup MMA (wgmma) with 128-byte-swizzled K-major operands.
// Only meaningful in translation units compiled for sm_90a (the *_sm90a.cu files; CMakeLists.txt builds them
// for that target alone); the wrappers are plain PTX so the file stays torch- and CUTLASS-free.
//
// Operand layout every wrapper here assumes (what wgmma's descriptor with swizzle mode "128B" reads):
//   a tile of R rows x 64 16-bit elements (128 bytes per row, K contiguous), 1024-byte aligned; the 16-byte
//   chunk c (elements 8c..8c+7) of row r sits at r * 128 + ((c ^ (r % 8)) * 16). Eight rows form one
//   1024-byte swizzle atom (the descriptor's stride byte offset); stepping K by 16 elements inside the atom
//   is +32 bytes on the start address (the hardware applies the XOR after adding).
#pragma once

#include <cstdint>

namespace qb::kernels::sm90 {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Byte offset of chunk c (16 bytes) of row r in a 128B-swizzled tile.
__device__ __forceinline__ uint32_t swizzled_offset(uint32_t r, uint32_t c) { return r * 128u + ((c ^ (r & 7u)) << 4); }

// ---- mbarrier ------------------------------------------------------------------------------------------------
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// After the inits, before the barriers are used by the copy engine: the inits made visible to the async proxy.
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  const uint32_t addr = smem_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.acquire.cta.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
        : "=r"(done)
        : "r"(addr), "r"(parity)
        : "memory");
  } while (!done);
}

// Arrives and raises the barrier's expected transaction count by `bytes` (the bulk copies below complete them).
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(bar)), "r"(bytes) : "memory");
}

// ---- bulk copies (the copy engine: one instruction moves a whole tile) ----------------------------------------
// Box (c0 = inner coordinate, c1 = row) of a 2-D tensor map -> shared memory, swizzled as the map says; rows or
// columns outside the tensor arrive as zeros. Completion: `bytes` of the box on `bar`'s transaction count.
__device__ __forceinline__ void tma_load_2d(void* dst, const void* tensor_map, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
          smem_addr(dst)),
      "l"(tensor_map), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}
// Contiguous bytes (multiple of 16, both addresses 16-byte aligned) -> shared memory.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                   smem_addr(dst)),
               "l"(src), "r"(bytes), "r"(smem_addr(bar))
               : "memory");
}

// Generic-proxy writes to shared memory (st.shared) made visible to the async proxy (wgmma).
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }

// ---- wgmma -----------------------------------------------------------------------------------------------------
// Descriptor of a 128B-swizzled K-major tile at `smem` (1024-byte aligned): leading byte offset unused (16),
// stride byte offset 1024 (one 8-row atom), swizzle mode 1 (128B) in bits 62-63.
__device__ __forceinline__ uint64_t make_desc(const void* smem) {
  const uint64_t addr = smem_addr(smem);
  return ((addr & 0x3FFFFu) >> 4) | (uint64_t{16 >> 4} << 16) | (uint64_t{1024 >> 4} << 32) | (uint64_t{1} << 62);
}

// Registers the compiler must treat as read and rewritten here: keeps them live (and in place) across an
// asynchronous wgmma that reads or accumulates into them, and keeps their other uses on their side of this point.
template <int N>
__device__ __forceinline__ void fence_operands(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N, int M>
__device__ __forceinline__ void fence_operands(uint32_t (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < M; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
}

// Registers per thread of the executing warpgroup raised / lowered to N (all its threads execute it).
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(N));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}

// The accumulator operand lists of the wgmma wrappers below (d[0..63] / d[0..127], read and written).
#define QB_WGMMA_D64                                                                                                  \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),         \
  "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),              \
  "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),             \
  "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),             \
  "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),             \
  "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),             \
  "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),             \
  "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define QB_WGMMA_D128                                                                                                 \
  QB_WGMMA_D64, "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]),            \
  "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]),             \
  "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]),             \
  "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]),             \
  "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]),          \
  "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]),                   \
  "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]),                   \
  "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]),                   \
  "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

// d[64] += A (64 x 16, K-major, desc_a) * B (16 x 128, stored 128 rows of K: desc_b), fp32 accumulators.
// Fragment of d (per thread of the warpgroup, warp w, lane l): d[4i + 2j + c] is row 16w + l/4 + 8j, column
// 8i + 2(l%4) + c, for i = 0..15, j, c in {0, 1}.
#define QB_WGMMA_M64N128K16(TYPE)                                                                                      \
  asm volatile(                                                                                                       \
      "{\n"                                                                                                           \
      ".reg .pred p;\n"                                                                                              \
      "setp.ne.b32 p, %66, 0;\n"                                                                                     \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " "                                              \
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                     \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                            \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                             \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "                            \
      "%64, %65, p, 1, 1, 0, 0;\n"                                                                                    \
      "}\n"                                                                                                           \
      : QB_WGMMA_D64                                                                                                  \
      : "l"(desc_a), "l"(desc_b), "r"(1))

template <typename Act>
struct Wgmma;
template <typename Act>
struct WgmmaRs;

template <>
struct Wgmma<__half> {
  static __device__ __forceinline__ void m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
    QB_WGMMA_M64N128K16("f16");
  }
};

template <>
struct Wgmma<__nv_bfloat16> {
  static __device__ __forceinline__ void m64n128k16(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
    QB_WGMMA_M64N128K16("bf16");
  }
};

// The same MMA with A from registers (wgmma's "RS" form): a[4] is the warp's 16 x 16 piece of A in mma.m16n8k16's
// A-fragment layout (lane (g, t): a0 = row g, k {2t, 2t+1}; a1 = row g + 8, same k; a2 = row g, k {2t+8, 2t+9};
// a3 = row g + 8, same k; the lower k in the low half), warp w of the warpgroup holding rows 16w .. 16w + 15.
// The registers are read asynchronously: they must not be rewritten before wgmma_wait retires the MMA.
#define QB_WGMMA_M64N128K16_RS(TYPE)                                                                                   \
  asm volatile(                                                                                                       \
      "{\n"                                                                                                           \
      ".reg .pred p;\n"                                                                                              \
      "setp.ne.b32 p, %69, 0;\n"                                                                                     \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " "                                              \
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                     \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                            \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                             \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "                            \
      "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n"                                                                     \
      "}\n"                                                                                                           \
      : QB_WGMMA_D64                                                                                                  \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1))

// m64n256k16, A from registers: d[4i + 2j + c] is row 16w + l/4 + 8j, column 8i + 2(l%4) + c for i = 0..31.
#define QB_WGMMA_M64N256K16_RS(TYPE)                                                                                   \
  asm volatile(                                                                                                       \
      "{\n"                                                                                                           \
      ".reg .pred p;\n"                                                                                              \
      "setp.ne.b32 p, %133, 0;\n"                                                                                    \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " "                                              \
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                                       \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                              \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                              \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                              \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                              \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                              \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "                  \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "             \
      "{%128, %129, %130, %131}, %132, p, 1, 1, 0;\n"                                                                 \
      "}\n"                                                                                                           \
      : QB_WGMMA_D128                                                                                                 \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1))

// mma<N>(d, a, desc_b): the m64nNk16 register-A MMA, N = 128 (d[64]) or 256 (d[128]).
template <>
struct WgmmaRs<__half> {
  static __device__ __forceinline__ void mma(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
    QB_WGMMA_M64N128K16_RS("f16");
  }
  static __device__ __forceinline__ void mma(float (&d)[128], const uint32_t (&a)[4], uint64_t desc_b) {
    QB_WGMMA_M64N256K16_RS("f16");
  }
};

template <>
struct WgmmaRs<__nv_bfloat16> {
  static __device__ __forceinline__ void mma(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
    QB_WGMMA_M64N128K16_RS("bf16");
  }
  static __device__ __forceinline__ void mma(float (&d)[128], const uint32_t (&a)[4], uint64_t desc_b) {
    QB_WGMMA_M64N256K16_RS("bf16");
  }
};

#undef QB_WGMMA_M64N256K16_RS
#undef QB_WGMMA_M64N128K16_RS
#undef QB_WGMMA_D128
#undef QB_WGMMA_D64
#undef QB_WGMMA_M64N128K16

}  // namespace qb::kernels::sm90
