// Front-to-back blending on the CPU, one tile per task (OpenMP, dynamic).
//
// Inside a tile the loops run Gaussian by Gaussian over rows of pixels, one
// vector per row (lanes.h: 16 float lanes = one AVX-512 register for the
// default 16-pixel tiles), branch-free, with the per-Gaussian sums kept in
// registers across rows. Rows outside a Gaussian's alpha >= 1/255 extent are
// skipped; pixels outside the image are marked done (forward) or have no
// contributions (backward).
//
// Determinism: each intersection (tile, Gaussian) is owned by one task, which
// writes its per-intersection sums; they are reduced per Gaussian in
// intersection order afterwards (threads split the Gaussians, not the list),
// so results never depend on the thread count.
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "../include/blend.h"
#include "lanes.h"
#include "ops.h"

namespace splat::cpu {
namespace {

// Per-Gaussian values packed in one row each (mean x, mean y, conic a, b, c,
// opacity, extent x, extent y, colors...): tiles visit Gaussians in depth
// order, i.e. at random, so one cache line per visit instead of four arrays;
// the alpha >= 1/255 extent is computed once per Gaussian, not per tile.
constexpr int PACK_HEADER = 8;

// Rows padded to whole 64-byte cache lines (one line for up to 8 channels).
inline int64_t pack_stride(int64_t D) { return (PACK_HEADER + D + 15) / 16 * 16; }

// Uninitialized, aligned for the widest row vector (64 lanes = 256 bytes); an
// unlucky malloc alignment once cost the backward pass 15 %.
struct AlignedFloats {
    static constexpr int64_t ALIGN = 256;
    std::unique_ptr<float[], void (*)(void*)> data;
    explicit AlignedFloats(int64_t n) : data(nullptr, std::free) {
        const int64_t bytes = (std::max<int64_t>(n, 1) * 4 + ALIGN - 1) / ALIGN * ALIGN;
        data.reset(static_cast<float*>(std::aligned_alloc(ALIGN, bytes)));
        if (!data) throw std::bad_alloc();
    }
};

struct BlendInputs {
    const float* packed;                // [C*N, PACK_HEADER + D]
    const int *offsets, *ids;           // [n_tiles], [M]
    int64_t D, M, n_tiles, tile_width, tile_height, tile_size, width, height;

