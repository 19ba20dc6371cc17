// Small device helpers shared by the kernels: warp sums and
// the mapping of a blend thread block onto the pixels of a tile.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "../include/blend.h"
#include "../include/projection.h"

namespace splat::cuda {

constexpr int THREADS_1D = 256;  // elementwise kernels (projection, SH, binning)
constexpr unsigned FULL_MASK = 0xffffffffu;

inline int blocks_for(int64_t n) { return static_cast<int>((n + THREADS_1D - 1) / THREADS_1D); }

// Sum over the 32 lanes of a warp; the result is valid in lane 0. Every lane
// must call it (blocks are always whole warps).
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ bool lane_zero() { return (threadIdx.x & 31) == 0; }

// ---- blend blocks ----------------------------------------------------------
// A tile of tile_size^2 pixels may be larger than a thread block (tile_size
// goes up to 64), so each tile is split into square sub-blocks of at most
// BLEND_SIDE^2 pixels; grid = (tiles, sub-blocks per tile). Every sub-block
// walks the whole tile's Gaussian list. The block has a whole number of warps
// (warp reductions need all 32 lanes); surplus threads are "outside" pixels.
constexpr int BLEND_SIDE = 16;
constexpr int BLEND_MAX_THREADS = BLEND_SIDE * BLEND_SIDE;

struct BlendLayout {
    int side;            // pixels per sub-block side
    int subs_per_side;   // sub-blocks per tile side
    int threads;         // threads per block, a multiple of 32
};

inline BlendLayout blend_layout(int tile_size) {
    BlendLayout l;
    l.side = tile_size < BLEND_SIDE ? tile_size : BLEND_SIDE;
    l.subs_per_side = (tile_size + l.side - 1) / l.side;
    l.threads = (l.side * l.side + 31) / 32 * 32;
    return l;
}

struct BlendPixel {
    int64_t tile;     // global tile index, camera-major
    int camera;
    bool inside;      // a real pixel of this tile and of the image
    int x, y;         // pixel coordinates in the image
    int64_t pix;      // (camera * height + y) * width + x when inside
};

__device__ __forceinline__ BlendPixel blend_pixel(int tile_size, int tile_width, int tile_height, int width,
                                                  int height, int side, int subs_per_side) {
    BlendPixel p;
    p.tile = blockIdx.x;
    const int64_t per_image = int64_t(tile_width) * tile_height;
    p.camera = static_cast<int>(p.tile / per_image);
    const int rest = static_cast<int>(p.tile % per_image);
    const int sub = blockIdx.y;
    const int local = threadIdx.x;
    const int lx = local % side, ly = local / side;
    const int tx = (sub % subs_per_side) * side + lx;  // inside the tile
    const int ty = (sub / subs_per_side) * side + ly;
    p.x = (rest % tile_width) * tile_size + tx;
    p.y = (rest / tile_width) * tile_size + ty;
    p.inside = local < side * side && tx < tile_size && ty < tile_size && p.x < width && p.y < height;
    p.pix = p.inside ? (int64_t(p.camera) * height + p.y) * width + p.x : 0;
    return p;
}

// The Gaussian fields the blend loops read, staged in shared memory per batch.
struct SharedGaussian {
    int id;        // flatten id c * N + n
    float mx, my;  // mean2d
    Sym2 conic;
    float opacity;
};

__device__ __forceinline__ SharedGaussian load_gaussian(int id, const float* means2d, const float* conics,
                                                       const float* opacities) {
    SharedGaussian s;
    s.id = id;
    s.mx = means2d[int64_t(id) * 2];
    s.my = means2d[int64_t(id) * 2 + 1];
    s.conic = {conics[int64_t(id) * 3], conics[int64_t(id) * 3 + 1], conics[int64_t(id) * 3 + 2]};
    s.opacity = opacities[id];
    return s;
}

}  // namespace splat::cuda
