// Projection of N Gaussians into C cameras: parallel over Gaussians.
#include <ATen/Parallel.h>

#include <memory>

#include "../include/projection.h"
#include "ops.h"

namespace splat::cpu {

int num_threads() { return std::max(1, at::get_num_threads()); }

double& min_parallel_work_ns() {
    static double ns = 10e3;
    return ns;
}

std::vector<Tensor> project_forward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                    const Tensor& opacities, const Tensor& viewmats, const Tensor& Ks, int64_t width,
                                    int64_t height, double eps2d, double near_plane, double far_plane,
                                    bool antialiased) {
    const int64_t N = means.size(0), C = viewmats.size(0);
    auto f32 = means.options();
    Tensor radii = torch::empty({C, N, 2}, f32.dtype(torch::kInt32));  // all written below
    Tensor means2d = torch::empty({C, N, 2}, f32);
    Tensor depths = torch::empty({C, N}, f32);
    Tensor conics = torch::empty({C, N, 3}, f32);
    Tensor comps = torch::empty({C, N}, f32);
    std::unique_ptr<float[]> cov_diag(new float[C * N * 2]);  // the 2D covariance's diagonal, between the passes
    const float *m = means.data_ptr<float>(), *q = quats.data_ptr<float>(), *s = scales.data_ptr<float>();
    const float *op = opacities.data_ptr<float>(), *vm = viewmats.data_ptr<float>(), *k = Ks.data_ptr<float>();
    int* r_out = radii.data_ptr<int>();
    float *m2 = means2d.data_ptr<float>(), *d_out = depths.data_ptr<float>(), *c_out = conics.data_ptr<float>();
    float *comp_out = comps.data_ptr<float>(), *cov_out = cov_diag.get();
    ProjectionSettings settings = {float(eps2d), float(near_plane), float(far_plane), antialiased};

    for_each_block(N, 1024, 15.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            const Camera cam = load_camera(vm + c * 16, k + c * 9, int(width), int(height));
            // The shape, vectorized across Gaussians (4x faster than one at a
            // time); the covariance's diagonal, or -1 for a non-candidate,
            // kept for the scalar radius pass below.
#pragma omp simd
            for (int64_t n = begin; n < end; ++n) {
                const ProjectedShape p = projected_shape({m[n * 3], m[n * 3 + 1], m[n * 3 + 2]},
                                                         {q[n * 4], q[n * 4 + 1], q[n * 4 + 2], q[n * 4 + 3]},
                                                         {s[n * 3], s[n * 3 + 1], s[n * 3 + 2]}, cam, settings);
                const int64_t i = c * N + n;
                d_out[i] = p.depth;
                m2[i * 2] = p.mean2d.x;
                m2[i * 2 + 1] = p.mean2d.y;
                c_out[i * 3] = p.conic.a;
                c_out[i * 3 + 1] = p.conic.b;
                c_out[i * 3 + 2] = p.conic.c;
                comp_out[i] = p.compensation;
                cov_out[i * 2] = p.candidate != 0.f ? p.cov.a : -1.f;
                cov_out[i * 2 + 1] = p.cov.c;
            }
            for (int64_t n = begin; n < end; ++n) {
                const int64_t i = c * N + n;
                int rx = 0, ry = 0;
                const bool valid = cov_out[i * 2] >= 0.f &&
                                   footprint_radius({m2[i * 2], m2[i * 2 + 1]}, {cov_out[i * 2], 0.f, cov_out[i * 2 + 1]},
                                                    comp_out[i], op[n], cam, settings, &rx, &ry);
                r_out[i * 2] = valid ? rx : 0;
                r_out[i * 2 + 1] = valid ? ry : 0;
            }
        }
    });
    return {radii, means2d, depths, conics, comps};
}

namespace {

// n zeros, kept between calls (per calling thread) for gradients the
// backward pass did not reach: two fresh zero tensors per render took
// 0.1-0.2 ms on 100k Gaussians (profiled), a third of this pass.
const float* zero_floats(int64_t n) {
    thread_local std::vector<float> zeros;
    if (int64_t(zeros.size()) < n) zeros.assign(n, 0.f);
    return zeros.data();
}

// The per-Gaussian inputs of the projection backward, and Gaussian n's
// gradient in camera c from them (forced inline, as HOST_DEVICE does: a call
// left in the loop below would keep it from vectorizing).
struct BackwardInputs {
    const float *means, *quats, *scales, *v_means2d, *v_depths, *v_conics, *v_comps;
    int64_t N;

    HOST_DEVICE ProjectionGrad gradient(const Camera& cam, const ProjectionSettings& settings, int64_t c, int64_t n,
                                        bool viewmat_grad) const {
        const float *m = means + n * 3, *q = quats + n * 4, *s = scales + n * 3;
        const int64_t i = c * N + n;
        const float *vm2 = v_means2d + i * 2, *vc = v_conics + i * 3;
        return project_gaussian_backward({m[0], m[1], m[2]}, {q[0], q[1], q[2], q[3]}, {s[0], s[1], s[2]}, cam,
                                         settings, {vm2[0], vm2[1]}, v_depths[i], {vc[0], vc[1], vc[2]}, v_comps[i],
                                         viewmat_grad);
    }
};

}  // namespace

