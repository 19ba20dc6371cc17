// 3DGS view-dependent colors: forward one thread per (camera, Gaussian);
// backward one thread per Gaussian looping over cameras, so the thread owns
// its v_coeffs and v_means rows (no atomics, camera order like the CPU backend).
#include "../include/sh.h"
#include "device.cuh"
#include "launch.h"

namespace splat::cuda {
namespace {

__device__ Vec3 view_direction(const float* mean, const float* viewmat) {
    const Vec3 center = camera_center(viewmat);
    return {mean[0] - center.x, mean[1] - center.y, mean[2] - center.z};
}

__global__ void sh_colors_forward_kernel(int degree, int64_t C, int64_t N, int64_t K, const float* means,
                                         const float* viewmats, const float* coeffs, float* colors, float* raw) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // c * N + n
    if (i >= C * N) return;
    const int64_t c = i / N, n = i % N;
    float rgb[3];
    sh_to_color(degree, view_direction(means + n * 3, viewmats + c * 16), coeffs + n * K * 3, rgb);
    for (int ch = 0; ch < 3; ++ch) {
        raw[i * 3 + ch] = rgb[ch] + SH_COLOR_OFFSET;
        colors[i * 3 + ch] = clamp_color(rgb[ch] + SH_COLOR_OFFSET);
    }
}

__global__ void sh_colors_backward_kernel(int degree, int64_t C, int64_t N, int64_t K, const float* means,
                                          const float* viewmats, const float* coeffs, const float* raw,
                                          const float* v_colors, float* v_means, float* v_coeffs, float* v_dirs) {
    const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (n >= N) return;
    Vec3 v_mean = {0.f, 0.f, 0.f};
    for (int64_t c = 0; c < C; ++c) {
        const int64_t i = c * N + n;
        const Vec3 dir = view_direction(means + n * 3, viewmats + c * 16);
        float v[3];
        for (int ch = 0; ch < 3; ++ch) v[ch] = clamp_color_backward(raw[i * 3 + ch], v_colors[i * 3 + ch]);
        sh_to_color_backward_coeffs(degree, dir, v, v_coeffs + n * K * 3);
        const Vec3 g = sh_to_color_backward_dir(degree, dir, coeffs + n * K * 3, v);
        v_mean = v_mean + g;
        v_dirs[i * 3] = g.x;
        v_dirs[i * 3 + 1] = g.y;
        v_dirs[i * 3 + 2] = g.z;
    }
    v_means[n * 3] = v_mean.x;
    v_means[n * 3 + 1] = v_mean.y;
    v_means[n * 3 + 2] = v_mean.z;
}

__global__ void camera_centers_backward_kernel(int64_t C, const float* viewmats, const float* v_centers,
                                               float* v_viewmats) {
    const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const float* v = v_centers + c * 3;
    camera_center_backward(viewmats + c * 16, {v[0], v[1], v[2]}, v_viewmats + c * 16);
}

}  // namespace

cudaError_t sh_colors_forward(int degree, int64_t C, int64_t N, int64_t K, const float* means,
                              const float* viewmats, const float* coeffs, float* colors, float* raw,
                              cudaStream_t stream) {
    if (C * N == 0) return cudaSuccess;
    sh_colors_forward_kernel<<<blocks_for(C * N), THREADS_1D, 0, stream>>>(degree, C, N, K, means, viewmats, coeffs,
                                                                           colors, raw);
    return cudaGetLastError();
}

cudaError_t sh_colors_backward(int degree, int64_t C, int64_t N, int64_t K, const float* means,
                               const float* viewmats, const float* coeffs, const float* raw,
                               const float* v_colors, float* v_means, float* v_coeffs, float* v_dirs,
                               cudaStream_t stream) {
    if (N == 0) return cudaSuccess;
    sh_colors_backward_kernel<<<blocks_for(N), THREADS_1D, 0, stream>>>(degree, C, N, K, means, viewmats, coeffs,
                                                                        raw, v_colors, v_means, v_coeffs, v_dirs);
    return cudaGetLastError();
}

cudaError_t camera_centers_backward(int64_t C, const float* viewmats, const float* v_centers, float* v_viewmats,
                                    cudaStream_t stream) {
    if (C == 0) return cudaSuccess;
    camera_centers_backward_kernel<<<blocks_for(C), THREADS_1D, 0, stream>>>(C, viewmats, v_centers, v_viewmats);
    return cudaGetLastError();
}

}  // namespace splat::cuda