    int64_t tile_end(int64_t tile) const { return tile + 1 < n_tiles ? offsets[tile + 1] : M; }
    int64_t stride() const { return pack_stride(D); }
    const float* gaussian(int64_t g) const { return packed + g * stride(); }
};

// Tiles visit Gaussians in depth order, i.e. at random in `packed`. The
// forward pass copies a chunk of the tile's list into a small contiguous
// buffer first: the copy keeps many independent cache misses in flight, and
// the blend loop, whose iterations depend on each other, then reads from L1.
// (With a software prefetch a few entries ahead, the forward pass spent a
// quarter of its time waiting for the first load of each Gaussian.)
constexpr int64_t CHUNK = 64;

// Rows of intersections [k0, k1) of the tile's list, in list order, into dst;
// the first lines of the next chunk's rows (up to `end`) are prefetched, to
// arrive while this chunk is blended.
void gather_chunk(const BlendInputs& in, int64_t k0, int64_t k1, int64_t end, float* dst) {
    const int64_t S = in.stride();
    for (int64_t k = k0; k < k1; ++k) {
        const float* src = in.gaussian(in.ids[k]);
        float* row = dst + (k - k0) * S;
        for (int64_t j = 0; j < S; j += 16) std::memcpy(row + j, src + j, 64);  // one cache line, inlined
    }
    for (int64_t k = k1; k < std::min(end, k1 + CHUNK); ++k) __builtin_prefetch(in.gaussian(in.ids[k]));
}

// The packed rows [C*N * stride] as a tensor (aligned like AlignedFloats):
// the forward pass hands them to the backward pass, which would otherwise
// pack the same rows again.
Tensor pack_gaussians(const Tensor& means2d, const Tensor& conics, const Tensor& colors, const Tensor& opacities) {
    const int64_t CN = colors.size(0) * colors.size(1), D = colors.size(2), S = pack_stride(D);
    const float *m = means2d.data_ptr<float>(), *q = conics.data_ptr<float>();
    const float *c = colors.data_ptr<float>(), *o = opacities.data_ptr<float>();
    AlignedFloats rows(CN * S);
    float* packed = rows.data.get();
    at::parallel_for(0, CN, grain_for(CN, 5.0), [&](int64_t begin, int64_t end) {
        // the extents first, a block at a time: apart from the rows' scattered
        // writes their loop vectorizes (packing 100k Gaussians 1.1-1.7x, the
        // blend forward 1.09-1.11x)
        constexpr int64_t BLOCK = 64;
        float ex[BLOCK], ey[BLOCK];
        for (int64_t g0 = begin; g0 < end; g0 += BLOCK) {
            const int64_t n = std::min(BLOCK, end - g0);
            for (int64_t j = 0; j < n; ++j) {
                const int64_t g = g0 + j;
                const Vec2 ext = alpha_extent({q[g * 3], q[g * 3 + 1], q[g * 3 + 2]}, o[g]);
                ex[j] = ext.x, ey[j] = ext.y;
            }
            for (int64_t j = 0; j < n; ++j) {
                const int64_t g = g0 + j;
                float* row = packed + g * S;
                row[0] = m[g * 2], row[1] = m[g * 2 + 1];
                row[2] = q[g * 3], row[3] = q[g * 3 + 1], row[4] = q[g * 3 + 2];
                row[5] = o[g];
                row[6] = ex[j], row[7] = ey[j];
                for (int64_t ch = 0; ch < D; ++ch) row[PACK_HEADER + ch] = c[g * D + ch];
            }
        }
    });
    return torch::from_blob(rows.data.release(), {CN * S}, [](void* p) { std::free(p); }, colors.options());
}

struct TileGeometry {
    int camera, x0, y0, width, height;  // pixel origin and size inside the image
};

// The pixels of a tile's strip: columns [strip_x, strip_x + lanes) of the tile
// (the whole tile when it is at most `lanes` wide; see strip_lanes). Width <= 0:
// the strip lies past the image's right edge.
TileGeometry strip_geometry(const BlendInputs& in, int64_t tile, int strip_x, int lanes) {
    int64_t per_image = in.tile_width * in.tile_height;
    int camera = int(tile / per_image);
    int64_t rest = tile % per_image;
    int x0 = int((rest % in.tile_width) * in.tile_size) + strip_x, y0 = int((rest / in.tile_width) * in.tile_size);
    int width = int(std::min<int64_t>({in.tile_size - strip_x, lanes, in.width - x0}));
    return {camera, x0, y0, width, int(std::min<int64_t>(in.tile_size, in.height - y0))};
}

int64_t pixel_index(const BlendInputs& in, const TileGeometry& t, int r, int i) {
    return (int64_t(t.camera) * in.height + t.y0 + r) * in.width + t.x0 + i;
}

// Pixel rows [r0, r1] of the tile that can see the Gaussian (empty if r0 > r1),
// from its alpha >= 1/255 half-extent in y. (GCC left it a call in the
// backward pass: inlined, blend backward 1.04-1.08x.)
[[gnu::always_inline]] inline std::pair<int, int> visible_rows(float mean_y, float ext, const TileGeometry& t) {
    float lo = std::ceil(mean_y - ext - t.y0 - 0.5f), hi = std::floor(mean_y + ext - t.y0 - 0.5f);
    return {int(std::max(lo, 0.f)), int(std::min(hi, float(t.height - 1)))};
}

// Can the Gaussian's alpha >= 1/255 half-extent in x reach a pixel center of
// the strip? Strips narrower than the tile (AVX2: two per 16-pixel tile) see
// a third of their Gaussians' rows from one that lies beside them (NaN: yes).
[[gnu::always_inline]] inline bool reaches_columns(float mean_x, float ext, const TileGeometry& t) {
    return !(mean_x + ext < t.x0 + 0.5f) && !(mean_x - ext > t.x0 + t.width - 0.5f);
}

// sigma (blend.h, gaussian_sigma) over a strip for one Gaussian, as
// 0.5 a dx^2 + 0.5 c dy^2 + b dx dy: the dx terms per lane (pixel column),
// once per visit. ROWS_IN_LANES (W >= the tile's rows): the dy terms too, row
// r in lane r, and a row picks its own out by a permute; otherwise a row
// computes them as floats, the same operations on the same values. The rows'
// sigmas come from RowSigmaSteps below, which starts from at(r); the backward
// pass also reads row_dy. (Kept apart from RowSigmaSteps: one class holding
// both measured 0.91-0.96x in the forward pass.)
template <int W, bool ROWS_IN_LANES>
struct RowSigma {
    using F = typename Lanes<W>::F;
    F half_a_dx2, b_dx;  // per lane
    F dy, half_c_dy2;    // ROWS_IN_LANES: lane r: row r
    float mean_y, y_center, half_c;  // otherwise: row r's center is r + y_center
    RowSigma(Sym2 q, F dx, float mean_y, float y_center)
        : half_a_dx2(0.5f * q.a * dx * dx), b_dx(q.b * dx), mean_y(mean_y), y_center(y_center), half_c(0.5f * q.c) {
        if constexpr (ROWS_IN_LANES) {
            dy = mean_y - (Lanes<W>::index() + y_center);
            half_c_dy2 = half_c * dy * dy;
        }
    }
    F row_dy(int r) const {
        if constexpr (ROWS_IN_LANES) return Lanes<W>::broadcast(dy, r);
        else return F{} + (mean_y - (float(r) + y_center));
    }
    F at(int r) const {
        if constexpr (ROWS_IN_LANES) {
            return (half_a_dx2 + Lanes<W>::broadcast(half_c_dy2, r)) + b_dx * row_dy(r);
        } else {
            const float d = mean_y - (float(r) + y_center);
            return (half_a_dx2 + half_c * d * d) + b_dx * d;
        }
    }
};

// sigma of rows r0, r0 + 1, ... in turn, by differences: one row down, dy
// drops by 1, so sigma changes by delta = -b dx - c (dy - 1/2), and delta by
// c. The next row's sigma is then one add away, ready long before its row
// starts, where computing it took the head of each row's chain (permute, add,
// FMA): the blend forward 1.07-1.14x. The loops are bound by how long each
// row's instructions stay in flight (the alpha chain times the instructions
// the core holds), so each cycle off the chain counts. The steps' rounding
// adds up, so they restart from the direct form every 16 rows (64 steps gave
// 15-26x the direct form's error on thin Gaussians): within a few ulps of
// sigma, e.g. the exact-falloff test's 4.6e-7 x (1 + sigma) instead of
// 1.5e-7, and on a thin 30-degree Gaussian, where float32's cancellation in
// the conic form dominates either way, 1.9e-4 instead of 1.3e-4. Both passes
// visit the same rows in the same order, so their sigmas are bit-identical.
template <typename RS>
class RowSigmaSteps {
  public:
    using F = typename RS::F;
    RowSigmaSteps(const RS& s, Sym2 q, int r0, int rows) : s_(s), c_(F{} + q.c), long_(rows > STEPS) { start(r0); }
    F next(int r) {  // sigma of row r, the row after the last call's
        if (long_ && r - r_start_ == STEPS) start(r);
        const F out = sigma_;
        sigma_ += delta_;
        delta_ += c_;
        return out;
    }

