// Declarations of the CPU ops bound in ext.cpp.
#pragma once

#include <torch/extension.h>

#include <tuple>
#include <vector>

namespace splat::cpu {

using torch::Tensor;

std::vector<Tensor> project_forward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                    const Tensor& opacities, const Tensor& viewmats, const Tensor& Ks, int64_t width,
                                    int64_t height, double eps2d, double near_plane, double far_plane,
                                    bool antialiased);

std::vector<Tensor> project_backward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                     const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height,
                                     double eps2d, double near_plane, double far_plane, bool antialiased,
                                     const Tensor& radii, const Tensor& v_means2d, const Tensor& v_depths,
                                     const Tensor& v_conics, const Tensor& v_compensations, bool viewmat_grad);

Tensor sh_forward(int64_t degree, const Tensor& dirs, const Tensor& coeffs);

std::vector<Tensor> sh_backward(int64_t degree, const Tensor& dirs, const Tensor& coeffs, const Tensor& v_colors);

std::vector<Tensor> intersect_tiles(const Tensor& means2d, const Tensor& radii, const Tensor& depths,
                                    int64_t tile_size, int64_t tile_width, int64_t tile_height);

std::vector<Tensor> blend_forward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                  const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                  int64_t width, int64_t height, int64_t tile_size);

std::vector<Tensor> blend_backward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                   const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                   int64_t width, int64_t height, int64_t tile_size, const Tensor& render_alphas,
                                   const Tensor& last_ids, const Tensor& v_render_colors,
                                   const Tensor& v_render_alphas, bool absgrad);

// Threads for the parallel loops: torch's setting, so torch.set_num_threads applies.
int num_threads();

}  // namespace splat::cpu
