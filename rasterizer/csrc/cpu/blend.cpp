// Front-to-back blending on the CPU, one tile per task (OpenMP, dynamic).
//
// Inside a tile the loops run Gaussian by Gaussian over rows of pixels, so
// the innermost loop is one full tile row: branch-free code the compiler
// vectorizes (16 float lanes with AVX-512 = one 16-pixel row), with the row
// width a compile-time constant for the common tile sizes. Rows outside a
// Gaussian's alpha >= 1/255 extent are skipped; pixels outside the image are
// marked done (forward) or have no contributions (backward).
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
#include <vector>

#include "../include/blend.h"
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

struct AlignedFloats {  // 64-byte aligned, uninitialized
    std::unique_ptr<float[], void (*)(void*)> data;
    explicit AlignedFloats(int64_t n)
        : data(static_cast<float*>(std::aligned_alloc(64, (std::max<int64_t>(n, 1) + 15) / 16 * 64)), std::free) {}
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

// Rows of intersections [k0, k1) of the tile's list, in list order, into dst.
void gather_chunk(const BlendInputs& in, int64_t k0, int64_t k1, float* dst) {
    const int64_t S = in.stride();
    for (int64_t k = k0; k < k1; ++k) {
        const float* src = in.gaussian(in.ids[k]);
        float* row = dst + (k - k0) * S;
        for (int64_t j = 0; j < S; j += 16) std::memcpy(row + j, src + j, 64);  // one cache line, inlined
    }
}

AlignedFloats pack_gaussians(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                             const Tensor& opacities) {
    const int64_t CN = colors.size(0) * colors.size(1), D = colors.size(2), S = pack_stride(D);
    const float *m = means2d.data_ptr<float>(), *q = conics.data_ptr<float>();
    const float *c = colors.data_ptr<float>(), *o = opacities.data_ptr<float>();
    AlignedFloats packed(CN * S);
    at::parallel_for(0, CN, 4096, [&](int64_t begin, int64_t end) {
        for (int64_t g = begin; g < end; ++g) {
            float* row = packed.data.get() + g * S;
            row[0] = m[g * 2], row[1] = m[g * 2 + 1];
            row[2] = q[g * 3], row[3] = q[g * 3 + 1], row[4] = q[g * 3 + 2];
            row[5] = o[g];
            const Vec2 ext = alpha_extent({row[2], row[3], row[4]}, o[g]);
            row[6] = ext.x, row[7] = ext.y;
            for (int64_t ch = 0; ch < D; ++ch) row[PACK_HEADER + ch] = c[g * D + ch];
        }
    });
    return packed;
}

struct TileGeometry {
    int camera, x0, y0, width, height;  // pixel origin and size inside the image
};

TileGeometry tile_geometry(const BlendInputs& in, int64_t tile) {
    int64_t per_image = in.tile_width * in.tile_height;
    int camera = int(tile / per_image);
    int64_t rest = tile % per_image;
    int x0 = int((rest % in.tile_width) * in.tile_size), y0 = int((rest / in.tile_width) * in.tile_size);
    return {camera, x0, y0, int(std::min<int64_t>(in.tile_size, in.width - x0)),
            int(std::min<int64_t>(in.tile_size, in.height - y0))};
}

int64_t pixel_index(const BlendInputs& in, const TileGeometry& t, int r, int i) {
    return (int64_t(t.camera) * in.height + t.y0 + r) * in.width + t.x0 + i;
}

// Pixel rows [r0, r1] of the tile that can see the Gaussian (empty if r0 > r1),
// from its alpha >= 1/255 half-extent in y.
std::pair<int, int> visible_rows(float mean_y, float ext, const TileGeometry& t) {
    float lo = std::ceil(mean_y - ext - t.y0 - 0.5f), hi = std::floor(mean_y + ext - t.y0 - 0.5f);
    return {int(std::max(lo, 0.f)), int(std::min(hi, float(t.height - 1)))};
}

// Forward: per-pixel outputs plus per-intersection weight and pixel count.
// CD > 0: the channel count is known at compile time and colors accumulate
// inside the main loop; CD == 0: any D, in a loop per channel.
template <int TS, int CD>
void forward_tile(const BlendInputs& in, int64_t tile, float* scratch, float* out_c, float* out_a,
                  float* out_T, int* out_last, float* isect_weight, int* isect_pixels) {
    const int ts = TS > 0 ? TS : int(in.tile_size), P = ts * ts;
    const int64_t D = in.D;
    float* T = scratch;                    // [P]
    float* done = T + P;                   // [P] 1 = finished (or outside the image)
    float* last = done + P;                // [P] count of Gaussians blended (exact in float)
    float* w_row = last + P;               // [ts]
    float* w_lane = w_row + ts;            // [ts]
    float* used_lane = w_lane + ts;        // [ts]
    float* acc = used_lane + ts;           // [D, P]
    float* rows = acc + D * P;             // [CHUNK, stride] the current chunk of the tile's list
    int row_live[64];                      // pixels still blending, per row (ts <= 64)
    const TileGeometry t = tile_geometry(in, tile);
    for (int p = 0; p < P; ++p) {
        T[p] = 1.f;
        last[p] = 0.f;
        done[p] = (p % ts < t.width && p / ts < t.height) ? 0.f : 1.f;
    }
    std::fill(acc, acc + D * P, 0.f);
    for (int r = 0; r < ts; ++r) row_live[r] = r < t.height ? t.width : 0;
    const int64_t start = in.offsets[tile], end = in.tile_end(tile);
    int n_done = P - t.width * t.height;
    for (int64_t k = start; k < end && n_done < P; ++k) {
        if ((k - start) % CHUNK == 0) gather_chunk(in, k, std::min(end, k + CHUNK), rows);
        const float* gs = rows + (k - start) % CHUNK * in.stride();
        const float mx = gs[0], my = gs[1], op = gs[5];
        const Sym2 q = {gs[2], gs[3], gs[4]};
        const float* color = gs + PACK_HEADER;
        if (!(op >= ALPHA_MIN)) continue;
        const auto [r0, r1] = visible_rows(my, gs[7], t);
        const float rel = float(k - start + 1);
        float c[CD > 0 ? CD : 1];
        for (int ch = 0; ch < CD; ++ch) c[ch] = color[ch];
        for (int i = 0; i < ts; ++i) w_lane[i] = used_lane[i] = 0.f;
        for (int r = r0; r <= r1; ++r) {
            if (row_live[r] == 0) continue;  // every pixel of this row has stopped
            const float dy = my - (t.y0 + r + 0.5f);
            float *Tr = T + r * ts, *dr = done + r * ts, *lr = last + r * ts;
            int stops = 0;
#pragma omp simd reduction(+ : stops)
            for (int i = 0; i < ts; ++i) {
                const float dx = mx - (t.x0 + i + 0.5f);
                const float sigma = gaussian_sigma(q, dx, dy);
                const float raw = gaussian_alpha_raw(op, sigma);
                const float alpha = clamp_alpha(raw);
                const bool live = (dr[i] == 0.f) & alpha_counts(sigma, raw);
                const float next_T = Tr[i] * (1.f - alpha);
                const bool stop = live & (next_T <= T_MIN);
                const bool use = live & !stop;
                const float w = use ? alpha * Tr[i] : 0.f;
                if constexpr (CD == 0) w_row[i] = w;  // for the channel loop below
                w_lane[i] += w;
                used_lane[i] += use ? 1.f : 0.f;
                Tr[i] = use ? next_T : Tr[i];
                dr[i] = stop ? 1.f : dr[i];
                lr[i] = use ? rel : lr[i];
                stops += stop;
                for (int ch = 0; ch < CD; ++ch) acc[ch * P + r * ts + i] += w * c[ch];
            }
            n_done += stops;
            row_live[r] -= stops;
            for (int64_t ch = 0; ch < (CD > 0 ? 0 : D); ++ch) {
                const float c = color[ch];
                float* a = acc + ch * P + r * ts;
#pragma omp simd
                for (int i = 0; i < ts; ++i) a[i] += w_row[i] * c;
            }
        }
        float wsum = 0.f, npix = 0.f;
        for (int i = 0; i < ts; ++i) {
            wsum += w_lane[i];
            npix += used_lane[i];
        }
        isect_weight[k] = wsum;
        isect_pixels[k] = int(npix);
    }
    for (int r = 0; r < t.height; ++r)
        for (int i = 0; i < t.width; ++i) {
            const int64_t pix = pixel_index(in, t, r, i);
            const int p = r * ts + i;
            for (int64_t ch = 0; ch < D; ++ch) out_c[pix * D + ch] = acc[ch * P + p];
            out_a[pix] = 1.f - T[p];
            out_T[pix] = T[p];
            out_last[pix] = int(last[p]);
        }
}

// Per intersection gradient slots: opacity, conic (3), mean2d (2), |mean2d| (2), color (D).
constexpr int GRAD_SLOTS = 8;

// CD > 0: compile-time channel count, everything in one loop per row;
// CD == 0: any D, with separate loops for the channels and the alpha backward.
template <int TS, int CD>
void backward_tile(const BlendInputs& in, int64_t tile, float* scratch, const float* final_T,
                   const int* last_ids, const float* v_render, const float* v_alpha, float* isect_grad) {
    const int ts = TS > 0 ? TS : int(in.tile_size), P = ts * ts;
    const int64_t D = in.D, G = GRAD_SLOTS + D;
    float* T = scratch;                 // [P] transmittance before the current Gaussian
    float* Tf = T + P;                  // [P] final transmittance
    float* last = Tf + P;               // [P]
    float* va = last + P;               // [P] dL/dalpha_out
    float* row = va + P;                // 8 x [ts]: per-row scratch
    float *w_r = row, *ra_r = row + ts, *Tk_r = row + 2 * ts, *dx_r = row + 3 * ts, *sig_r = row + 4 * ts,
          *va_r = row + 5 * ts, *on_r = row + 6 * ts;
    float* lane = row + 8 * ts;         // [GRAD_SLOTS, ts] per-lane accumulators
    float* lane_col = lane + GRAD_SLOTS * ts;  // [D, ts]
    float* vc = lane_col + D * ts;      // [D, P] dL/dcolor_out
    float* buf = vc + D * P;            // [D, P] sum of color * weight of the Gaussians behind
    const TileGeometry t = tile_geometry(in, tile);
    const int64_t start = in.offsets[tile], end = in.tile_end(tile);
    std::fill(isect_grad + start * G, isect_grad + end * G, 0.f);  // this tile owns these rows
    if (start == end) return;
    for (int p = 0; p < P; ++p) {
        T[p] = Tf[p] = 1.f;
        last[p] = va[p] = 0.f;
    }
    std::fill(vc, vc + 2 * D * P, 0.f);  // vc and buf
    int max_last = 0;
    float row_last[64] = {};  // per row: the most Gaussians any of its pixels blended
    for (int r = 0; r < t.height; ++r)
        for (int i = 0; i < t.width; ++i) {
            const int64_t pix = pixel_index(in, t, r, i);
            const int p = r * ts + i;
            T[p] = Tf[p] = final_T[pix];
            va[p] = v_alpha[pix];
            last[p] = float(last_ids[pix]);
            max_last = std::max(max_last, last_ids[pix]);
            row_last[r] = std::max(row_last[r], last[p]);
            for (int64_t ch = 0; ch < D; ++ch) vc[ch * P + p] = v_render[pix * D + ch];
        }
    // Back to front: recover T before each Gaussian by dividing out (1 - alpha).
    for (int64_t k = start + max_last - 1; k >= start; --k) {
        // a prefetch suffices here: each Gaussian costs more work than in the
        // forward pass (a gathered chunk measured slower)
        if (k - 8 >= start) __builtin_prefetch(in.gaussian(in.ids[k - 8]));
        const float* gs = in.gaussian(in.ids[k]);
        const float mx = gs[0], my = gs[1], op = gs[5];
        const Sym2 q = {gs[2], gs[3], gs[4]};
        const float* cg = gs + PACK_HEADER;
        if (!(op >= ALPHA_MIN)) continue;
        float c[CD > 0 ? CD : 1];
        for (int ch = 0; ch < CD; ++ch) c[ch] = cg[ch];
        const auto [r0, r1] = visible_rows(my, gs[7], t);
        const float rel = float(k - start);
        std::fill(lane, lane + (GRAD_SLOTS + D) * ts, 0.f);
        for (int r = r0; r <= r1; ++r) {
            if (rel >= row_last[r]) continue;  // no pixel of this row reached Gaussian k
            const float dy = my - (t.y0 + r + 0.5f);
            float* Tr = T + r * ts;
            const float *Tf_r = Tf + r * ts, *last_r = last + r * ts, *va_p = va + r * ts;
#pragma omp simd
            for (int i = 0; i < ts; ++i) {
                const float dx = mx - (t.x0 + i + 0.5f);
                const float sigma = gaussian_sigma(q, dx, dy);
                const float raw = gaussian_alpha_raw(op, sigma);
                const float alpha = clamp_alpha(raw);
                const bool active = (rel < last_r[i]) & alpha_counts(sigma, raw);
                const float ra = 1.f / (1.f - alpha);
                const float Tk = Tr[i] * ra;
                const float on = active ? 1.f : 0.f, w = active ? alpha * Tk : 0.f;
                float v_alpha = active ? Tf_r[i] * ra * va_p[i] : 0.f;
                Tr[i] = active ? Tk : Tr[i];
                if constexpr (CD == 0) {  // the loops below finish this sample
                    on_r[i] = on;
                    dx_r[i] = dx;
                    sig_r[i] = sigma;
                    ra_r[i] = ra;
                    Tk_r[i] = Tk;
                    w_r[i] = w;
                    va_r[i] = v_alpha;
                } else {
                    for (int ch = 0; ch < CD; ++ch) {
                        const int pc = ch * P + r * ts + i;
                        lane_col[ch * ts + i] += w * vc[pc];
                        v_alpha += on * (c[ch] * Tk - buf[pc] * ra) * vc[pc];
                        buf[pc] += c[ch] * w;
                    }
                    SampleGrad sg = alpha_backward(q, op, dx, dy, sigma, v_alpha * on);
                    lane[0 * ts + i] += sg.v_opacity;
                    lane[1 * ts + i] += sg.v_conic_a;
                    lane[2 * ts + i] += sg.v_conic_b;
                    lane[3 * ts + i] += sg.v_conic_c;
                    lane[4 * ts + i] += sg.v_mean_x;
                    lane[5 * ts + i] += sg.v_mean_y;
                    lane[6 * ts + i] += std::fabs(sg.v_mean_x);
                    lane[7 * ts + i] += std::fabs(sg.v_mean_y);
                }
            }
            if constexpr (CD > 0) continue;
            for (int64_t ch = 0; ch < D; ++ch) {
                const float c = cg[ch];
                float* b = buf + ch * P + r * ts;
                const float* v = vc + ch * P + r * ts;
                float* lc = lane_col + ch * ts;
#pragma omp simd
                for (int i = 0; i < ts; ++i) {
                    lc[i] += w_r[i] * v[i];
                    va_r[i] += on_r[i] * (c * Tk_r[i] - b[i] * ra_r[i]) * v[i];
                    b[i] += c * w_r[i];
                }
            }
            float *l_op = lane, *l_ca = l_op + ts, *l_cb = l_ca + ts, *l_cc = l_cb + ts;
            float *l_mx = l_cc + ts, *l_my = l_mx + ts, *l_ax = l_my + ts, *l_ay = l_ax + ts;
#pragma omp simd
            for (int i = 0; i < ts; ++i) {
                SampleGrad sg = alpha_backward(q, op, dx_r[i], dy, sig_r[i], va_r[i] * on_r[i]);
                l_op[i] += sg.v_opacity;
                l_ca[i] += sg.v_conic_a;
                l_cb[i] += sg.v_conic_b;
                l_cc[i] += sg.v_conic_c;
                l_mx[i] += sg.v_mean_x;
                l_my[i] += sg.v_mean_y;
                l_ax[i] += std::fabs(sg.v_mean_x);
                l_ay[i] += std::fabs(sg.v_mean_y);
            }
        }
        float* out = isect_grad + k * G;
        for (int j = 0; j < GRAD_SLOTS + D; ++j)
            for (int i = 0; i < ts; ++i) out[j] += lane[j * ts + i];
    }
}

// Runs `body<TS>(tile, scratch)` over all tiles with a compile-time row width
// for the common tile sizes.
template <template <int> class Body, typename... Args>
void for_each_tile(const BlendInputs& in, int64_t scratch_floats, Args&&... args) {
#pragma omp parallel num_threads(num_threads())
    {
        // 64-byte aligned: the row arrays inside are whole AVX-512 vectors
        // (an unlucky malloc alignment cost the backward pass 15 %)
        AlignedFloats scratch(scratch_floats);
#pragma omp for schedule(dynamic, 1)
        for (int64_t tile = 0; tile < in.n_tiles; ++tile) {
            switch (in.tile_size) {
                case 8: Body<8>::run(in, tile, scratch.data.get(), args...); break;
                case 16: Body<16>::run(in, tile, scratch.data.get(), args...); break;
                case 32: Body<32>::run(in, tile, scratch.data.get(), args...); break;
                default: Body<0>::run(in, tile, scratch.data.get(), args...);
            }
        }
    }
}

template <int TS>
struct Forward {  // RGB gets the fused channel loop
    template <typename... Args>
    static void run(const BlendInputs& in, Args&&... args) {
        if (in.D == 3)
            forward_tile<TS, 3>(in, args...);
        else
            forward_tile<TS, 0>(in, args...);
    }
};

template <int TS>
struct Backward {  // RGB gets the single fused loop
    template <typename... Args>
    static void run(const BlendInputs& in, Args&&... args) {
        if (in.D == 3)
            backward_tile<TS, 3>(in, args...);
        else
            backward_tile<TS, 0>(in, args...);
    }
};

// Calls body(k, g) for every intersection k (g = ids[k]), for each Gaussian in
// intersection order. Threads own disjoint ranges of Gaussians and each scans
// the whole id list, so per-Gaussian sums are the same for any thread count.
template <typename Body>
void for_each_intersection_by_gaussian(const BlendInputs& in, int64_t n_gaussians, Body&& body) {
#pragma omp parallel num_threads(num_threads())
    {
        const int64_t T = omp_get_num_threads(), t = omp_get_thread_num();
        const int64_t g0 = n_gaussians * t / T, g1 = n_gaussians * (t + 1) / T;
        for (int64_t k = 0; k < in.M; ++k) {
            const int64_t g = in.ids[k];
            if (g >= g0 && g < g1) body(k, g);
        }
    }
}

BlendInputs blend_inputs(const AlignedFloats& packed, const Tensor& colors, const Tensor& isect_offsets,
                         const Tensor& flatten_ids, int64_t width, int64_t height, int64_t tile_size) {
    return {packed.data.get(), isect_offsets.data_ptr<int>(), flatten_ids.data_ptr<int>(), colors.size(2),
            flatten_ids.size(0), isect_offsets.numel(), isect_offsets.size(2), isect_offsets.size(1),
            tile_size, width, height};
}

}  // namespace

