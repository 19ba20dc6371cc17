// Per pixel-and-Gaussian math of front-to-back alpha blending, shared by the
// CPU and CUDA blend kernels. Pixel centers sit at integer + 0.5.
#pragma once

#include "common.h"

namespace splat {

// The per-sample functions are templates over F: a float (CUDA, and the
// CPU's scalar code) or, on the CPU, a vector holding a row of pixels (cpu/lanes.h).
// Comparisons then give lane masks and `?:` selects lane-wise.

// Mahalanobis half-distance of the pixel from the Gaussian; d = mean2d - pixel.
template <typename F>
HOST_DEVICE F gaussian_sigma(Sym2 conic, F dx, F dy) {
    return 0.5f * (conic.a * dx * dx + conic.c * dy * dy) + conic.b * dx * dy;
}

// Unclamped opacity falloff; alpha = min(ALPHA_MAX, this).
template <typename F>
HOST_DEVICE F gaussian_alpha_raw(float opacity, F sigma) { return opacity * fast_exp(-sigma); }

template <typename F>
HOST_DEVICE F clamp_alpha(F raw) { return raw < ALPHA_MAX ? raw : F{} + ALPHA_MAX; }

// Does a sample contribute at all? (negative sigma: degenerate conic). Tested on
// the unclamped alpha, which is equivalent (ALPHA_MAX > ALPHA_MIN) and needs
// no clamped value first.
template <typename F>
HOST_DEVICE auto alpha_counts(F sigma, F raw_alpha) { return (sigma >= 0.f) & (raw_alpha >= ALPHA_MIN); }

// Conservative pixel half-extent (x, y) of the region where alpha >= ALPHA_MIN,
// used to skip rows and columns; the per-pixel test above stays the truth.
HOST_DEVICE Vec2 alpha_extent(Sym2 conic, float opacity) {
    float det = conic.a * conic.c - conic.b * conic.b;
    float smax = logf(max_f(opacity, ALPHA_MIN) / ALPHA_MIN);
    if (!(det > 0.f)) return {1e30f, 1e30f};
    // region 0.5 d^T Q d <= smax  =>  |dx| <= sqrt(2 smax Q^-1_xx), Q^-1_xx = c / det;
    // the small margin covers float rounding of sigma and exp at the boundary
    const float ex = sqrtf(2.f * smax * conic.c / det), ey = sqrtf(2.f * smax * conic.a / det);
    return {ex * 1.001f + 0.01f, ey * 1.001f + 0.01f};
}

// Backward of alpha = min(ALPHA_MAX, opacity * exp(-sigma)) given dL/dalpha:
// dL/dopacity, dL/dconic and dL/dmean2d (with d = mean2d - pixel), in two
// steps: alpha -> (opacity, sigma), then sigma -> (conic, mean2d).
template <typename F>
struct SampleGradOf {
    F v_opacity, v_conic_a, v_conic_b, v_conic_c, v_mean_x, v_mean_y;
};
using SampleGrad = SampleGradOf<float>;

template <typename F>
struct AlphaGradOf {
    F v_opacity, v_sigma;
};

template <typename F>
HOST_DEVICE AlphaGradOf<F> alpha_backward_to_sigma(float opacity, F sigma, F v_alpha) {
    const F vis = fast_exp(-sigma);
    v_alpha = opacity * vis > ALPHA_MAX ? F{} : v_alpha;  // clamped: no gradient
    return {vis * v_alpha, -opacity * vis * v_alpha};
}

// Linear in v_sigma with coefficients polynomial in dx and dy, which lets the
// CPU blend sum over a tile's rows first (blend.cpp, backward_tile).
template <typename F>
HOST_DEVICE SampleGradOf<F> sigma_backward(Sym2 conic, F dx, F dy, F v_sigma) {
    SampleGradOf<F> g;
    g.v_conic_a = 0.5f * dx * dx * v_sigma;
    g.v_conic_b = dx * dy * v_sigma;
    g.v_conic_c = 0.5f * dy * dy * v_sigma;
    g.v_mean_x = v_sigma * (conic.a * dx + conic.b * dy);
    g.v_mean_y = v_sigma * (conic.b * dx + conic.c * dy);
    return g;
}

template <typename F>
HOST_DEVICE SampleGradOf<F> alpha_backward(Sym2 conic, float opacity, F dx, F dy, F sigma, F v_alpha) {
    const AlphaGradOf<F> a = alpha_backward_to_sigma(opacity, sigma, v_alpha);
    SampleGradOf<F> g = sigma_backward(conic, dx, dy, a.v_sigma);
    g.v_opacity = a.v_opacity;
    return g;
}

// Tile rectangle [min, max) a Gaussian touches, from its center and radii.
struct TileRect { int x0, y0, x1, y1; };

HOST_DEVICE TileRect tile_rect(Vec2 mean2d, int radius_x, int radius_y, int tile_size, int tile_width,
                               int tile_height) {
    // clamp in float before the int cast: huge footprints must not overflow
    float ts = static_cast<float>(tile_size), tw = static_cast<float>(tile_width),
          th = static_cast<float>(tile_height);
    TileRect r;
    r.x0 = static_cast<int>(min_f(max_f(floorf((mean2d.x - radius_x) / ts), 0.f), tw));
    r.y0 = static_cast<int>(min_f(max_f(floorf((mean2d.y - radius_y) / ts), 0.f), th));
    r.x1 = static_cast<int>(min_f(max_f(ceilf((mean2d.x + radius_x) / ts), 0.f), tw));
    r.y1 = static_cast<int>(min_f(max_f(ceilf((mean2d.y + radius_y) / ts), 0.f), th));
    return r;
}

}  // namespace splat
