// Tile binning with one global radix sort:
//   count: tiles each (camera, Gaussian) is listed in (those of its rectangle
//          its alpha >= 1/255 region reaches, blend.h), then an inclusive scan;
//   sort:  one 64-bit key per intersection, (global tile << 32) | depth bits,
//          where global tile = camera * tiles_per_image + tile (so the key is
//          camera | tile | depth), sorted by CUB's stable radix sort; ties in
//          depth keep Gaussian order, exactly like the CPU backend;
//   offsets: start of each tile's run in the sorted list (empty tiles point
//          at the next run, like the CPU backend).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "device.cuh"
#include "launch.h"

namespace splat::cuda {
namespace {

__device__ __forceinline__ TileFootprint gaussian_footprint(const IntersectArgs& a, int64_t i) {
    const Vec2 mean = {a.means2d[i * 2], a.means2d[i * 2 + 1]};
    const TileRect rect = a.radii[i * 2] <= 0 && a.radii[i * 2 + 1] <= 0
                              ? TileRect{0, 0, 0, 0}
                              : tile_rect(mean, a.radii[i * 2], a.radii[i * 2 + 1], a.tile_size, a.tile_width,
                                          a.tile_height);
    if (a.conics == nullptr) return whole_rect_footprint(rect);
    return tile_footprint(rect, mean, {a.conics[i * 3], a.conics[i * 3 + 1], a.conics[i * 3 + 2]}, a.opacities[i]);
}

__global__ void count_kernel(IntersectArgs a, int* tiles_per_gauss, int64_t* counts64) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // c * N + n
    if (i >= a.C * a.N) return;
    const int n = footprint_tile_count(gaussian_footprint(a, i), a.tile_size);
    tiles_per_gauss[i] = n;
    counts64[i] = n;  // scanned in 64 bits: the total may pass 2^31 and must be caught
}

__global__ void keys_kernel(IntersectArgs a, const int64_t* cum, uint64_t* keys, int* ids) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= a.C * a.N) return;
    // start of this Gaussian's keys: the inclusive scan's previous entry (its
    // own count would repeat the reach test of count_kernel)
    int64_t cursor = i == 0 ? 0 : cum[i - 1];
    if (cursor == cum[i]) return;
    const TileFootprint f = gaussian_footprint(a, i);
    const uint64_t tile_base = uint64_t(i / a.N) * uint64_t(a.tile_width) * uint64_t(a.tile_height);
    // depth > near_plane > 0 for rendered Gaussians: bit order == float order
    const uint64_t depth_bits = __float_as_uint(a.depths[i]);
    for_each_footprint_tile(f, a.tile_size, [&](int x, int y) {
        const uint64_t tile = tile_base + uint64_t(y) * a.tile_width + x;
        keys[cursor] = (tile << 32) | depth_bits;
        ids[cursor] = static_cast<int>(i);
        ++cursor;
    });
}

// One thread per sorted intersection k: fills the offsets of the tiles from
// the previous intersection's tile (exclusive) up to its own tile.
__global__ void offsets_kernel(const uint64_t* keys, int64_t M, int64_t n_tiles, int* offsets) {
    const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (k >= M) return;
    const int64_t tile = int64_t(keys[k] >> 32);
    const int64_t prev = k == 0 ? -1 : int64_t(keys[k - 1] >> 32);
    for (int64_t t = prev + 1; t <= tile; ++t) offsets[t] = static_cast<int>(k);
    if (k == M - 1)
        for (int64_t t = tile + 1; t < n_tiles; ++t) offsets[t] = static_cast<int>(M);
}

int bits_for(int64_t n) {  // bits needed for the values 0..n-1
    int b = 0;
    while (b < 63 && (int64_t(1) << b) < n) ++b;
    return b;
}

}  // namespace

// The scan runs in place on `cum`, which first receives the int64 counts.
size_t intersect_count_temp_bytes(int64_t CN) {
    size_t bytes = 0;
    cub::DeviceScan::InclusiveSum(nullptr, bytes, static_cast<int64_t*>(nullptr), static_cast<int64_t*>(nullptr),
                                  static_cast<int>(CN));
    return bytes;
}

cudaError_t intersect_count(const IntersectArgs& a, int* tiles_per_gauss, int64_t* cum, void* temp,
                            size_t temp_bytes, cudaStream_t stream) {
    const int64_t CN = a.C * a.N;
    if (CN == 0) return cudaSuccess;
    count_kernel<<<blocks_for(CN), THREADS_1D, 0, stream>>>(a, tiles_per_gauss, cum);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    return cub::DeviceScan::InclusiveSum(temp, temp_bytes, cum, cum, static_cast<int>(CN), stream);
}

size_t intersect_sort_temp_bytes(int64_t M, int64_t n_tiles) {
    size_t bytes = 0;
    cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const uint64_t*>(nullptr),
                                    static_cast<uint64_t*>(nullptr), static_cast<const int*>(nullptr),
                                    static_cast<int*>(nullptr), static_cast<int>(M), 0, 32 + bits_for(n_tiles));
    return bytes;
}

cudaError_t intersect_sort(const IntersectArgs& a, const int64_t* cum, int64_t M, const IntersectSortBuffers& b,
                           cudaStream_t stream) {
    const int64_t n_tiles = a.C * int64_t(a.tile_width) * a.tile_height;
    if (M == 0) return cudaMemsetAsync(b.isect_offsets, 0, sizeof(int) * n_tiles, stream);
    keys_kernel<<<blocks_for(a.C * a.N), THREADS_1D, 0, stream>>>(a, cum, b.keys_in, b.ids_in);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    // only the bits in use: depth (32) + the highest global tile index
    size_t temp_bytes = b.temp_bytes;  // CUB takes it by reference
    err = cub::DeviceRadixSort::SortPairs(b.temp, temp_bytes, b.keys_in, b.keys_out, b.ids_in,
                                          b.flatten_ids, static_cast<int>(M), 0, 32 + bits_for(n_tiles), stream);
    if (err != cudaSuccess) return err;
    offsets_kernel<<<blocks_for(M), THREADS_1D, 0, stream>>>(b.keys_out, M, n_tiles, b.isect_offsets);
    return cudaGetLastError();
}

}  // namespace splat::cuda
