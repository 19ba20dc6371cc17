// Tile binning in depth order, without a per-intersection sort:
//   1. each Gaussian's tiles: those of its rectangle its alpha >= 1/255
//      region reaches (blend.h, TileFootprint), tested a block of Gaussians per
//      vector (parallel over Gaussians);
//   2. the drawn Gaussians sorted once by (depth, index): a stable radix
//      sort on the depth's bits (depth > 0, so bit order == float order),
//      on one thread while the others run step 1;
//   3. a counting sort by tile over that order: every thread bins a
//      contiguous range of it, so each tile's list comes out front to back,
//      the same whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "../include/blend.h"
#include "lanes.h"
#include "ops.h"

namespace splat::cpu {
namespace {

// The drawn Gaussians (a radius > 0) stably sorted by depth (> 0, so its
// bits sort as the float does): LSD radix, 8 bits per pass, on (key, index)
// pairs so that every pass reads its input in order (an index-only sort that
// looked keys up read them at random: 3x slower). The histograms of all four
// bytes come from one pass; a byte that is the same for every key (often the
// exponent's) costs no pass.
std::vector<int32_t> sort_drawn_by_depth(const float* depths, const int* radii, int64_t n_gaussians) {
    struct KeyIndex {
        uint32_t key;
        int32_t index;
    };
    std::vector<KeyIndex> items, spare;
    items.reserve(n_gaussians);
    for (int32_t i = 0; i < int32_t(n_gaussians); ++i) {
        if (radii[i * 2] <= 0 && radii[i * 2 + 1] <= 0) continue;
        uint32_t key;
        std::memcpy(&key, depths + i, 4);
        items.push_back({key, i});
    }
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

// A Gaussian's tiles in the binning passes: its rectangle, in tile rows
// counted over all cameras (camera c's are c * tile_height + [0,
// tile_height), so a tile's global index is y * tile_width + x), and, for
// rectangles of up to 64 tiles (nearly all), the reached ones as bits,
// column-major in the rectangle: the reach test runs once per Gaussian, not
// once per pass.
struct BinnedTiles {
    TileRect rect;
    uint64_t bits;  // 0 with a non-empty rectangle: larger than 64 tiles, test again
};

constexpr int MAX_BITS = 64;

// The reached-tile bits of a block of Gaussians at once, one per vector lane,
// for rectangles of up to 32 tiles (the others get 0): the scalar test costs
// 20-30 ns per Gaussian, more than the blend saves on small rectangles.
// The test is tile_min_sigma (blend.h) on vectors, as in tile_reached. A
// block is one register (16 lanes with AVX-512, 8 with AVX2, 4 with SSE):
// wider vectors live on the stack (blend.cpp, strip_lanes).
constexpr int BLOCK = int(REGISTER_BYTES / sizeof(float));
constexpr int BLOCK_MAX_AREA = 32;
using BlockF = Lanes<BLOCK>::F;

// f: rect, mean and conic set; fills in the rest (as tile_footprint does).
void reached_bits_block(TileFootprint (&f)[BLOCK], const float* opacities, int tile_size,
                        uint64_t (&bits_out)[BLOCK]) {
    using I = Lanes<BLOCK>::I;
    BlockF a, b, c, mx, my, opacity, x0, y0, h, area;
    int max_area = 0;
    for (int l = 0; l < BLOCK; ++l) {
        const TileRect& r = f[l].rect;
        const EllipseReach<float>& e = f[l].ellipse;
        a[l] = e.a, b[l] = e.b, c[l] = e.c, mx[l] = e.mean_x, my[l] = e.mean_y, opacity[l] = opacities[l];
        x0[l] = float(r.x0), y0[l] = float(r.y0), h[l] = float(r.y1 - r.y0);
        const int n = (r.x1 - r.x0) * (r.y1 - r.y0);
        area[l] = float(n);
        if (n <= BLOCK_MAX_AREA) max_area = std::max(max_area, n);
    }
    const EllipseReach<BlockF> e = ellipse_reach(a, b, c, mx, my, opacity);
    for (int l = 0; l < BLOCK; ++l)  // the conic and center are there already
        f[l].ellipse.v_per_u = e.v_per_u[l], f[l].ellipse.u_per_v = e.u_per_v[l], f[l].ellipse.reach = e.reach[l];
    I bits = I{};
    for (int t = 0; t < max_area; ++t) {  // tile t of each rectangle, column-major
        const BlockF col = to_float_lanes(to_int_lanes((float(t) + 0.5f) / h)), row = float(t) - col * h;
        const BlockF sigma = tile_min_sigma(e, x0 + col, y0 + row, float(tile_size));
        bits |= ~(sigma > e.reach) & (float(t) < area) & int32_t(uint32_t(1) << t);
    }
    for (int l = 0; l < BLOCK; ++l) bits_out[l] = area[l] <= BLOCK_MAX_AREA ? uint32_t(bits[l]) : 0;
}

// visit(x, y) for each reached tile of one Gaussian's rectangle, BLOCK tiles
// per vector: for rectangles too large for a block.
template <typename Visit>
void for_each_reached_tile(const TileFootprint& f, int tile_size, Visit&& visit) {
    const TileRect& r = f.rect;
    const int h = r.y1 - r.y0, area = (r.x1 - r.x0) * h;
    const EllipseReach<float>& s = f.ellipse;
    if (s.reach >= 1e30f) {  // no test: the whole rectangle
        for (int x = r.x0; x < r.x1; ++x)
            for (int y = r.y0; y < r.y1; ++y) visit(x, y);
        return;
    }
    const float hf = float(h);
    const BlockF zero = {};
    const EllipseReach<BlockF> e = {zero + s.a,       zero + s.b,       zero + s.c,       zero + s.mean_x,
                                    zero + s.mean_y,  zero + s.v_per_u, zero + s.u_per_v, zero + s.reach};
    for (int t0 = 0; t0 < area; t0 += BLOCK) {
        const BlockF t = Lanes<BLOCK>::index() + float(t0);
        const BlockF col = to_float_lanes(to_int_lanes((t + 0.5f) / hf)), row = t - col * hf;
        const BlockF sigma = tile_min_sigma(e, float(r.x0) + col, float(r.y0) + row, float(tile_size));
        const auto hit = ~(sigma > e.reach) & (t < float(area));
        for (int l = 0; l < BLOCK; ++l)
            if (hit[l]) visit(r.x0 + int(col[l]), r.y0 + int(row[l]));
    }
}

// Bit k of a rectangle h tiles high is the tile at column k / h, row k % h:
// looked up, so that the binning passes walk the set bits in one loop (a loop
// over columns with one over each column's bits mispredicted its exits).
struct BitPlaces {
    uint8_t column[MAX_BITS], row[MAX_BITS];
};
const std::array<BitPlaces, MAX_BITS + 1> BIT_PLACES = [] {
    std::array<BitPlaces, MAX_BITS + 1> places{};
    for (int h = 1; h <= MAX_BITS; ++h)
        for (int k = 0; k < MAX_BITS; ++k) places[h].column[k] = uint8_t(k / h), places[h].row[k] = uint8_t(k % h);
    return places;
}();

// visit(global tile index) for each reached tile of b, column by column;
// large(visit) does it for a rectangle too large for the bits.
template <typename Large, typename Visit>
void for_each_binned_tile(const BinnedTiles& b, int64_t tile_width, Large&& large, Visit&& visit) {
    if (b.bits == 0) return b.rect.x0 == b.rect.x1 ? void() : large(visit);  // no tiles, or too many for bits
    const TileRect& r = b.rect;
    const BitPlaces& places = BIT_PLACES[r.y1 - r.y0];
    const int64_t first = r.y0 * tile_width + r.x0;
    for (uint64_t bits = b.bits; bits; bits &= bits - 1) {
        const int k = __builtin_ctzll(bits);
        visit(first + places.row[k] * tile_width + places.column[k]);
    }
}

}  // namespace

std::vector<Tensor> intersect_tiles(const Tensor& means2d, const Tensor& radii, const Tensor& depths,
                                    const Tensor& conics, const Tensor& opacities, int64_t tile_size,
                                    int64_t tile_width, int64_t tile_height) {
    const int64_t C = depths.size(0), N = depths.size(1), CN = C * N;
    const int64_t tiles_per_image = tile_width * tile_height, n_tiles = C * tiles_per_image;
    const float *m2 = means2d.data_ptr<float>(), *dep = depths.data_ptr<float>();
    const int* rad = radii.data_ptr<int>();
    // empty conics / opacities: no reach test, whole rectangles (gsplat's lists)
    const bool cull = conics.numel() > 0;
    const float* q = cull ? conics.data_ptr<float>() : nullptr;
    const float* op = cull ? opacities.data_ptr<float>() : nullptr;
    const int ts = int(tile_size);

    Tensor tiles_per_gauss = torch::empty({C, N}, radii.options());  // every entry written below
    int* counts = tiles_per_gauss.data_ptr<int>();
    // Gaussian i's rectangle, mean and conic (no reach test yet: whole rectangle)
    auto placed = [&](int64_t i) {
        const Vec2 mean = {m2[i * 2], m2[i * 2 + 1]};
        TileFootprint f = whole_rect_footprint(tile_rect(mean, rad[i * 2], rad[i * 2 + 1], ts, int(tile_width), int(tile_height)));
        f.ellipse.mean_x = mean.x, f.ellipse.mean_y = mean.y;
        if (cull) f.ellipse.a = q[i * 3], f.ellipse.b = q[i * 3 + 1], f.ellipse.c = q[i * 3 + 2];
        return f;
    };
    auto footprint = [&](int64_t i) {
        const TileFootprint f = placed(i);
        const EllipseReach<float>& e = f.ellipse;
        return cull ? tile_footprint(f.rect, {e.mean_x, e.mean_y}, {e.a, e.b, e.c}, op[i]) : f;
    };
    // visit(global tile index) for each reached tile of Gaussian i, from
    // scratch: for rectangles of more than 64 tiles, in every pass
    auto visit_large = [&](int64_t i, auto&& visit) {
        const int64_t row0 = i / N * tile_height;
        for_each_reached_tile(footprint(i), ts, [&](int x, int y) { visit((row0 + y) * tile_width + x); });
    };
    std::vector<BinnedTiles> tiles(CN);
    std::vector<int32_t> order;  // the drawn Gaussians front to back
    const int threads = threads_for(CN, 15.0);

    // In blocks of BLOCK Gaussians, the reach test vectorized over a block; a
    // Gaussian's block (and so its code path) does not depend on the threads.
    // The depth sort needs only depths and radii, so one thread runs it while
    // the others start on the blocks, which it joins after (intersection on
    // (a) at 2 threads 1.11x, against the sort after the blocks).
    const int64_t n_blocks = (CN + BLOCK - 1) / BLOCK;
#pragma omp parallel num_threads(threads)
    {
#pragma omp single nowait
        order = sort_drawn_by_depth(dep, rad, CN);
#pragma omp for schedule(dynamic, 64)
        for (int64_t block = 0; block < n_blocks; ++block) {
            const int64_t i0 = block * BLOCK, n = std::min<int64_t>(BLOCK, CN - i0);
            const bool vector = cull && n == BLOCK;
            TileFootprint f[BLOCK];
            uint64_t bits[BLOCK] = {};
            for (int l = 0; l < BLOCK; ++l) {
                const int64_t i = i0 + l;
                const bool drawn = l < n && (rad[i * 2] > 0 || rad[i * 2 + 1] > 0);
                // in a vector block, reached_bits_block does the rest of the footprint
                f[l] = !drawn ? whole_rect_footprint({0, 0, 0, 0}) : vector ? placed(i) : footprint(i);
            }
            if (vector) reached_bits_block(f, op + i0, ts, bits);
            for (int l = 0; l < n; ++l) {
                const int64_t i = i0 + l;
                const TileRect& r = f[l].rect;
                const int area = (r.x1 - r.x0) * (r.y1 - r.y0), row0 = int(i / N * tile_height);
                tiles[i] = {{r.x0, r.y0 + row0, r.x1, r.y1 + row0}, 0};
                if (area == 0) {
                    counts[i] = 0;
                } else if (area > MAX_BITS) {  // bits 0: the same test again when binned
                    int count = 0;
                    visit_large(i, [&](int64_t) { ++count; });
                    counts[i] = count;
                } else {
                    if (vector && area <= BLOCK_MAX_AREA) {
                        tiles[i].bits = bits[l];
                    } else {
                        for_each_reached_tile(f[l], ts, [&](int x, int y) {
                            tiles[i].bits |= uint64_t(1) << ((x - r.x0) * (r.y1 - r.y0) + (y - r.y0));
                        });
                    }
                    counts[i] = __builtin_popcountll(tiles[i].bits);
                }
                if (counts[i] == 0) tiles[i].rect = {0, 0, 0, 0};  // no tile to visit in the passes below
            }
        }
    }
    const int64_t n_order = order.size();
    // The tiles in depth order: one pass at random here, so that the two
    // binning passes below read in order.
    std::vector<BinnedTiles> sorted(n_order);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t j = 0; j < n_order; ++j) sorted[j] = tiles[order[j]];

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
            auto bin = [&](int64_t tile) { ++h[tile]; };
            for_each_binned_tile(sorted[j], tile_width, [&](auto&& visit) { visit_large(i, visit); }, bin);
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
            const int id = order[j];
            auto write = [&](int64_t tile) { ids[cursor[tile]++] = id; };
            for_each_binned_tile(sorted[j], tile_width, [&](auto&& visit) { visit_large(id, visit); }, write);
        }
    }
    return {tiles_per_gauss, offsets, flatten_ids};
}

}  // namespace splat::cpu
