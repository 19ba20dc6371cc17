// Spherical-harmonics colors: forward one thread per (camera, Gaussian);
// backward one thread per Gaussian looping over cameras, so the thread owns
// its v_coeffs row (no atomics, camera order like the CPU backend).
#include "../include/sh.h"
#include "device.cuh"
#include "launch.h"

namespace splat::cuda {
namespace {

__global__ void sh_forward_kernel(int degree, int64_t C, int64_t N, int64_t K, const float* dirs,
                                  const float* coeffs, float* colors) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // c * N + n
    if (i >= C * N) return;
    const int64_t n = i % N;
    const float* d = dirs + i * 3;
    sh_to_color(degree, {d[0], d[1], d[2]}, coeffs + n * K * 3, colors + i * 3);
}

__global__ void sh_backward_kernel(int degree, int64_t C, int64_t N, int64_t K, const float* dirs,
                                   const float* coeffs, const float* v_colors, float* v_dirs, float* v_coeffs) {
    const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (n >= N) return;
    for (int64_t c = 0; c < C; ++c) {
        const int64_t i = c * N + n;
        const float* d = dirs + i * 3;
        const Vec3 dir = {d[0], d[1], d[2]};
        sh_to_color_backward_coeffs(degree, dir, v_colors + i * 3, v_coeffs + n * K * 3);
        const Vec3 g = sh_to_color_backward_dir(degree, dir, coeffs + n * K * 3, v_colors + i * 3);
        v_dirs[i * 3] = g.x;
        v_dirs[i * 3 + 1] = g.y;
        v_dirs[i * 3 + 2] = g.z;
    }
}

}  // namespace

cudaError_t sh_forward(int degree, int64_t C, int64_t N, int64_t K, const float* dirs, const float* coeffs,
                       float* colors, cudaStream_t stream) {
    if (C * N == 0) return cudaSuccess;
    sh_forward_kernel<<<blocks_for(C * N), THREADS_1D, 0, stream>>>(degree, C, N, K, dirs, coeffs, colors);
    return cudaGetLastError();
}

cudaError_t sh_backward(int degree, int64_t C, int64_t N, int64_t K, const float* dirs, const float* coeffs,
                        const float* v_colors, float* v_dirs, float* v_coeffs, cudaStream_t stream) {
    if (N == 0) return cudaSuccess;
    sh_backward_kernel<<<blocks_for(N), THREADS_1D, 0, stream>>>(degree, C, N, K, dirs, coeffs, v_colors, v_dirs,
                                                                 v_coeffs);
    return cudaGetLastError();
}

}  // namespace splat::cuda
