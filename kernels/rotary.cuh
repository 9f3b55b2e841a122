// rotate_half (the transformers convention) for one dimension, shared by the decode attention kernels.
#pragma once

namespace qb::kernels {

// x its value at a dimension below rotary_dim, partner the value rotary_dim / 2 away (above it in the first half,
// below it in the second); c, s the cos and sin of its frequency.
__device__ __forceinline__ float rotate_half(float x, float partner, bool first_half, float c, float s) {
  return first_half ? x * c - partner * s : x * c + partner * s;
}

}  // namespace qb::kernels
