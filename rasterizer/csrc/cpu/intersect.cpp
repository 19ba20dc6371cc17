// Tile binning and per-tile depth sort, without a global sort:
//   1. each Gaussian's tile rectangle (parallel over Gaussians);
//   2. a counting sort by tile: every thread bins a contiguous range of
//      Gaussians, so each tile's list comes out in Gaussian order whatever
//      the thread count;
//   3. each tile's list sorted by (depth, Gaussian id) (parallel over tiles).
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "../include/blend.h"
#include "ops.h"

namespace splat::cpu {

std::vector<Tensor> intersect_tiles(const Tensor& means2d, const Tensor& radii, const Tensor& depths,
                                    int64_t tile_size, int64_t tile_width, int64_t tile_height) {
    const int64_t C = depths.size(0), N = depths.size(1), CN = C * N;
    const int64_t tiles_per_image = tile_width * tile_height, n_tiles = C * tiles_per_image;
    const float *m2 = means2d.data_ptr<float>(), *dep = depths.data_ptr<float>();
    const int* rad = radii.data_ptr<int>();

    Tensor tiles_per_gauss = torch::zeros({C, N}, radii.options());
    int* counts = tiles_per_gauss.data_ptr<int>();
    std::vector<TileRect> rects(CN);
    const int threads = num_threads();

#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < CN; ++i) {
        if (rad[i * 2] <= 0 && rad[i * 2 + 1] <= 0) {
            rects[i] = {0, 0, 0, 0};
            continue;
        }
        rects[i] = tile_rect({m2[i * 2], m2[i * 2 + 1]}, rad[i * 2], rad[i * 2 + 1], int(tile_size),
                             int(tile_width), int(tile_height));
        counts[i] = (rects[i].x1 - rects[i].x0) * (rects[i].y1 - rects[i].y0);
    }

    // Per-thread histograms over the global tile index (camera-major).
    std::vector<int64_t> hist(int64_t(threads) * n_tiles + 1, 0);
    auto chunk = [&](int t) {
        int64_t per = (CN + threads - 1) / threads;
        return std::make_pair(std::min(CN, t * per), std::min(CN, (t + 1) * per));
    };
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        auto [begin, end] = chunk(t);
        int64_t* h = hist.data() + int64_t(t) * n_tiles;
        for (int64_t i = begin; i < end; ++i) {
            const TileRect& r = rects[i];
            int64_t base = (i / N) * tiles_per_image;
            for (int y = r.y0; y < r.y1; ++y)
                for (int x = r.x0; x < r.x1; ++x) ++h[base + y * tile_width + x];
        }
    }
    // Exclusive scan in (tile, thread) order gives each thread its write cursor.
    Tensor offsets = torch::empty({C, tile_height, tile_width}, radii.options());
    int* off = offsets.data_ptr<int>();
    int64_t total = 0;
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
        off[tile] = int(total);
        for (int t = 0; t < threads; ++t) {
            int64_t n = hist[int64_t(t) * n_tiles + tile];
            hist[int64_t(t) * n_tiles + tile] = total;
            total += n;
        }
    }
    Tensor flatten_ids = torch::empty({total}, radii.options());
    int* ids = flatten_ids.data_ptr<int>();
    std::vector<uint64_t> keys(total);
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num();
        auto [begin, end] = chunk(t);
        int64_t* cursor = hist.data() + int64_t(t) * n_tiles;
        for (int64_t i = begin; i < end; ++i) {
            const TileRect& r = rects[i];
            int64_t base = (i / N) * tiles_per_image;
            uint32_t depth_bits;
            std::memcpy(&depth_bits, dep + i, 4);  // depth > 0: bit order == float order
            uint64_t key = (uint64_t(depth_bits) << 32) | uint64_t(i);
            for (int y = r.y0; y < r.y1; ++y)
                for (int x = r.x0; x < r.x1; ++x) keys[cursor[base + y * tile_width + x]++] = key;
        }
    }
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
    for (int64_t tile = 0; tile < n_tiles; ++tile) {
        int64_t begin = off[tile], end = tile + 1 < n_tiles ? off[tile + 1] : total;
        std::sort(keys.begin() + begin, keys.begin() + end);
        for (int64_t k = begin; k < end; ++k) ids[k] = int(keys[k] & 0xffffffffu);
    }
    return {tiles_per_gauss, offsets, flatten_ids};
}

}  // namespace splat::cpu