std::vector<Tensor> blend_forward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                  const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                  int64_t width, int64_t height, int64_t tile_size) {
    const AlignedFloats packed = pack_gaussians(means2d, conics, colors, opacities);
    const BlendInputs in = blend_inputs(packed, colors, isect_offsets, flatten_ids, width, height, tile_size);
    const int64_t C = colors.size(0), N = colors.size(1), D = in.D, P = tile_size * tile_size;
    auto f32 = colors.options();
    // every pixel belongs to one tile, which writes it
    Tensor render = torch::empty({C, height, width, D}, f32);
    Tensor alphas = torch::empty({C, height, width, 1}, f32);
    Tensor final_T = torch::empty({C, height, width}, f32);
    Tensor last_ids = torch::empty({C, height, width}, f32.dtype(torch::kInt32));
    std::vector<float> isect_weight(in.M, 0.f);
    std::vector<int> isect_pixels(in.M, 0);
    const int64_t scratch = 3 * P + 3 * tile_size + D * P + CHUNK * in.stride();
    for_each_tile<Forward>(in, scratch, render.data_ptr<float>(), alphas.data_ptr<float>(),
                           final_T.data_ptr<float>(), last_ids.data_ptr<int>(), isect_weight.data(),
                           isect_pixels.data());
    // Deterministic reduction of the per-intersection statistics.
    Tensor weights = torch::zeros({C, N}, f32);
    Tensor pixel_counts = torch::zeros({C, N}, f32.dtype(torch::kInt32));
    float* wt = weights.data_ptr<float>();
    int* pc = pixel_counts.data_ptr<int>();
    for_each_intersection_by_gaussian(in, C * N, [&](int64_t k, int64_t g) {
        wt[g] += isect_weight[k];
        pc[g] += isect_pixels[k];
    });
    return {render, alphas, final_T, last_ids, weights, pixel_counts};
}

