// Spherical harmonics colors for C cameras x N Gaussians: parallel over Gaussians.
#include <ATen/Parallel.h>

#include <algorithm>

#include "../include/sh.h"
#include "ops.h"

namespace splat::cpu {

namespace {

// With the degree a compile-time constant the basis code has no branches, so
// the loop vectorizes across Gaussians.
template <int DEGREE>
void sh_forward_range(int64_t begin, int64_t end, int64_t K, const float* d, const float* co, float* out) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) {
        const float* dir = d + i * 3;
        sh_to_color(DEGREE, {dir[0], dir[1], dir[2]}, co + i * K * 3, out + i * 3);
    }
}

}  // namespace

// dirs [C, N, 3], coeffs [N, K, 3] -> colors [C, N, 3]
Tensor sh_forward(int64_t degree, const Tensor& dirs, const Tensor& coeffs) {
    const int64_t C = dirs.size(0), N = dirs.size(1), K = coeffs.size(1);
    Tensor colors = torch::empty({C, N, 3}, dirs.options());
    const float *d = dirs.data_ptr<float>(), *co = coeffs.data_ptr<float>();
    float* out = colors.data_ptr<float>();
    at::parallel_for(0, N, grain_for(N, 20.0 * C), [&](int64_t begin, int64_t end) {
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
    Tensor v_coeffs = torch::empty({N, K, 3}, dirs.options());  // zeroed per Gaussian below, while in cache
    const float *d = dirs.data_ptr<float>(), *co = coeffs.data_ptr<float>(), *vc = v_colors.data_ptr<float>();
    float *vd = v_dirs.data_ptr<float>(), *vco = v_coeffs.data_ptr<float>();
    at::parallel_for(0, N, grain_for(N, 40.0 * C), [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
            std::fill(vco + n * K * 3, vco + (n + 1) * K * 3, 0.f);
            for (int64_t c = 0; c < C; ++c) {
                int64_t i = c * N + n;
                const float* dir = d + i * 3;
                Vec3 g = sh_to_color_backward(int(degree), {dir[0], dir[1], dir[2]}, co + n * K * 3, vc + i * 3,
                                              vco + n * K * 3);
                vd[i * 3] = g.x;
                vd[i * 3 + 1] = g.y;
                vd[i * 3 + 2] = g.z;
            }
        }
    });
    return {v_dirs, v_coeffs};
}

}  // namespace splat::cpu
