// Tile binning in depth order, without a per-intersection sort:
//   1. each Gaussian's tile rectangle (parallel over Gaussians);
//   2. the rendered Gaussians sorted once by (depth, index): a stable radix
//      sort on the depth's bits (depth > 0, so bit order == float order);
//   3. a counting sort by tile over that order: every thread bins a
//      contiguous range of it, so each tile's list comes out front to back,
//      the same whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "../include/blend.h"
#include "ops.h"

namespace splat::cpu {
namespace {

// The indices i with keep[i], stably sorted by keys[i] (LSD radix, 8 bits per
// pass; a pass in which every key has the same byte is skipped).
std::vector<int32_t> stable_sort_by_key(const std::vector<uint32_t>& keys, const std::vector<uint8_t>& keep) {
    std::vector<int32_t> order, spare;
    for (int32_t i = 0; i < int32_t(keys.size()); ++i)
        if (keep[i]) order.push_back(i);
    spare.resize(order.size());
    for (int shift = 0; shift < 32; shift += 8) {
        std::array<int64_t, 257> start{};
        for (int32_t i : order) ++start[((keys[i] >> shift) & 0xff) + 1];
        if (std::any_of(start.begin(), start.end(), [&](int64_t c) { return c == int64_t(order.size()); }))
            continue;  // one bucket holds everything: this byte is the same for all keys
        for (int b = 0; b < 256; ++b) start[b + 1] += start[b];
        for (int32_t i : order) spare[start[(keys[i] >> shift) & 0xff]++] = i;
        order.swap(spare);
    }
    return order;
}

}  // namespace

std::vector<Tensor> intersect_tiles(const Tensor& means2d, const Tensor& radii, const Tensor& depths,
                                    int64_t tile_size, int64_t tile_width, int64_t tile_height) {
    const int64_t C = depths.size(0), N = depths.size(1), CN = C * N;
    const int64_t tiles_per_image = tile_width * tile_height, n_tiles = C * tiles_per_image;
    const float *m2 = means2d.data_ptr<float>(), *dep = depths.data_ptr<float>();
    const int* rad = radii.data_ptr<int>();

    Tensor tiles_per_gauss = torch::zeros({C, N}, radii.options());
    int* counts = tiles_per_gauss.data_ptr<int>();
    std::vector<TileRect> rects(CN);
    std::vector<uint32_t> depth_bits(CN);
    std::vector<uint8_t> binned(CN);
    const int threads = threads_for(CN, 15.0);

#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < CN; ++i) {
        rects[i] = {0, 0, 0, 0};
        binned[i] = 0;
        std::memcpy(&depth_bits[i], dep + i, 4);
        if (rad[i * 2] <= 0 && rad[i * 2 + 1] <= 0) continue;
        rects[i] = tile_rect({m2[i * 2], m2[i * 2 + 1]}, rad[i * 2], rad[i * 2 + 1], int(tile_size),
                             int(tile_width), int(tile_height));
        counts[i] = (rects[i].x1 - rects[i].x0) * (rects[i].y1 - rects[i].y0);
        binned[i] = counts[i] > 0;
    }
    const std::vector<int32_t> order = stable_sort_by_key(depth_bits, binned);
    const int64_t n_order = order.size();

    // One histogram per chunk of the order, over the global tile index (camera-major).
    std::vector<int64_t> hist(int64_t(threads) * n_tiles + 1, 0);
    auto chunk = [&](int t) {
        int64_t per = (n_order + threads - 1) / threads;
        return std::make_pair(std::min(n_order, t * per), std::min(n_order, (t + 1) * per));
    };
    // one chunk per iteration: every chunk is binned even if OpenMP grants fewer threads
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        auto [begin, end] = chunk(t);
        int64_t* h = hist.data() + int64_t(t) * n_tiles;
        for (int64_t j = begin; j < end; ++j) {
            const int64_t i = order[j];
            const TileRect& r = rects[i];
            int64_t base = (i / N) * tiles_per_image;
            for (int y = r.y0; y < r.y1; ++y)
                for (int x = r.x0; x < r.x1; ++x) ++h[base + y * tile_width + x];
        }
    }
    // Exclusive scan in (tile, chunk) order gives each chunk its write cursors.
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
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        auto [begin, end] = chunk(t);
        int64_t* cursor = hist.data() + int64_t(t) * n_tiles;
        for (int64_t j = begin; j < end; ++j) {
            const int64_t i = order[j];
            const TileRect& r = rects[i];
            int64_t base = (i / N) * tiles_per_image;
            for (int y = r.y0; y < r.y1; ++y)
                for (int x = r.x0; x < r.x1; ++x) ids[cursor[base + y * tile_width + x]++] = int(i);
        }
    }
    return {tiles_per_gauss, offsets, flatten_ids};
}

}  // namespace splat::cpu
