// 3DGS view-dependent colors for C cameras x N Gaussians: spherical harmonics
// at the direction from each camera center, + 0.5, clamped at 0 (sh.h), in
// one pass; parallel over blocks of Gaussians.
#include <ATen/Parallel.h>

#include <algorithm>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../include/sh.h"
#include "ops.h"

namespace splat::cpu {

namespace {

constexpr int64_t BLOCK = 1024;  // Gaussians per task (for_each_block)

std::vector<Vec3> camera_centers(const Tensor& viewmats) {
    std::vector<Vec3> centers(viewmats.size(0));
    for (size_t c = 0; c < centers.size(); ++c) centers[c] = camera_center(viewmats.data_ptr<float>() + c * 16);
    return centers;
}

#if defined(__AVX512F__)
// r[c] becomes column c of the 16 x 16 matrix whose rows r held: unpacks
// within 128-bit lanes, then 128-bit lanes across registers.
void transpose16(__m512 (&r)[16]) {
    __m512 a[16], b[16];
    for (int i = 0; i < 8; ++i)
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]), a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    for (int i = 0; i < 4; ++i) {  // b[4i + j], 128-bit lane q: column 4q + j of rows 4i..4i+3
        b[4 * i] = _mm512_shuffle_ps(a[4 * i], a[4 * i + 2], 0x44);
        b[4 * i + 1] = _mm512_shuffle_ps(a[4 * i], a[4 * i + 2], 0xEE);
        b[4 * i + 2] = _mm512_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0x44);
        b[4 * i + 3] = _mm512_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
        const __m512 x0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x88), x1 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xDD);
        const __m512 y0 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x88), y1 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(x0, y0, 0x88), r[8 + j] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(x1, y1, 0x88), r[12 + j] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

// The first `used` coefficients of 16 Gaussians' rows (row stride `row`),
// transposed: out[j * stride + l] = coefficient j of Gaussian l.
void transpose_coeffs(const float* co, int64_t row, int used, float* out, int64_t stride) {
    for (int t = 0; t * 16 < used; ++t) {
        const int n = std::min(16, used - 16 * t);
        __m512 r[16];
        for (int l = 0; l < 16; ++l) r[l] = _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), co + l * row + 16 * t);
        transpose16(r);
        for (int c = 0; c < n; ++c) _mm512_store_ps(out + (16 * t + c) * stride, r[c]);
    }
}
#endif

// With the degree a compile-time constant the basis code has no branches, so
// the loops vectorize across Gaussians. One camera's colors of Gaussians
// [begin, end); `raw` keeps the unclamped values for the backward pass.
template <int DEGREE>
void colors_range(int64_t begin, int64_t end, int64_t K, const float* means, Vec3 center, const float* co,
                  float* raw, float* out) {
    auto colors = [&](int64_t i, const float* coeffs, int stride) {
        const float* m = means + i * 3;
        float* r = raw + i * 3;
        sh_to_color(DEGREE, {m[0] - center.x, m[1] - center.y, m[2] - center.z}, coeffs, r, stride);
        for (int ch = 0; ch < 3; ++ch) {
            r[ch] += SH_COLOR_OFFSET;
            out[i * 3 + ch] = clamp_color(r[ch]);
        }
    };
#if defined(__AVX512F__)
    // In blocks of SUB Gaussians, the coefficients transposed first: read in
    // place, each vector of them took 16 scalar loads and inserts (GCC's code
    // for the strided access). SH forward 1.3-1.5x while the coefficients sit
    // in cache (5k Gaussians), 0.95-1.07x on 100k, whose 19 MB stream from
    // memory; the same in the backward pass's direction gradient measured 0.79x.
    constexpr int USED = (DEGREE + 1) * (DEGREE + 1) * 3;
    constexpr int64_t SUB = 256;
    alignas(64) float block[USED * SUB];
    for (; begin + SUB <= end; begin += SUB) {
        for (int64_t b = 0; b < SUB; b += 16) transpose_coeffs(co + (begin + b) * K * 3, K * 3, USED, block + b, SUB);
#pragma omp simd
        for (int64_t l = 0; l < SUB; ++l) colors(begin + l, block + l, SUB);
    }
#endif
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) colors(i, co + i * K * 3, 1);
}

