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
#include <utility>

#include "../include/blend.h"
#include "ops.h"

namespace splat::cpu {
namespace {

// The indices i with keep[i], stably sorted by keys[i]: LSD radix, 8 bits per
// pass, on (key, index) pairs so that every pass reads its input in order (an
// index-only sort that looked keys up read them at random: 3x slower). The
// histograms of all four bytes come from one pass; a byte that is the same
// for every key (often the exponent's) costs no pass.
std::vector<int32_t> stable_sort_by_key(const std::vector<uint32_t>& keys, const std::vector<uint8_t>& keep) {
    struct KeyIndex {
        uint32_t key;
        int32_t index;
    };
    std::vector<KeyIndex> items, spare;
    items.reserve(keys.size());
    for (int32_t i = 0; i < int32_t(keys.size()); ++i)
        if (keep[i]) items.push_back({keys[i], i});
    const int64_t n = int64_t(items.size());
    spare.resize(n);
    std::array<std::array<int64_t, 256>, 4> counts{};
    for (const KeyIndex& e : items)
        for (int b = 0; b < 4; ++b) ++counts[b][(e.key >> (8 * b)) & 0xff];
    for (int b = 0; b < 4; ++b) {
        std::array<int64_t, 256>& start = counts[b];
        if (std::any_of(start.begin(), start.end(), [&](int64_t c) { return c == n; })) continue;
        int64_t total = 0;
        for (int64_t& c : start) total += std::exchange(c, total);  // exclusive scan
        for (const KeyIndex& e : items) spare[start[(e.key >> (8 * b)) & 0xff]++] = e;
        items.swap(spare);
    }
    std::vector<int32_t> order(n);
    for (int64_t j = 0; j < n; ++j) order[j] = items[j].index;
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
    // Tile rectangles with rows counted over all cameras (camera c's tile rows
    // are c * tile_height + [0, tile_height)), so that a tile's global index is
    // y * tile_width + x.
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
        TileRect r = tile_rect({m2[i * 2], m2[i * 2 + 1]}, rad[i * 2], rad[i * 2 + 1], int(tile_size),
                               int(tile_width), int(tile_height));
        counts[i] = (r.x1 - r.x0) * (r.y1 - r.y0);
        binned[i] = counts[i] > 0;
        const int row0 = int(i / N * tile_height);
        rects[i] = {r.x0, r.y0 + row0, r.x1, r.y1 + row0};
    }
    const std::vector<int32_t> order = stable_sort_by_key(depth_bits, binned);
    const int64_t n_order = order.size();
    // The rectangles in depth order: one pass at random here, so that the two
    // binning passes below read in order.
    std::vector<TileRect> sorted(n_order);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t j = 0; j < n_order; ++j) sorted[j] = rects[order[j]];

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
            const TileRect& r = sorted[j];
            for (int y = r.y0; y < r.y1; ++y)
                for (int x = r.x0; x < r.x1; ++x) ++h[y * tile_width + x];
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
            const TileRect& r = sorted[j];
            const int id = order[j];
            for (int y = r.y0; y < r.y1; ++y)
                for (int x = r.x0; x < r.x1; ++x) ids[cursor[y * tile_width + x]++] = id;
        }
    }
    return {tiles_per_gauss, offsets, flatten_ids};
}

}  // namespace splat::cpu
