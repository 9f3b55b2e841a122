// The device layouts of the 4-bit formats (nf4, fp4, awq), shared by the kernels, the format code in
// src/quant/ and the standalone benchmark. Host-only, torch-free: plain arrays in, plain arrays out.
//
// Canonical ("flat") codes: the weight W [N, K] (nn.Linear orientation) flattened row-major, two 4-bit
// codes per byte, the EARLIER element in the HIGH nibble (bitsandbytes' order), ceil(N*K/2) bytes:
//   code(e) = e % 2 == 0 ? byte[e/2] >> 4 : byte[e/2] & 15,   e = n*K + k.
// This is exactly bitsandbytes' packed tensor; AWQ's integer weights are re-laid into it at load.
//
// Tiles (the fast path; needs K % 64 == 0): the codes of 16 rows x 64 columns ("a tile chunk") are 512
// bytes, one 16-byte load per lane of a warp, stored [n_tiles][k_chunks][32 lanes][16 bytes] with
// n_tiles = ceil(N/16) (rows past N are zero codes with zero scales). Lane l = 4g + t owns rows g and
// g+8 of the tile and columns [16t, 16t+16) of the chunk: its bytes 0..7 are row g's 8 canonical bytes
// for those columns, bytes 8..15 row g+8's. So every byte is a canonical byte moved, never re-nibbled.
// Why this shape: mma.m16n8k16 wants, in lane (g, t), A rows {g, g+8} at fragment k {2t, 2t+1, 2t+8,
// 2t+9}; a dot product does not care which physical k fills which fragment k as long as x (the B
// fragment) uses the same assignment, so step j (0..3) of the chunk uses the physical columns
// 16t + 4j + {0, 1, 2, 3}: bytes 2j, 2j+1 of each row. x row m then needs x[m][16t .. 16t+16): two
// 16-byte loads per lane per chunk, and the weights one.
//
// Tile scales: one value per (tile, unit, row of the tile), stored [n_tiles][units][8 g][2 h] (row of the tile
// r = g + 8h), where a unit is U = 64 << unit_shift columns of one row (U = the absmax blocksize or the AWQ
// group; a chunk never straddles units because U % 64 == 0 and units are aligned to row starts). Rows g and
// g + 8 sit side by side because lane (g, t) of a warp needs exactly those two: one 8-byte (fp32, awq word)
// or 2-byte (nested code) or 4-byte (16-bit absmax) read. A (tile, unit) record is 16 values: 64 bytes (fp32 / awq),
// 32 (16-bit absmax) or 16 (nested).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#if defined(__CUDACC__)
#define QB_Q4_HOST_DEVICE __host__ __device__
#else
#define QB_Q4_HOST_DEVICE
#endif

namespace qb::kernels {

constexpr int64_t kQ4TileRows = 16;
constexpr int64_t kQ4ChunkCols = 64;
constexpr int64_t kQ4ChunkBytes = 512;

inline int64_t q4_flat_bytes(int64_t N, int64_t K) { return (N * K + 1) / 2; }
inline int64_t q4_n_tiles(int64_t N) { return (N + kQ4TileRows - 1) / kQ4TileRows; }
inline int64_t q4_tile_bytes(int64_t N, int64_t K) { return q4_n_tiles(N) * (K / kQ4ChunkCols) * kQ4ChunkBytes; }

// Offset of a tile byte for canonical row n (any n < n_tiles*16), chunk c, byte pair column p (0..31,
// covering columns 64c + 2p, 64c + 2p + 1).
inline int64_t q4_tile_byte_offset(int64_t n, int64_t c, int64_t p, int64_t k_chunks) {
  const int64_t tile = n / kQ4TileRows, r = n % kQ4TileRows;
  const int64_t g = r % 8, half = r / 8, t = p / 8, b = p % 8;
  const int64_t lane = 4 * g + t;
  return ((tile * k_chunks + c) * 32 + lane) * 16 + half * 8 + b;
}

// Canonical codes (K even, K % 64 == 0) -> tiles. `tiles` holds q4_tile_bytes(N, K) bytes. (The same map as
// a tensor permute: canonical [n_tiles][2 h][8 g][K/64 c][4 t][8 b] -> tiles [n_tiles][c][g][t][h][b], which is
// how the CUDA layers build it on the device; this host loop serves the benchmark and the tests.)
inline void q4_build_tiles(const uint8_t* flat, int64_t N, int64_t K, uint8_t* tiles) {
  const int64_t k_chunks = K / kQ4ChunkCols, row_bytes = K / 2;
  std::memset(tiles, 0, static_cast<size_t>(q4_tile_bytes(N, K)));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < k_chunks; ++c)
      for (int64_t t = 0; t < 4; ++t)  // 8 consecutive canonical bytes -> 8 consecutive tile bytes
        std::memcpy(tiles + q4_tile_byte_offset(n, c, 8 * t, k_chunks), flat + n * row_bytes + 32 * c + 8 * t, 8);
}

