// Projection of N Gaussians into C cameras (forward: one thread per camera and
// Gaussian) and its backward (one thread per Gaussian, looping over cameras so
// the per-Gaussian gradients need no atomics; viewmat gradients are summed
// per warp, then one atomicAdd per warp and camera).
#include "device.cuh"
#include "launch.h"

namespace splat::cuda {
namespace {

__device__ __forceinline__ Vec3 load3(const float* p, int64_t i) { return {p[i * 3], p[i * 3 + 1], p[i * 3 + 2]}; }
__device__ __forceinline__ Vec4 load4(const float* p, int64_t i) {
    return {p[i * 4], p[i * 4 + 1], p[i * 4 + 2], p[i * 4 + 3]};
}

__global__ void project_forward_kernel(ProjectArgs a, ProjectForwardOut out) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // c * N + n
    if (i >= a.C * a.N) return;
    const int64_t c = i / a.N, n = i % a.N;
    const Camera cam = load_camera(a.viewmats + c * 16, a.Ks + c * 9, a.width, a.height);
    const ProjectionSettings s = {a.eps2d, a.near_plane, a.far_plane, a.antialiased};
    const Projection p = project_gaussian(load3(a.means, n), load4(a.quats, n), load3(a.scales, n), a.opacities[n],
                                          cam, s);
    out.depths[i] = p.depth;
    out.means2d[i * 2] = p.mean2d.x;
    out.means2d[i * 2 + 1] = p.mean2d.y;
    out.conics[i * 3] = p.conic.a;
    out.conics[i * 3 + 1] = p.conic.b;
    out.conics[i * 3 + 2] = p.conic.c;
    out.compensations[i] = p.compensation;
    out.radii[i * 2] = p.valid ? p.radius_x : 0;
    out.radii[i * 2 + 1] = p.valid ? p.radius_y : 0;
}

__global__ void project_backward_kernel(ProjectArgs a, ProjectBackwardIO io) {
    const int64_t n = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const bool in_range = n < a.N;  // no early return: every lane joins the warp sums
    const ProjectionSettings s = {a.eps2d, a.near_plane, a.far_plane, a.antialiased};
    Vec3 mean = {0.f, 0.f, 0.f}, scale = {0.f, 0.f, 0.f};
    Vec4 quat = {1.f, 0.f, 0.f, 0.f};
    if (in_range) {
        mean = load3(a.means, n);
        quat = load4(a.quats, n);
        scale = load3(a.scales, n);
    }
    Vec3 v_mean = {0.f, 0.f, 0.f}, v_scale = {0.f, 0.f, 0.f};
    Vec4 v_quat = {0.f, 0.f, 0.f, 0.f};
    for (int64_t c = 0; c < a.C; ++c) {
        const int64_t i = c * a.N + n;
        float v_view[12] = {};  // rows 0..2 of this camera's viewmat gradient
        if (in_range && (io.radii[i * 2] > 0 || io.radii[i * 2 + 1] > 0)) {
            const Camera cam = load_camera(a.viewmats + c * 16, a.Ks + c * 9, a.width, a.height);
            const ProjectionGrad g = project_gaussian_backward(
                mean, quat, scale, cam, s, {io.v_means2d[i * 2], io.v_means2d[i * 2 + 1]}, io.v_depths[i],
                {io.v_conics[i * 3], io.v_conics[i * 3 + 1], io.v_conics[i * 3 + 2]}, io.v_compensations[i],
                io.v_viewmats != nullptr);
            v_mean = v_mean + g.v_mean;
            v_scale = v_scale + g.v_scale;
            v_quat = {v_quat.w + g.v_quat.w, v_quat.x + g.v_quat.x, v_quat.y + g.v_quat.y, v_quat.z + g.v_quat.z};
            for (int r = 0; r < 3; ++r)
                for (int col = 0; col < 3; ++col) v_view[r * 4 + col] = g.v_R.m[r][col];
            v_view[3] = g.v_t.x;
            v_view[7] = g.v_t.y;
            v_view[11] = g.v_t.z;
        }
        if (io.v_viewmats == nullptr) continue;  // uniform over the launch: no divergence
        for (int j = 0; j < 12; ++j) {
            const float sum = warp_sum(v_view[j]);
            if (lane_zero() && sum != 0.f) atomicAdd(io.v_viewmats + c * 16 + j, sum);
        }
    }
    if (!in_range) return;
    io.v_means[n * 3] = v_mean.x;
    io.v_means[n * 3 + 1] = v_mean.y;
    io.v_means[n * 3 + 2] = v_mean.z;
    io.v_quats[n * 4] = v_quat.w;
    io.v_quats[n * 4 + 1] = v_quat.x;
    io.v_quats[n * 4 + 2] = v_quat.y;
    io.v_quats[n * 4 + 3] = v_quat.z;
    io.v_scales[n * 3] = v_scale.x;
    io.v_scales[n * 3 + 1] = v_scale.y;
    io.v_scales[n * 3 + 2] = v_scale.z;
}

}  // namespace

cudaError_t project_forward(const ProjectArgs& a, const ProjectForwardOut& out, cudaStream_t stream) {
    if (a.C * a.N == 0) return cudaSuccess;
    project_forward_kernel<<<blocks_for(a.C * a.N), THREADS_1D, 0, stream>>>(a, out);
    return cudaGetLastError();
}

cudaError_t project_backward(const ProjectArgs& a, const ProjectBackwardIO& io, cudaStream_t stream) {
    if (a.N == 0) return cudaSuccess;
    project_backward_kernel<<<blocks_for(a.N), THREADS_1D, 0, stream>>>(a, io);
    return cudaGetLastError();
}

}  // namespace splat::cuda
