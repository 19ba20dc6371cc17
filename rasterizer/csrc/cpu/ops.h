// Declarations of the CPU ops bound in ext.cpp.
#pragma once

#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <tuple>
#include <vector>

namespace splat::cpu {

using torch::Tensor;

std::vector<Tensor> project_forward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                    const Tensor& opacities, const Tensor& viewmats, const Tensor& Ks, int64_t width,
                                    int64_t height, double eps2d, double near_plane, double far_plane,
                                    bool antialiased);

// v_depths, v_compensations: empty for gradients backward did not reach (zeros)
std::vector<Tensor> project_backward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                     const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height,
                                     double eps2d, double near_plane, double far_plane, bool antialiased,
                                     const Tensor& radii, const Tensor& v_means2d, const Tensor& v_depths,
                                     const Tensor& v_conics, const Tensor& v_compensations, bool viewmat_grad);

// -> colors, raw, and the direction Jacobian (empty without dir_jacobian),
// which sh_colors_backward takes back (or an empty tensor).
std::vector<Tensor> sh_colors_forward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                      const Tensor& coeffs, bool dir_jacobian);

std::vector<Tensor> sh_colors_backward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                       const Tensor& coeffs, const Tensor& raw, const Tensor& v_colors,
                                       const Tensor& dir_jacobian);

// conics and opacities empty: no reach test (whole tile rectangles)
std::vector<Tensor> intersect_tiles(const Tensor& means2d, const Tensor& radii, const Tensor& depths,
                                    const Tensor& conics, const Tensor& opacities, int64_t tile_size,
                                    int64_t tile_width, int64_t tile_height);

// -> render, alphas, final_T, last_ids, weights, pixel_counts, and the packed
// per-Gaussian rows, which blend_backward takes back (or an empty tensor).
std::vector<Tensor> blend_forward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                  const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                  int64_t width, int64_t height, int64_t tile_size);

std::vector<Tensor> blend_backward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                   const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                   int64_t width, int64_t height, int64_t tile_size, const Tensor& render_alphas,
                                   const Tensor& last_ids, const Tensor& v_render_colors,
                                   const Tensor& v_render_alphas, bool absgrad, const Tensor& forward_packed);

// Input validation (float32, contiguous): the index of the first tensor
// holding a NaN or an infinity, or -1; whether quats [N, 4] holds a
// zero-length quaternion.
int64_t first_non_finite(const std::vector<Tensor>& tensors);
bool any_zero_quaternion(const Tensor& quats);

// Threads for the parallel loops: torch's setting, so torch.set_num_threads applies.
int num_threads();

// Waking a sleeping OpenMP thread for a parallel loop costs tens of
// microseconds (40-90 us on the 2-core CI machines; `import splat` lets idle
// threads spin only briefly, see splat/__init__.py), so a loop runs on the
// calling thread unless each thread gets at least min_parallel_work_ns() of
// work (default 10 us; tests set 0 to run every loop in parallel). The
// per-item costs the callers pass are one-thread measurements with the data
// in cache, rounded: only their order of magnitude matters. Inside a whole
// iteration the data comes from memory and the stages take 1.5-3x those
// estimates, and a thread that ran the last loop is often still spinning:
// there a 10 us threshold beat 150 us by 1.03-1.14x on the small bench case
// and 1.11x on bird over six in-process A/B runs (AVX-512, fifteenth session).
double& min_parallel_work_ns();

// Threads for a loop over `items` items of about `ns_per_item` each.
inline int threads_for(int64_t items, double ns_per_item) {
    const double per_thread = double(items) * ns_per_item / num_threads();
    return per_thread >= min_parallel_work_ns() ? num_threads() : 1;
}

// at::parallel_for grain with the same rule: one task, or an even split.
inline int64_t grain_for(int64_t items, double ns_per_item) {
    const int threads = threads_for(items, ns_per_item);
    return std::max<int64_t>(1, (items + threads - 1) / threads);
}

// Calls body(begin, end) on consecutive blocks of `block` items, the blocks
// spread over threads. For loops vectorized across items: every item then
// takes the same code path (vector body or remainder, whose roundings may
// differ) whatever the thread count, so results do not depend on it.
template <typename Body>
void for_each_block(int64_t items, int64_t block, double ns_per_item, const Body& body) {
    const int64_t n_blocks = (items + block - 1) / block;
    at::parallel_for(0, n_blocks, grain_for(n_blocks, ns_per_item * block), [&](int64_t first, int64_t last) {
        for (int64_t b = first; b < last; ++b) body(b * block, std::min(items, (b + 1) * block));
    });
}

}  // namespace splat::cpu
