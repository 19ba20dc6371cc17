// Spherical harmonics colors for C cameras x N Gaussians: parallel over Gaussians.
#include <ATen/Parallel.h>

#include <algorithm>

#include "../include/sh.h"
#include "ops.h"

namespace splat::cpu {

namespace {

// With the degree a compile-time constant the basis code has no branches, so
// the loops vectorize across Gaussians.
template <int DEGREE>
void sh_forward_range(int64_t begin, int64_t end, int64_t K, const float* d, const float* co, float* out) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
        const float* dir = d + i * 3;
        sh_to_color(DEGREE, {dir[0], dir[1], dir[2]}, co + i * K * 3, out + i * 3);
    }
}

// One camera's pass: v_dirs written and this camera's part added to
// v_coeffs, in three loops over a block of Gaussians. The first two vectorize
// across Gaussians: the direction gradient, and the basis into a buffer (one
// row per coefficient). The third adds the outer product basis x v_color
// (sh_to_color_backward_coeffs; camera 0 writes it), contiguous per Gaussian.
// (With the basis computed in that third loop, its scalar stores reloaded as
// vectors stalled: 2x slower. An `omp simd` on the basis loop made GCC 12 give
// up on it; it auto-vectorizes without.)
template <int DEGREE>
void sh_backward_range(int64_t begin, int64_t end, int64_t K, const float* d, const float* co, const float* vc,
                       float* vco, float* vd, bool first_camera) {
    constexpr int K_USED = (DEGREE + 1) * (DEGREE + 1);
    constexpr int64_t BLOCK = 256;
    alignas(64) float basis[K_USED][BLOCK];
    for (int64_t b0 = begin; b0 < end; b0 += BLOCK) {
        const int64_t b1 = std::min(end, b0 + BLOCK);
#pragma omp simd
        for (int64_t i = b0; i < b1; ++i) {
            const float* dir = d + i * 3;  // (a named Vec3 here kept GCC from vectorizing)
            const Vec3 g = sh_to_color_backward_dir(DEGREE, {dir[0], dir[1], dir[2]}, co + i * K * 3, vc + i * 3);
            vd[i * 3] = g.x;
            vd[i * 3 + 1] = g.y;
            vd[i * 3 + 2] = g.z;
        }
        for (int64_t i = b0; i < b1; ++i) {
            const float* dir = d + i * 3;
            float inv, bk[16];
            const Vec3 u = unit_direction({dir[0], dir[1], dir[2]}, &inv);
            sh_basis(DEGREE, u.x, u.y, u.z, bk);
            for (int k = 0; k < K_USED; ++k) basis[k][i - b0] = bk[k];
        }
        for (int64_t i = b0; i < b1; ++i) {
            const float v[3] = {vc[i * 3], vc[i * 3 + 1], vc[i * 3 + 2]};  // in registers: out may alias vc
            float* out = vco + i * K * 3;
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
}

}  // namespace

// dirs [C, N, 3], coeffs [N, K, 3] -> colors [C, N, 3]
Tensor sh_forward(int64_t degree, const Tensor& dirs, const Tensor& coeffs) {
    const int64_t C = dirs.size(0), N = dirs.size(1), K = coeffs.size(1);
    Tensor colors = torch::empty({C, N, 3}, dirs.options());
    const float *d = dirs.data_ptr<float>(), *co = coeffs.data_ptr<float>();
    float* out = colors.data_ptr<float>();
    for_each_block(N, 1024, 20.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            const float* dc = d + c * N * 3;  // camera c's directions and colors
            float* oc = out + c * N * 3;
            switch (degree) {
                case 0: sh_forward_range<0>(begin, end, K, dc, co, oc); break;
                case 1: sh_forward_range<1>(begin, end, K, dc, co, oc); break;
                case 2: sh_forward_range<2>(begin, end, K, dc, co, oc); break;
                default: sh_forward_range<3>(begin, end, K, dc, co, oc);
            }
        }
    });
    return colors;
}

// -> v_dirs [C, N, 3], v_coeffs [N, K, 3] (summed over cameras in camera order)
std::vector<Tensor> sh_backward(int64_t degree, const Tensor& dirs, const Tensor& coeffs, const Tensor& v_colors) {
    const int64_t C = dirs.size(0), N = dirs.size(1), K = coeffs.size(1);
    Tensor v_dirs = torch::empty({C, N, 3}, dirs.options());
    Tensor v_coeffs = C > 0 ? torch::empty({N, K, 3}, dirs.options())  // all written by camera 0's pass
                             : torch::zeros({N, K, 3}, dirs.options());
    const float *d = dirs.data_ptr<float>(), *co = coeffs.data_ptr<float>(), *vc = v_colors.data_ptr<float>();
    float *vd = v_dirs.data_ptr<float>(), *vco = v_coeffs.data_ptr<float>();
    for_each_block(N, 1024, 20.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            const int64_t i = c * N;  // camera c's directions, color gradients and direction gradients
            switch (degree) {
                case 0: sh_backward_range<0>(begin, end, K, d + i * 3, co, vc + i * 3, vco, vd + i * 3, c == 0); break;
                case 1: sh_backward_range<1>(begin, end, K, d + i * 3, co, vc + i * 3, vco, vd + i * 3, c == 0); break;
                case 2: sh_backward_range<2>(begin, end, K, d + i * 3, co, vc + i * 3, vco, vd + i * 3, c == 0); break;
                default: sh_backward_range<3>(begin, end, K, d + i * 3, co, vc + i * 3, vco, vd + i * 3, c == 0);
            }
        }
    });
    return {v_dirs, v_coeffs};
}

}  // namespace splat::cpu