std::vector<Tensor> blend_backward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                   const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                   int64_t width, int64_t height, int64_t tile_size, const Tensor& final_T,
                                   const Tensor& last_ids, const Tensor& v_render_colors,
                                   const Tensor& v_render_alphas, bool absgrad) {
    const AlignedFloats packed = pack_gaussians(means2d, conics, colors, opacities);
    const BlendInputs in = blend_inputs(packed, colors, isect_offsets, flatten_ids, width, height, tile_size);
    const int64_t C = colors.size(0), N = colors.size(1), D = in.D, P = tile_size * tile_size;
    const int64_t G = GRAD_SLOTS + D;
    std::unique_ptr<float[]> isect_grad(new float[in.M * G]);  // zeroed tile by tile
    const int64_t scratch = 4 * P + 8 * tile_size + G * tile_size + 2 * D * P;
    for_each_tile<Backward>(in, scratch, final_T.data_ptr<float>(), last_ids.data_ptr<int>(),
                            v_render_colors.data_ptr<float>(), v_render_alphas.data_ptr<float>(),
                            isect_grad.get());

    auto f32 = colors.options();
    Tensor v_means2d = torch::zeros({C, N, 2}, f32), v_conics = torch::zeros({C, N, 3}, f32);
    Tensor v_colors = torch::zeros({C, N, D}, f32), v_opacities = torch::zeros({C, N}, f32);
    Tensor v_abs = absgrad ? torch::zeros({C, N, 2}, f32) : torch::Tensor();
    float *vm = v_means2d.data_ptr<float>(), *vq = v_conics.data_ptr<float>();
    float *vcol = v_colors.data_ptr<float>(), *vo = v_opacities.data_ptr<float>();
    float* vab = absgrad ? v_abs.data_ptr<float>() : nullptr;
    for_each_intersection_by_gaussian(in, C * N, [&](int64_t k, int64_t g) {
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