  private:
    static constexpr int STEPS = 16;
    void start(int r) {
        r_start_ = r;
        sigma_ = s_.at(r);
        delta_ = F{} - s_.b_dx - c_ * (s_.row_dy(r) - 0.5f);
    }
    const RS& s_;
    F c_, sigma_, delta_;
    bool long_;  // tiles of more than STEPS rows
    int r_start_;
};

// The strips of a tile, side by side: strip s holds columns [s W, s W + W)
// of the tile, clipped to the image; `count` strips have pixels (those past
// the image's right edge come last and are left out).
struct TileStrips {
    static constexpr int MAX = 16;  // 64-pixel tiles in 4-lane strips
    TileGeometry strip[MAX];
    int count;
    TileStrips(const BlendInputs& in, int64_t tile, int lanes) : count(0) {
        for (int x = 0; x < in.tile_size; x += lanes) {
            const TileGeometry t = strip_geometry(in, tile, x, lanes);
            if (t.width > 0) strip[count++] = t;
        }
    }
};

// Forward: per-pixel outputs plus per-intersection weight and pixel count.
// A vector of W lanes holds one strip row (lanes past the row are padding,
// marked done). One pass over the tile's list serves all its strips: the
// gather, the row range and the per-intersection sums once per Gaussian, and
// each strip the Gaussian reaches then blends its rows (AVX2's two strips per
// 16-pixel tile took a pass each before: blend forward 1.02-1.04x in one
// thread's CPU time, 1.00-1.15x on 2 threads). CD > 0: the channel count is a
// compile-time constant (RGB), CD == 0: any D.
template <int W, int CD, bool ROWS_IN_LANES>
void forward_tile(const BlendInputs& in, int64_t tile, float* scratch, float* out_c, float* out_a, float* out_T,
                  int* out_last, float* isect_weight, int* isect_pixels) {
    using L = Lanes<W>;
    using F = typename L::F;
    using I = typename L::I;
    const int ts = int(in.tile_size), D = CD > 0 ? CD : int(in.D);
    const TileStrips strips(in, tile, W);
    if (strips.count == 0) return;
    // One block of vectors per strip row, so a row's state is one pointer and
    // fixed offsets (separate arrays cost GCC integer registers it lacked and
    // address arithmetic per row: 1.02-1.04x): transmittance,
    // 1 = finished (or outside the image), Gaussians blended (exact in float),
    // then the D blended channels.
    enum { T_, DONE, LAST, ACC };
    const int B = ACC + D;                                             // vectors per row
    F* state = reinterpret_cast<F*>(scratch);                          // [strips, ts, B]
    float* rows = reinterpret_cast<float*>(state + strips.count * ts * B);  // [CHUNK, stride] the current chunk of the tile's list
    bool row_open[TileStrips::MAX * 64];  // per strip row: some pixel still blending (ts <= 64)
    int strip_open[TileStrips::MAX];      // per strip: its open rows
    const F lane = L::index();
    int open_rows = 0;
    for (int s = 0; s < strips.count; ++s) {
        const TileGeometry& t = strips.strip[s];
        const F outside = lane < float(t.width) ? F{} : F{} + 1.f;
        for (int r = 0; r < ts; ++r) {
            F* st = state + (s * ts + r) * B;
            st[T_] = F{} + 1.f;
            st[LAST] = F{};
            st[DONE] = r < t.height ? outside : F{} + 1.f;
            for (int ch = 0; ch < D; ++ch) st[ACC + ch] = F{};
            row_open[s * ts + r] = r < t.height;
        }
        strip_open[s] = t.height;
        open_rows += t.height;
    }
    const TileGeometry& tile_rows = strips.strip[0];  // every strip has the tile's rows
    const int64_t start = in.offsets[tile], end = in.tile_end(tile);
    for (int64_t k = start; k < end && open_rows > 0; ++k) {
        if ((k - start) % CHUNK == 0) gather_chunk(in, k, std::min(end, k + CHUNK), end, rows);
        const float* gs = rows + (k - start) % CHUNK * in.stride();
        const float mx = gs[0], my = gs[1], op = gs[5];
        const Sym2 q = {gs[2], gs[3], gs[4]};
        const float* color = gs + PACK_HEADER;
        if (!(op >= ALPHA_MIN)) continue;
        const auto [r0, r1] = visible_rows(my, gs[7], tile_rows);
        const F rel = F{} + float(k - start + 1);
        F w_sum = F{};  // per lane, over the rows and strips: the Gaussian's blend weight
        int n_used = 0;  // and the pixels it was blended into
        for (int s = 0; s < strips.count; ++s) {
            const TileGeometry& t = strips.strip[s];
            if (strip_open[s] == 0 || !reaches_columns(mx, gs[6], t)) continue;
            const F dx = mx - (lane + (t.x0 + 0.5f));
            const RowSigma<W, ROWS_IN_LANES> row_sigma(q, dx, my, t.y0 + 0.5f);
            RowSigmaSteps steps(row_sigma, q, r0, ts);
            for (int r = r0; r <= r1; ++r) {
                const F sigma = steps.next(r);
                if (!row_open[s * ts + r]) continue;  // every pixel of this strip row has stopped
                F* st = state + (s * ts + r) * B;
                const F raw = gaussian_alpha_raw(op, sigma);
                const F alpha = clamp_alpha(raw), Tr = st[T_];
                const I live = (st[DONE] == 0.f) & alpha_counts(sigma, raw);
                const F next_T = Tr * (1.f - alpha);
                auto blend_lanes = [&](I use) {
                    const F w = use ? alpha * Tr : F{};
                    w_sum += w;
                    n_used += L::count(use);  // a popcount: no vector to sum across lanes after the rows
                    st[T_] = use ? next_T : Tr;
                    st[LAST] = use ? rel : st[LAST];
                    for (int ch = 0; ch < D; ++ch) st[ACC + ch] += w * color[ch];
                };
                // Lanes stop before a Gaussian that would take T below T_MIN:
                // rare (once per pixel), so a branch, which the weight and the
                // updates need not wait for, instead of a mask they would; each
                // side has its own copy of the updates, so the common one keeps
                // its lanes in a mask register.
                const I stop = live & (next_T <= T_MIN);
                if (__builtin_expect(L::count(stop) != 0, 0)) {
                    st[DONE] = stop ? F{} + 1.f : st[DONE];
                    if (L::count(st[DONE] != 0.f) == W) row_open[s * ts + r] = false, --strip_open[s], --open_rows;
                    blend_lanes(live & ~stop);
                } else {
                    blend_lanes(live);
                }
            }
        }
        isect_weight[k] += L::sum(w_sum);
        isect_pixels[k] += n_used;
    }
    for (int s = 0; s < strips.count; ++s) {
        const TileGeometry& t = strips.strip[s];
        for (int r = 0; r < t.height; ++r)
            for (int i = 0; i < t.width; ++i) {
                const F* st = state + (s * ts + r) * B;
                const int64_t pix = pixel_index(in, t, r, i);
                for (int ch = 0; ch < D; ++ch) out_c[pix * D + ch] = st[ACC + ch][i];
                out_a[pix] = 1.f - st[T_][i];
                out_T[pix] = st[T_][i];
                out_last[pix] = int(st[LAST][i]);
            }
    }
}

// Per intersection gradient slots: opacity, conic (3), mean2d (2), |mean2d| (2), color (D).
constexpr int GRAD_SLOTS = 8;  // reduced with one Lanes::sum8

template <typename F>
F lane_abs(F x) { return x < 0.f ? -x : x; }

// dL/d(render) [C, H, W, D] and dL/d(alphas) [C, H, W, 1], read through
// torch's accessors, i.e. with any strides: a loss such as sum() hands back
// expanded (stride 0) gradients, whose copy into contiguous memory took torch
// 0.1 ms on the small bench case (its threads' wake-up; the whole backward
// is 1.06-1.07x faster without it).
struct PixelGrads {
    at::TensorAccessor<const float, 4> color, alpha;
};

// Backward of one strip t of a tile, with the forward pass's row vectors;
// its per-intersection gradients are added to the tile's rows.
template <int W, int CD, bool ROWS_IN_LANES>
void backward_strip(const BlendInputs& in, int64_t tile, const TileGeometry& t, float* scratch, const float* final_T,
                    const int* last_ids, const PixelGrads& v_pixels, float* isect_grad, bool absgrad) {
    using L = Lanes<W>;
    using F = typename L::F;
    using I = typename L::I;
    const int ts = int(in.tile_size), D = CD > 0 ? CD : int(in.D);
    const int64_t G = GRAD_SLOTS + D;
    F* T = reinterpret_cast<F*>(scratch);  // [ts] transmittance before the current Gaussian
    F* Tf = T + ts;                        // [ts] final transmittance
    F* last = Tf + ts;                     // [ts] Gaussians each pixel blended (0 outside the image)
    F* va = last + ts;                     // [ts] dL/dalpha_out
    F* vc = va + ts;                       // [D, ts] dL/dcolor_out
    // [ts] sum over the Gaussians behind of weight * (color . dL/dcolor_out):
    // dL/dalpha needs only this dot product of their blended colors, so one
    // vector per row instead of D (blend backward 1.04-1.08x on one thread)
    F* behind = vc + D * ts;
    F* g_color = behind + ts;              // [D] per lane, over the rows: dL/dcolor of the current Gaussian
    const int64_t start = in.offsets[tile], end = in.tile_end(tile);
    int max_last = 0;
    float row_last[64];  // per row: the most Gaussians any of its pixels blended
    for (int r = 0; r < ts; ++r) {
        T[r] = Tf[r] = F{} + 1.f;
        last[r] = va[r] = behind[r] = F{};
        for (int ch = 0; ch < D; ++ch) vc[ch * ts + r] = F{};
        row_last[r] = 0.f;
        for (int i = 0; i < (r < t.height ? t.width : 0); ++i) {
            const int64_t pix = pixel_index(in, t, r, i);
            T[r][i] = Tf[r][i] = final_T[pix];
            va[r][i] = v_pixels.alpha[t.camera][t.y0 + r][t.x0 + i][0];
            last[r][i] = float(last_ids[pix]);
            max_last = std::max(max_last, last_ids[pix]);
            row_last[r] = std::max(row_last[r], float(last_ids[pix]));
            for (int ch = 0; ch < D; ++ch) vc[ch * ts + r][i] = v_pixels.color[t.camera][t.y0 + r][t.x0 + i][ch];
        }
    }
    const F px = L::index() + (t.x0 + 0.5f);
    // Back to front: recover T before each Gaussian by dividing out (1 - alpha).
    for (int64_t k = start + max_last - 1; k >= start; --k) {
        // a prefetch suffices here: each Gaussian costs more work than in the
        // forward pass (a gathered chunk measured slower)
        if (k - 8 >= start) __builtin_prefetch(in.gaussian(in.ids[k - 8]));
        const float* gs = in.gaussian(in.ids[k]);
        const float mx = gs[0], my = gs[1], op = gs[5];
        const Sym2 q = {gs[2], gs[3], gs[4]};
        const float* color = gs + PACK_HEADER;
        if (!(op >= ALPHA_MIN) || !reaches_columns(mx, gs[6], t)) continue;
        const auto [r0, r1] = visible_rows(my, gs[7], t);
        const float rel = float(k - start);
        const F dx = mx - px;
        const RowSigma<W, ROWS_IN_LANES> row_sigma(q, dx, my, t.y0 + 0.5f);
        // Per lane (pixel column), summed over the rows: dL/dopacity and, as
        // sigma_backward is linear in v_sigma, sum v_sigma, dy v_sigma and
        // dy^2 v_sigma, from which the conic and mean gradients follow below.
        F g_opacity = F{}, s0 = F{}, s1 = F{}, s2 = F{};
        F g_abs_x = F{}, g_abs_y = F{};  // per-sample |dL/dmean2d| (absgrad only)
        for (int ch = 0; ch < D; ++ch) g_color[ch] = F{};
        RowSigmaSteps steps(row_sigma, q, r0, ts);
        for (int r = r0; r <= r1; ++r) {
            const F sigma = steps.next(r);
            if (rel >= row_last[r]) continue;  // no pixel of this row reached Gaussian k
            const F dy = row_sigma.row_dy(r);
            const F raw = gaussian_alpha_raw(op, sigma);
            const F alpha = clamp_alpha(raw);
            const I active = (rel < last[r]) & alpha_counts(sigma, raw);
            // dL/dalpha of this sample (masked below) is
            //   ra (Tf va - behind) + Tk color . v:
            // both terms are ready before alpha, off its chain
            F color_v = F{};
            for (int ch = 0; ch < D; ++ch) color_v += color[ch] * vc[ch * ts + r];
            const F ra = 1.f / (1.f - alpha);
            const F Tk = T[r] * ra;
            const F w = active ? alpha * Tk : F{};
            const F v_a = ra * (Tf[r] * va[r] - behind[r]) + Tk * color_v;
            T[r] = active ? Tk : T[r];
            behind[r] += w * color_v;
            for (int ch = 0; ch < D; ++ch) g_color[ch] += w * vc[ch * ts + r];
            const AlphaGradOf<F> s = alpha_backward_to_sigma(op, sigma, active ? v_a : F{});
            g_opacity += s.v_opacity;
            s0 += s.v_sigma;
            s1 += dy * s.v_sigma;
            s2 += (dy * dy) * s.v_sigma;
            if (absgrad) {  // the same for every sample of the pass: predicted
                const SampleGradOf<F> m = sigma_backward(q, dx, dy, s.v_sigma);
                g_abs_x += lane_abs(m.v_mean_x);
                g_abs_y += lane_abs(m.v_mean_y);
            }
        }
        // sigma_backward, applied to the row sums
        const F slots[GRAD_SLOTS] = {g_opacity,
                                     0.5f * dx * dx * s0,
                                     dx * s1,
                                     0.5f * s2,
                                     q.a * dx * s0 + q.b * s1,
                                     q.b * dx * s0 + q.c * s1,
                                     g_abs_x,
                                     g_abs_y};  // zero without absgrad
        float* out = isect_grad + k * G;
        float sums[GRAD_SLOTS];
        L::sum8(slots, sums);
        for (int j = 0; j < GRAD_SLOTS; ++j) out[j] += sums[j];
        if (D == 3) {
            float rgb[8];
            L::sum8({g_color[0], g_color[1], g_color[2], F{}, F{}, F{}, F{}, F{}}, rgb);
            for (int ch = 0; ch < 3; ++ch) out[GRAD_SLOTS + ch] += rgb[ch];
        } else {
            for (int ch = 0; ch < D; ++ch) out[GRAD_SLOTS + ch] += L::sum(g_color[ch]);
        }
    }
}

// Backward of a tile: its strips in turn, each a pass over the tile's list
// (unlike forward_tile: one pass for all strips measured 0.96-0.98x here).
template <int W, int CD, bool ROWS_IN_LANES>
void backward_tile(const BlendInputs& in, int64_t tile, float* scratch, const float* final_T, const int* last_ids,
                   const PixelGrads& v_pixels, float* isect_grad, bool absgrad) {
    const int64_t start = in.offsets[tile], end = in.tile_end(tile), G = GRAD_SLOTS + in.D;
    std::fill(isect_grad + start * G, isect_grad + end * G, 0.f);  // this tile owns these rows
    if (start == end) return;
    const TileStrips strips(in, tile, W);
    for (int s = 0; s < strips.count; ++s)
        backward_strip<W, CD, ROWS_IN_LANES>(in, tile, strips.strip[s], scratch, final_T, last_ids, v_pixels,
                                             isect_grad, absgrad);
}

// Lanes per strip row: one register (16 with AVX-512, 8 with AVX2, 4 with
// SSE or NEON), but 8 for tiles of up to 8 pixels. A vector wider than the
// ISA's registers has no machine mode in GCC, which then keeps it on the stack
// and moves it in pieces: with AVX2, whole 16-lane tile rows ran the blend
// 3.8-7.5x slower than two strips of 8 lanes.
int64_t strip_lanes(int64_t tile_size) {
    return std::min<int64_t>(tile_size <= 8 ? 8 : 16, REGISTER_BYTES / sizeof(float));
}

// Floats of a tile row's vectors: its strips side by side.
int64_t strip_row_floats(int64_t tile_size) {
    const int64_t lanes = strip_lanes(tile_size);
    return (tile_size + lanes - 1) / lanes * lanes;
}

// Runs `Body<W>::run(in, tile, scratch, args...)` over all tiles,
// W = strip_lanes(tile size).
template <template <int> class Body, typename... Args>
void for_each_tile(const BlendInputs& in, int64_t scratch_floats, Args&&... args) {
    const int lanes = int(strip_lanes(in.tile_size));
#pragma omp parallel num_threads(threads_for(in.M, 150.0))
    {
        AlignedFloats scratch(scratch_floats);
#pragma omp for schedule(dynamic, 1)
        for (int64_t tile = 0; tile < in.n_tiles; ++tile) {
            if constexpr (REGISTER_BYTES >= 64) {  // only the widths this ISA can have
                if (lanes == 16) {
                    Body<16>::run(in, tile, scratch.data.get(), args...);
                    continue;
                }
            }
            if constexpr (REGISTER_BYTES >= 32) {
                if (lanes == 8) {
                    Body<8>::run(in, tile, scratch.data.get(), args...);
                    continue;
                }
            }
            Body<4>::run(in, tile, scratch.data.get(), args...);
        }
    }
}

template <int W>
struct Forward {  // RGB gets a compile-time channel count
    template <typename... Args>
    static void run(const BlendInputs& in, Args&&... args) {
        const bool rows_in_lanes = W >= in.tile_size;
        if (in.D == 3)
            rows_in_lanes ? forward_tile<W, 3, true>(in, args...) : forward_tile<W, 3, false>(in, args...);
        else
            rows_in_lanes ? forward_tile<W, 0, true>(in, args...) : forward_tile<W, 0, false>(in, args...);
    }
};

template <int W>
struct Backward {
    template <typename... Args>
    static void run(const BlendInputs& in, Args&&... args) {
        const bool rows_in_lanes = W >= in.tile_size;
        if (in.D == 3)
            rows_in_lanes ? backward_tile<W, 3, true>(in, args...) : backward_tile<W, 3, false>(in, args...);
        else
            rows_in_lanes ? backward_tile<W, 0, true>(in, args...) : backward_tile<W, 0, false>(in, args...);
    }
};

// Calls body(k, g) for every intersection k (g = ids[k]), for each Gaussian in
// intersection order. Threads own disjoint ranges of Gaussians and each scans
// the whole id list, so per-Gaussian sums are the same for any thread count.
// Each thread first calls start(g0, g1) on its range [g0, g1), where the
// caller zeroes its sums: in parallel, and the lines are then in cache for
// the updates. (Summing into one 64-byte row per Gaussian, split into the
// outputs after, measured 0.96x: the scattered updates are not what this costs.)
template <typename Start, typename Body>
void for_each_intersection_by_gaussian(const BlendInputs& in, int64_t n_gaussians, Start&& start, Body&& body) {
#pragma omp parallel num_threads(threads_for(in.M, 2.0))
    {
        const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t g0 = n_gaussians * t / T;
        const uint32_t span = uint32_t(n_gaussians * (t + 1) / T - g0);
        start(g0, g0 + span);
        // This thread's intersections, picked out a block at a time without a
        // branch: one on the owner mispredicted about every other entry.
        constexpr int64_t BLOCK = 2048;
        int32_t mine[BLOCK];
        for (int64_t k0 = 0; k0 < in.M; k0 += BLOCK) {
            const int64_t k1 = std::min(in.M, k0 + BLOCK);
            int n = 0;
            for (int64_t k = k0; k < k1; ++k) {
                mine[n] = int32_t(k);
                n += uint32_t(in.ids[k] - g0) < span;  // g in [g0, g0 + span)
            }
            for (int j = 0; j < n; ++j) body(mine[j], in.ids[mine[j]]);
        }
    }
}

BlendInputs blend_inputs(const Tensor& packed, const Tensor& colors, const Tensor& isect_offsets,
                         const Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size) {
    return {packed.data_ptr<float>(), isect_offsets.data_ptr<int>(), flatten_ids.data_ptr<int>(), colors.size(2),
            flatten_ids.size(0), isect_offsets.numel(), isect_offsets.size(2), isect_offsets.size(1),
            tile_size, width, height};
}

}  // namespace

std::vector<Tensor> blend_forward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                  const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                  int64_t width, int64_t height, int64_t tile_size) {
    const Tensor packed = pack_gaussians(means2d, conics, colors, opacities);
    const BlendInputs in = blend_inputs(packed, colors, isect_offsets, flatten_ids, width, height, tile_size);
    const int64_t C = colors.size(0), N = colors.size(1), D = in.D;
    auto f32 = colors.options();
    // every pixel belongs to one tile, which writes it
    Tensor render = torch::empty({C, height, width, D}, f32);
    Tensor alphas = torch::empty({C, height, width, 1}, f32);
    Tensor final_T = torch::empty({C, height, width}, f32);
    Tensor last_ids = torch::empty({C, height, width}, f32.dtype(torch::kInt32));
    std::vector<float> isect_weight(in.M, 0.f);
    std::vector<int> isect_pixels(in.M, 0);
    const int64_t scratch = (3 + D) * tile_size * strip_row_floats(tile_size) + CHUNK * in.stride();
    for_each_tile<Forward>(in, scratch, render.data_ptr<float>(), alphas.data_ptr<float>(),
                           final_T.data_ptr<float>(), last_ids.data_ptr<int>(), isect_weight.data(),
                           isect_pixels.data());
    // Deterministic reduction of the per-intersection statistics.
    Tensor weights = torch::empty({C, N}, f32);
    Tensor pixel_counts = torch::empty({C, N}, f32.dtype(torch::kInt32));
    float* wt = weights.data_ptr<float>();
    int* pc = pixel_counts.data_ptr<int>();
    auto zero = [&](int64_t g0, int64_t g1) {
        std::fill(wt + g0, wt + g1, 0.f);
        std::fill(pc + g0, pc + g1, 0);
    };
    for_each_intersection_by_gaussian(in, C * N, zero, [&](int64_t k, int64_t g) {
        wt[g] += isect_weight[k];
        pc[g] += isect_pixels[k];
    });
    return {render, alphas, final_T, last_ids, weights, pixel_counts, packed};
}