// The inverse: tiles -> canonical codes (N*K/2 bytes).
inline void q4_unbuild_tiles(const uint8_t* tiles, int64_t N, int64_t K, uint8_t* flat) {
  const int64_t k_chunks = K / kQ4ChunkCols, row_bytes = K / 2;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < k_chunks; ++c)
      for (int64_t t = 0; t < 4; ++t)
        std::memcpy(flat + n * row_bytes + 32 * c + 8 * t, tiles + q4_tile_byte_offset(n, c, 8 * t, k_chunks), 8);
}

// Index of (row n, unit u) in the tile scale array [n_tiles][units][8][2].
inline int64_t q4_tile_scale_index(int64_t n, int64_t u, int64_t units) {
  const int64_t r = n % kQ4TileRows;
  return (((n / kQ4TileRows) * units + u) * 8 + r % 8) * 2 + r / 8;
}

// Per-(row, unit) values [N][units] -> tile scale order [n_tiles][units][8][2]; padded rows get `pad`.
template <typename T>
std::vector<T> q4_tile_scales(const T* per_row_unit, int64_t N, int64_t units, T pad) {
  std::vector<T> out(static_cast<size_t>(q4_n_tiles(N) * kQ4TileRows * units), pad);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t u = 0; u < units; ++u) out[q4_tile_scale_index(n, u, units)] = per_row_unit[n * units + u];
  return out;
}

// The inverse, for the rows that exist.
template <typename T>
std::vector<T> q4_untile_scales(const T* tiled, int64_t N, int64_t units) {
  std::vector<T> out(static_cast<size_t>(N * units));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t u = 0; u < units; ++u) out[n * units + u] = tiled[q4_tile_scale_index(n, u, units)];
  return out;
}

// Double-quantized absmax (kAbsmaxNested, unit U == blocksize): the (nested absmax, offset) pair of row n at unit u
// is entry (n * units + u) / 256 of the nested array (bitsandbytes' nested blocks of 256 flat absmax blocks).
QB_Q4_HOST_DEVICE inline int64_t q4_nested_index(int64_t n, int64_t units, int64_t u) { return (n * units + u) >> 8; }

// The entries rows [row_begin, row_end) use at unit u: a contiguous run of the nested array, started at an even
// index so that it can be copied in 16-byte pieces (the fused prefill kernel copies it per 64-column step).
struct Q4NestedRun {
  int64_t first, count;
};
QB_Q4_HOST_DEVICE inline Q4NestedRun q4_nested_run(int64_t row_begin, int64_t row_end, int64_t units, int64_t u) {
  const int64_t first = q4_nested_index(row_begin, units, u) & ~int64_t{1};
  return {first, q4_nested_index(row_end - 1, units, u) - first + 1};
}
// An upper bound of q4_nested_run(...).count for any `rows` consecutive rows and any unit: the run spans at most
// (rows - 1) * units / 256 + 1 boundaries, plus its first entry and the even alignment.
QB_Q4_HOST_DEVICE inline int64_t q4_nested_run_bound(int64_t rows, int64_t units) {
  return (rows - 1) * units / 256 + 3;
}

// The awq tile scale word: fp16 scale bits in the low half, the zero point (0..15) in the high half.
inline uint32_t q4_affine_word(uint16_t scale_fp16_bits, uint8_t zero) {
  return static_cast<uint32_t>(scale_fp16_bits) | (static_cast<uint32_t>(zero) << 16);
}

}  // namespace qb::kernels
