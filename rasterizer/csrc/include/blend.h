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
HOST_DEVICE F clamp_alpha(F raw) { return min_of(raw, F{} + ALPHA_MAX); }

// Does a sample contribute at all? (negative sigma: degenerate conic). Tested on
// the unclamped alpha, which is equivalent (ALPHA_MAX > ALPHA_MIN) and needs
// no clamped value first.
template <typename F>
HOST_DEVICE auto alpha_counts(F sigma, F raw_alpha) { return (sigma >= 0.f) & (raw_alpha >= ALPHA_MIN); }

// Conservative pixel half-extent (x, y) of the region where alpha >= ALPHA_MIN,
// used to skip rows and columns; the per-pixel test above stays the truth.
// Branch-free, so that the CPU's loop over Gaussians vectorizes.
HOST_DEVICE Vec2 alpha_extent(Sym2 conic, float opacity) {
    const float det = conic.a * conic.c - conic.b * conic.b;
    const float smax = fast_log(max_f(opacity, ALPHA_MIN) / ALPHA_MIN);
    // region 0.5 d^T Q d <= smax  =>  |dx| <= sqrt(2 smax Q^-1_xx), Q^-1_xx = c / det;
    // the small margin covers float rounding of sigma, exp and log at the boundary
    const float ex = sqrtf(2.f * smax * conic.c / det), ey = sqrtf(2.f * smax * conic.a / det);
    const bool ellipse = det > 0.f;
    return {ellipse ? ex * 1.001f + 0.01f : 1e30f, ellipse ? ey * 1.001f + 0.01f : 1e30f};
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

// The tile test of the intersection: a Gaussian is listed only in the tiles
// of its bounding rectangle (from the radii) whose pixel centers its
// alpha >= ALPHA_MIN region sigma <= s, s = log(opacity / ALPHA_MIN), can
// reach. A thin diagonal Gaussian's rectangle holds many tiles it never
// touches, and a 2 x 2 rectangle often a corner: each dropped tile saves the
// blend a visit. The test must keep every tile the per-pixel test
// (alpha_counts) accepts a pixel of, so s is widened for the rounding of
// sigma in float, whose terms reach s * (a c / det) on thin ellipses and cancel.
//
// For a float or (CPU) a vector of Gaussians' conics (a, b, c) and opacities.
template <typename F>
HOST_DEVICE F reach_sigma(F a, F b, F c, F opacity) {
    const F det = a * c - b * b;
    const F s = fast_log(max_of(opacity, F{} + ALPHA_MIN) / ALPHA_MIN);
    const F reach = s * (1.002f + 2e-6f * (a * c / det)) + 0.002f;
    return (det > 0.f) & (a > 0.f) ? reach : F{} + 1e30f;  // not an ellipse: every tile
}

// Minimum of sigma(u, v) = 0.5 (a u^2 + 2 b u v + c v^2) over the box
// [u0, u1] x [v0, v1] of offsets from the Gaussian's center. For a positive
// definite conic it is 0 if the box holds the center, else it lies on one of
// the two box edges nearest the center, u = U or v = V (0 clamped to the
// box): along an edge, a 1D quadratic's minimum clamped to the edge.
template <typename F>
HOST_DEVICE F box_min_sigma(F a, F b, F c, F v_per_u, F u_per_v, F u0, F u1, F v0, F v1) {
    const F U = min_of(max_of(F{}, u0), u1), V = min_of(max_of(F{}, v0), v1);
    const F v_at_U = min_of(max_of(v_per_u * U, v0), v1), u_at_V = min_of(max_of(u_per_v * V, u0), u1);
    const F on_u = 0.5f * (a * U * U + c * v_at_U * v_at_U) + b * U * v_at_U;
    const F on_v = 0.5f * (a * u_at_V * u_at_V + c * V * V) + b * u_at_V * V;
    return min_of(on_u, on_v);
}

// A Gaussian's side of the tile test, for one Gaussian (F = float) or, on
// the CPU, a vector of Gaussians: conic, center, the slopes box_min_sigma
// needs, and reach_sigma (1e30: every tile).
template <typename F>
struct EllipseReach {
    F a, b, c, mean_x, mean_y;
    F v_per_u;  // -b / c: the v minimizing sigma for a given u
    F u_per_v;  // -b / a: the u minimizing sigma for a given v
    F reach;
};

template <typename F>
HOST_DEVICE EllipseReach<F> ellipse_reach(F a, F b, F c, F mean_x, F mean_y, F opacity) {
    return {a, b, c, mean_x, mean_y, -b / c, -b / a, reach_sigma(a, b, c, opacity)};
}

// Minimum of sigma over the pixel centers of tile (x, y): the box from the
// tile's first pixel center to its last. The one formula of the test, for the
// scalar loops here and the CPU's vector loops alike.
template <typename F>
HOST_DEVICE F tile_min_sigma(const EllipseReach<F>& e, F x, F y, float tile_size) {
    const F u0 = x * tile_size + 0.5f - e.mean_x, v0 = y * tile_size + 0.5f - e.mean_y;
    const float span = tile_size - 1.f;
    return box_min_sigma(e.a, e.b, e.c, e.v_per_u, e.u_per_v, u0, u0 + span, v0, v0 + span);
}

// A Gaussian's tile rectangle and the ellipse tested against its tiles.
struct TileFootprint {
    TileRect rect;
    EllipseReach<float> ellipse;
};

HOST_DEVICE TileFootprint tile_footprint(TileRect rect, Vec2 mean, Sym2 conic, float opacity) {
    return {rect, ellipse_reach(conic.a, conic.b, conic.c, mean.x, mean.y, opacity)};
}

HOST_DEVICE TileFootprint whole_rect_footprint(TileRect rect) {
    return {rect, {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 1e30f}};
}

// Does the footprint reach a pixel center of tile (x, y)? (NaN: yes)
HOST_DEVICE bool tile_reached(const TileFootprint& f, int tile_size, int x, int y) {
    if (f.ellipse.reach >= 1e30f) return true;
    return !(tile_min_sigma(f.ellipse, float(x), float(y), float(tile_size)) > f.ellipse.reach);
}

// visit(x, y) for each tile of the footprint, row by row.
template <typename Visit>
HOST_DEVICE void for_each_footprint_tile(const TileFootprint& f, int tile_size, Visit&& visit) {
    for (int y = f.rect.y0; y < f.rect.y1; ++y)
        for (int x = f.rect.x0; x < f.rect.x1; ++x)
            if (tile_reached(f, tile_size, x, y)) visit(x, y);
}

HOST_DEVICE int footprint_tile_count(const TileFootprint& f, int tile_size) {
    int n = 0;
    for_each_footprint_tile(f, tile_size, [&](int, int) { ++n; });
    return n;
}

}  // namespace splat