std::vector<Tensor> blend_backward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                   const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                   int64_t width, int64_t height, int64_t tile_size, const Tensor& final_T,
                                   const Tensor& last_ids, const Tensor& v_render_colors,
                                   const Tensor& v_render_alphas, bool absgrad, const Tensor& forward_packed) {
    // the forward pass's rows (blend_forward's last output), or, empty, packed anew
    const int64_t rows_floats = colors.size(0) * colors.size(1) * pack_stride(colors.size(2));
    TORCH_CHECK(forward_packed.numel() == 0 || forward_packed.numel() == rows_floats,
                "blend_backward: forward_packed is not blend_forward's last output for these inputs");
    const Tensor packed = forward_packed.numel() ? forward_packed : pack_gaussians(means2d, conics, colors, opacities);
    const BlendInputs in = blend_inputs(packed, colors, isect_offsets, flatten_ids, width, height, tile_size);
    const int64_t C = colors.size(0), N = colors.size(1), D = in.D;
    TORCH_CHECK(v_render_colors.sizes() == torch::IntArrayRef({C, height, width, D}) &&
                    v_render_alphas.sizes() == torch::IntArrayRef({C, height, width, 1}),
                "blend_backward: the pixel gradients must be [C, H, W, D] and [C, H, W, 1]");
    const int64_t G = GRAD_SLOTS + D;
    std::unique_ptr<float[]> isect_grad(new float[in.M * G]);  // zeroed tile by tile
    const int64_t row = strip_lanes(tile_size), scratch = (5 + D) * tile_size * row + D * row;
    for_each_tile<Backward>(in, scratch, final_T.data_ptr<float>(), last_ids.data_ptr<int>(),
                            PixelGrads{v_render_colors.accessor<const float, 4>(),
                                       v_render_alphas.accessor<const float, 4>()},
                            isect_grad.get(), absgrad);

    auto f32 = colors.options();
    Tensor v_means2d = torch::empty({C, N, 2}, f32), v_conics = torch::empty({C, N, 3}, f32);
    Tensor v_colors = torch::empty({C, N, D}, f32), v_opacities = torch::empty({C, N}, f32);
    Tensor v_abs = absgrad ? torch::empty({C, N, 2}, f32) : torch::Tensor();
    float *vm = v_means2d.data_ptr<float>(), *vq = v_conics.data_ptr<float>();
    float *vcol = v_colors.data_ptr<float>(), *vo = v_opacities.data_ptr<float>();
    float* vab = absgrad ? v_abs.data_ptr<float>() : nullptr;
    auto zero = [&](int64_t g0, int64_t g1) {
        std::fill(vo + g0, vo + g1, 0.f);
        std::fill(vq + g0 * 3, vq + g1 * 3, 0.f);
        std::fill(vm + g0 * 2, vm + g1 * 2, 0.f);
        if (vab) std::fill(vab + g0 * 2, vab + g1 * 2, 0.f);
        std::fill(vcol + g0 * D, vcol + g1 * D, 0.f);
    };
    for_each_intersection_by_gaussian(in, C * N, zero, [&](int64_t k, int64_t g) {
        const float* gk = isect_grad.get() + k * G;
        vo[g] += gk[0];
        vq[g * 3] += gk[1];
        vq[g * 3 + 1] += gk[2];
        vq[g * 3 + 2] += gk[3];
        vm[g * 2] += gk[4];
        vm[g * 2 + 1] += gk[5];
        if (vab) {
            vab[g * 2] += gk[6];
            vab[g * 2 + 1] += gk[7];
        }
        for (int64_t ch = 0; ch < D; ++ch) vcol[g * D + ch] += gk[GRAD_SLOTS + ch];
    });
    return {v_means2d, v_conics, v_colors, v_opacities, v_abs};
}

}  // namespace splat::cpu