// One camera's part of the backward pass over Gaussians [begin, end), in
// blocks of 256 and three loops per block. The first two vectorize across
// Gaussians: the direction gradient (added to v_means, camera 0 writes it;
// its sum over the block is returned for the camera center), and the basis
// into a buffer (one row per coefficient). The third adds the outer product
// basis x v_color (sh_to_color_backward_coeffs; camera 0 writes it),
// contiguous per Gaussian. (With the basis computed in that third loop, its
// scalar stores reloaded as vectors stalled: 2x slower. An `omp simd` on the
// basis loop made GCC 12 give up on it; it auto-vectorizes without.)
template <int DEGREE>
Vec3 colors_backward_range(int64_t begin, int64_t end, int64_t K, const float* means, Vec3 center,
                           const float* co, const float* raw, const float* v_colors, float* v_coeffs,
                           float* v_means, bool first_camera) {
    constexpr int K_USED = (DEGREE + 1) * (DEGREE + 1);
    constexpr int64_t SUB = 256;
    alignas(64) float basis[K_USED][SUB];
    alignas(64) float vc[SUB * 3];  // dL/dcolor before the clamp
    float sx = 0.f, sy = 0.f, sz = 0.f;
    for (int64_t b0 = begin; b0 < end; b0 += SUB) {
        const int64_t b1 = std::min(end, b0 + SUB);
        for (int64_t j = 0; j < (b1 - b0) * 3; ++j) vc[j] = clamp_color_backward(raw[b0 * 3 + j], v_colors[b0 * 3 + j]);
#pragma omp simd reduction(+ : sx, sy, sz)
        for (int64_t i = b0; i < b1; ++i) {
            const float* m = means + i * 3;  // (a named Vec3 here kept GCC from vectorizing)
            const Vec3 g = sh_to_color_backward_dir(DEGREE, {m[0] - center.x, m[1] - center.y, m[2] - center.z},
                                                    co + i * K * 3, vc + (i - b0) * 3);
            v_means[i * 3] = first_camera ? g.x : v_means[i * 3] + g.x;
            v_means[i * 3 + 1] = first_camera ? g.y : v_means[i * 3 + 1] + g.y;
            v_means[i * 3 + 2] = first_camera ? g.z : v_means[i * 3 + 2] + g.z;
            sx += g.x, sy += g.y, sz += g.z;
        }
        for (int64_t i = b0; i < b1; ++i) {
            const float* m = means + i * 3;
            float inv, bk[16];
            const Vec3 u = unit_direction({m[0] - center.x, m[1] - center.y, m[2] - center.z}, &inv);
            sh_basis(DEGREE, u.x, u.y, u.z, bk);
            for (int k = 0; k < K_USED; ++k) basis[k][i - b0] = bk[k];
        }
        for (int64_t i = b0; i < b1; ++i) {
            const float* v = vc + (i - b0) * 3;
            float* out = v_coeffs + i * K * 3;
            if (first_camera) {  // written, not added: no zero fill to read back
                for (int k = 0; k < K_USED; ++k)
                    for (int ch = 0; ch < 3; ++ch) out[k * 3 + ch] = basis[k][i - b0] * v[ch];
                std::fill(out + K_USED * 3, out + K * 3, 0.f);  // coefficients beyond the degree
            } else {
                for (int k = 0; k < K_USED; ++k)
                    for (int ch = 0; ch < 3; ++ch) out[k * 3 + ch] += basis[k][i - b0] * v[ch];
            }
        }
    }
    return {-sx, -sy, -sz};  // dir = mean - center
}

}  // namespace

// means [N, 3], viewmats [C, 4, 4], coeffs [N, K, 3] -> colors [C, N, 3] and
// the unclamped colors [C, N, 3] (for sh_colors_backward)
std::vector<Tensor> sh_colors_forward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                      const Tensor& coeffs) {
    const int64_t C = viewmats.size(0), N = means.size(0), K = coeffs.size(1);
    Tensor colors = torch::empty({C, N, 3}, means.options()), raw = torch::empty({C, N, 3}, means.options());
    const std::vector<Vec3> centers = camera_centers(viewmats);
    const float *m = means.data_ptr<float>(), *co = coeffs.data_ptr<float>();
    float *out = colors.data_ptr<float>(), *r = raw.data_ptr<float>();
    for_each_block(N, BLOCK, 20.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            float *rc = r + c * N * 3, *oc = out + c * N * 3;  // camera c's colors
            switch (degree) {
                case 0: colors_range<0>(begin, end, K, m, centers[c], co, rc, oc); break;
                case 1: colors_range<1>(begin, end, K, m, centers[c], co, rc, oc); break;
                case 2: colors_range<2>(begin, end, K, m, centers[c], co, rc, oc); break;
                default: colors_range<3>(begin, end, K, m, centers[c], co, rc, oc);
            }
        }
    });
    return {colors, raw};
}

// -> v_means [N, 3], v_coeffs [N, K, 3] (both summed over cameras in camera
// order) and v_viewmats [C, 4, 4] (through the camera centers)
std::vector<Tensor> sh_colors_backward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                       const Tensor& coeffs, const Tensor& raw, const Tensor& v_colors) {
    const int64_t C = viewmats.size(0), N = means.size(0), K = coeffs.size(1);
    // all written by camera 0's pass
    Tensor v_means = torch::empty({N, 3}, means.options()), v_coeffs = torch::empty({N, K, 3}, means.options());
    const std::vector<Vec3> centers = camera_centers(viewmats);
    const int64_t n_blocks = (N + BLOCK - 1) / BLOCK;
    std::vector<Vec3> v_centers(n_blocks * C);  // per block and camera, summed in block order below
    const float *m = means.data_ptr<float>(), *co = coeffs.data_ptr<float>(), *r = raw.data_ptr<float>();
    const float* vc = v_colors.data_ptr<float>();
    float *vm = v_means.data_ptr<float>(), *vco = v_coeffs.data_ptr<float>();
    for_each_block(N, BLOCK, 20.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            const int64_t i = c * N * 3;  // camera c's colors
            Vec3& vcen = v_centers[begin / BLOCK * C + c];
            switch (degree) {
                case 0: vcen = colors_backward_range<0>(begin, end, K, m, centers[c], co, r + i, vc + i, vco, vm, c == 0); break;
                case 1: vcen = colors_backward_range<1>(begin, end, K, m, centers[c], co, r + i, vc + i, vco, vm, c == 0); break;
                case 2: vcen = colors_backward_range<2>(begin, end, K, m, centers[c], co, r + i, vc + i, vco, vm, c == 0); break;
                default: vcen = colors_backward_range<3>(begin, end, K, m, centers[c], co, r + i, vc + i, vco, vm, c == 0);
            }
        }
    });
    Tensor v_viewmats = torch::zeros({C, 4, 4}, means.options());
    for (int64_t c = 0; c < C; ++c) {
        Vec3 sum = {0.f, 0.f, 0.f};
        for (int64_t b = 0; b < n_blocks; ++b) sum = sum + v_centers[b * C + c];
        camera_center_backward(viewmats.data_ptr<float>() + c * 16, sum, v_viewmats.data_ptr<float>() + c * 16);
    }
    return {v_means, v_coeffs, v_viewmats};
}

}  // namespace splat::cpu