std::vector<Tensor> project_backward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                     const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height,
                                     double eps2d, double near_plane, double far_plane, bool antialiased,
                                     const Tensor& radii, const Tensor& v_means2d, const Tensor& v_depths,
                                     const Tensor& v_conics, const Tensor& v_compensations, bool viewmat_grad) {
    const int64_t N = means.size(0), C = viewmats.size(0);
    // zeroed below, block by block, by the threads that add to them
    Tensor v_means = torch::empty({N, 3}, means.options());
    Tensor v_quats = torch::empty({N, 4}, means.options());
    Tensor v_scales = torch::empty({N, 3}, means.options());
    // Viewmat gradients are reduced over fixed-size blocks of Gaussians, then
    // summed in block order: the result does not depend on the thread count.
    constexpr int64_t BLOCK = 1024;
    const int64_t n_blocks = (N + BLOCK - 1) / BLOCK;
    Tensor v_view_blocks = torch::zeros({std::max<int64_t>(n_blocks, 1), C, 12}, means.options());
    // an empty v_depths / v_compensations: a gradient the backward pass did not reach
    auto or_zeros = [&](const Tensor& grad) { return grad.numel() ? grad.data_ptr<float>() : zero_floats(C * N); };
    const BackwardInputs inputs = {means.data_ptr<float>(), quats.data_ptr<float>(), scales.data_ptr<float>(),
                                   v_means2d.data_ptr<float>(), or_zeros(v_depths), v_conics.data_ptr<float>(),
                                   or_zeros(v_compensations), N};
    const float *vm = viewmats.data_ptr<float>(), *k = Ks.data_ptr<float>();
    const int* r = radii.data_ptr<int>();
    float *vm_out = v_means.data_ptr<float>(), *vq_out = v_quats.data_ptr<float>();
    float *vs_out = v_scales.data_ptr<float>(), *vb = v_view_blocks.data_ptr<float>();
    ProjectionSettings settings = {float(eps2d), float(near_plane), float(far_plane), antialiased};

    for_each_block(N, BLOCK, 80.0 * C, [&](int64_t n0, int64_t n1) {
        const int64_t block = n0 / BLOCK;
        // (in parallel, and in cache for the adds: with torch::zeros before,
        // this pass was 1.03-1.06x slower)
        std::fill(vm_out + n0 * 3, vm_out + n1 * 3, 0.f);
        std::fill(vq_out + n0 * 4, vq_out + n1 * 4, 0.f);
        std::fill(vs_out + n0 * 3, vs_out + n1 * 3, 0.f);
        for (int64_t c = 0; c < C; ++c) {
            const Camera cam = load_camera(vm + c * 16, k + c * 9, int(width), int(height));
            // Vectorized across Gaussians (the math has no branches left;
            // 9x faster than one at a time); culled ones (radii 0) add zeros.
#pragma omp simd
            for (int64_t n = n0; n < n1; ++n) {
                const int64_t i = c * N + n;
                const bool on = (r[i * 2] > 0) | (r[i * 2 + 1] > 0);
                const ProjectionGrad g = inputs.gradient(cam, settings, c, n, false);
                vm_out[n * 3] += on ? g.v_mean.x : 0.f;
                vm_out[n * 3 + 1] += on ? g.v_mean.y : 0.f;
                vm_out[n * 3 + 2] += on ? g.v_mean.z : 0.f;
                vq_out[n * 4] += on ? g.v_quat.w : 0.f;
                vq_out[n * 4 + 1] += on ? g.v_quat.x : 0.f;
                vq_out[n * 4 + 2] += on ? g.v_quat.y : 0.f;
                vq_out[n * 4 + 3] += on ? g.v_quat.z : 0.f;
                vs_out[n * 3] += on ? g.v_scale.x : 0.f;
                vs_out[n * 3 + 1] += on ? g.v_scale.y : 0.f;
                vs_out[n * 3 + 2] += on ? g.v_scale.z : 0.f;
            }
            if (!viewmat_grad) continue;
            // Pose refinement: a second, scalar pass for the camera's
            // gradient, a sum over Gaussians (recomputing the rest is cheap).
            float* acc = vb + (block * C + c) * 12;
            for (int64_t n = n0; n < n1; ++n) {
                const int64_t i = c * N + n;
                if (r[i * 2] <= 0 && r[i * 2 + 1] <= 0) continue;
                const ProjectionGrad g = inputs.gradient(cam, settings, c, n, true);
                for (int a = 0; a < 3; ++a) {
                    for (int b = 0; b < 3; ++b) acc[a * 4 + b] += g.v_R.m[a][b];
                }
                acc[3] += g.v_t.x;
                acc[7] += g.v_t.y;
                acc[11] += g.v_t.z;
            }
        }
    });
    if (!viewmat_grad) return {v_means, v_quats, v_scales, Tensor()};  // None in Python
    Tensor v_viewmats = torch::zeros({C, 4, 4}, means.options());
    float* vv = v_viewmats.data_ptr<float>();
    for (int64_t block = 0; block < n_blocks; ++block)
        for (int64_t c = 0; c < C; ++c)
            for (int j = 0; j < 12; ++j) vv[c * 16 + j] += vb[(block * C + c) * 12 + j];  // rows 0..2
    return {v_means, v_quats, v_scales, v_viewmats};
}

}  // namespace splat::cpu
