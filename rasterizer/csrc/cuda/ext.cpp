// Torch binding of the CUDA rasterizer ops: allocates the outputs, reads the
// raw pointers and launches on torch's current stream. Same op names,
// arguments and outputs as the CPU extension (cpu/ops.h); inputs are float32
// CUDA tensors made contiguous by backend_cuda.py. The only file that needs
// torch's CUDA headers (the compile check of the kernels skips it).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/extension.h>

#include <limits>
#include <vector>

#include "launch.h"

namespace splat::cuda_ext {

using cuda::BlendArgs, cuda::BlendBackwardIO, cuda::BlendForwardOut, cuda::IntersectArgs,
    cuda::IntersectSortBuffers, cuda::ProjectArgs, cuda::ProjectBackwardIO;
using torch::Tensor;

namespace {

void check(cudaError_t err, const char* what) {
    TORCH_CHECK(err == cudaSuccess, "splat cuda ", what, ": ", cudaGetErrorString(err));
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

template <typename T>
T* ptr(const Tensor& t) {
    return t.numel() ? t.data_ptr<T>() : nullptr;
}

Tensor scratch(int64_t bytes, const Tensor& like) {
    return torch::empty({std::max<int64_t>(bytes, 1)}, like.options().dtype(torch::kUInt8));
}

ProjectArgs project_args(const Tensor& means, const Tensor& quats, const Tensor& scales, const Tensor& opacities,
                         const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height, double eps2d,
                         double near_plane, double far_plane, bool antialiased) {
    return {viewmats.size(0), means.size(0), int(width), int(height), float(eps2d), float(near_plane),
            float(far_plane), antialiased, ptr<float>(means), ptr<float>(quats), ptr<float>(scales),
            opacities.defined() ? ptr<float>(opacities) : nullptr, ptr<float>(viewmats), ptr<float>(Ks)};
}

BlendArgs blend_args(const Tensor& means2d, const Tensor& conics, const Tensor& colors, const Tensor& opacities,
                     const Tensor& isect_offsets, const Tensor& flatten_ids, int64_t width, int64_t height,
                     int64_t tile_size) {
    return {colors.size(0), colors.size(1), colors.size(2), flatten_ids.size(0), int(width), int(height),
            int(tile_size), int(isect_offsets.size(2)), int(isect_offsets.size(1)), ptr<float>(means2d),
            ptr<float>(conics), ptr<float>(colors), ptr<float>(opacities), ptr<int>(isect_offsets),
            ptr<int>(flatten_ids)};
}

}  // namespace

std::vector<Tensor> project_forward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                    const Tensor& opacities, const Tensor& viewmats, const Tensor& Ks, int64_t width,
                                    int64_t height, double eps2d, double near_plane, double far_plane,
                                    bool antialiased) {
    const c10::cuda::CUDAGuard guard(means.device());
    const int64_t N = means.size(0), C = viewmats.size(0);
    auto f32 = means.options();
    Tensor radii = torch::zeros({C, N, 2}, f32.dtype(torch::kInt32));
    Tensor means2d = torch::zeros({C, N, 2}, f32);
    Tensor depths = torch::zeros({C, N}, f32);
    Tensor conics = torch::zeros({C, N, 3}, f32);
    Tensor comps = torch::zeros({C, N}, f32);
    ProjectArgs a = project_args(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near_plane,
                                 far_plane, antialiased);
    check(cuda::project_forward(a, {ptr<int>(radii), ptr<float>(means2d), ptr<float>(depths),
                                           ptr<float>(conics), ptr<float>(comps)},
                                       stream()),
          "project_forward");
    return {radii, means2d, depths, conics, comps};
}

std::vector<Tensor> project_backward(const Tensor& means, const Tensor& quats, const Tensor& scales,
                                     const Tensor& viewmats, const Tensor& Ks, int64_t width, int64_t height,
                                     double eps2d, double near_plane, double far_plane, bool antialiased,
                                     const Tensor& radii, const Tensor& v_means2d, const Tensor& v_depths,
                                     const Tensor& v_conics, const Tensor& v_compensations, bool viewmat_grad) {
    const c10::cuda::CUDAGuard guard(means.device());
    const int64_t N = means.size(0), C = viewmats.size(0);
    // empty: a gradient the backward pass did not reach, i.e. zeros
    const Tensor v_dep = v_depths.numel() ? v_depths : torch::zeros({C, N}, means.options());
    const Tensor v_comp = v_compensations.numel() ? v_compensations : torch::zeros({C, N}, means.options());
    Tensor v_means = torch::zeros({N, 3}, means.options());
    Tensor v_quats = torch::zeros({N, 4}, means.options());
    Tensor v_scales = torch::zeros({N, 3}, means.options());
    Tensor v_viewmats = viewmat_grad ? torch::zeros({C, 4, 4}, means.options()) : Tensor();  // None in Python
    ProjectArgs a = project_args(means, quats, scales, Tensor(), viewmats, Ks, width, height, eps2d, near_plane,
                                 far_plane, antialiased);
    ProjectBackwardIO io = {ptr<int>(radii),        ptr<float>(v_means2d), ptr<float>(v_dep),
                            ptr<float>(v_conics),   ptr<float>(v_comp),    ptr<float>(v_means),
                            ptr<float>(v_quats),    ptr<float>(v_scales),
                            viewmat_grad ? ptr<float>(v_viewmats) : nullptr};
    check(cuda::project_backward(a, io, stream()), "project_backward");
    return {v_means, v_quats, v_scales, v_viewmats};
}

// -> colors [C, N, 3], unclamped colors [C, N, 3]. dir_jacobian is for the
// CPU's signature: this backward recomputes the direction gradient.
std::vector<Tensor> sh_colors_forward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                      const Tensor& coeffs, bool /*dir_jacobian*/) {
    const c10::cuda::CUDAGuard guard(means.device());
    const int64_t C = viewmats.size(0), N = means.size(0), K = coeffs.size(1);
    Tensor colors = torch::empty({C, N, 3}, means.options()), raw = torch::empty({C, N, 3}, means.options());
    check(cuda::sh_colors_forward(int(degree), C, N, K, ptr<float>(means), ptr<float>(viewmats), ptr<float>(coeffs),
                                  ptr<float>(colors), ptr<float>(raw), stream()),
          "sh_colors_forward");
    return {colors, raw};
}

// -> v_means [N, 3], v_coeffs [N, K, 3], v_viewmats [C, 4, 4]
std::vector<Tensor> sh_colors_backward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                       const Tensor& coeffs, const Tensor& raw, const Tensor& v_colors) {
    const c10::cuda::CUDAGuard guard(means.device());
    const int64_t C = viewmats.size(0), N = means.size(0), K = coeffs.size(1);
    Tensor v_means = torch::empty({N, 3}, means.options());
    Tensor v_coeffs = torch::zeros({N, K, 3}, means.options());
    Tensor v_dirs = torch::empty({C, N, 3}, means.options());
    check(cuda::sh_colors_backward(int(degree), C, N, K, ptr<float>(means), ptr<float>(viewmats), ptr<float>(coeffs),
                                   ptr<float>(raw), ptr<float>(v_colors), ptr<float>(v_means), ptr<float>(v_coeffs),
                                   ptr<float>(v_dirs), stream()),
          "sh_colors_backward");
    const Tensor v_centers = -v_dirs.sum(1).contiguous();  // dir = mean - center
    Tensor v_viewmats = torch::zeros({C, 4, 4}, means.options());
    check(cuda::camera_centers_backward(C, ptr<float>(viewmats), ptr<float>(v_centers), ptr<float>(v_viewmats),
                                        stream()),
          "camera_centers_backward");
    return {v_means, v_coeffs, v_viewmats};
}

// -> tiles_per_gauss [C, N], isect_offsets [C, tile_height, tile_width], flatten_ids [M]
// conics and opacities empty: no reach test (whole tile rectangles)
std::vector<Tensor> intersect_tiles(const Tensor& means2d, const Tensor& radii, const Tensor& depths,
                                    const Tensor& conics, const Tensor& opacities, int64_t tile_size,
                                    int64_t tile_width, int64_t tile_height) {
    const c10::cuda::CUDAGuard guard(depths.device());
    const int64_t C = depths.size(0), N = depths.size(1), CN = C * N;
    TORCH_CHECK(CN < std::numeric_limits<int>::max(), "splat cuda: too many cameras x Gaussians (", CN, ")");
    auto i32 = radii.options();
    IntersectArgs a = {C, N, int(tile_size), int(tile_width), int(tile_height),
                       ptr<float>(means2d), ptr<int>(radii), ptr<float>(depths),
                       conics.numel() ? ptr<float>(conics) : nullptr, conics.numel() ? ptr<float>(opacities) : nullptr};
    Tensor tiles_per_gauss = torch::zeros({C, N}, i32);
    Tensor cum = torch::empty({CN}, i32.dtype(torch::kInt64));
    Tensor temp = scratch(int64_t(cuda::intersect_count_temp_bytes(CN)), radii);
    check(cuda::intersect_count(a, ptr<int>(tiles_per_gauss), ptr<int64_t>(cum), temp.data_ptr(), size_t(temp.numel()),
                          stream()),
          "intersect_count");
    const int64_t M = CN ? cum[CN - 1].item<int64_t>() : 0;  // synchronizes: M sizes the outputs
    TORCH_CHECK(M < std::numeric_limits<int>::max(), "splat cuda: too many tile intersections (", M,
                "); use fewer Gaussians or a larger tile_size");

    Tensor offsets = torch::empty({C, tile_height, tile_width}, i32);
    Tensor flatten_ids = torch::empty({M}, i32);
    Tensor keys = torch::empty({2, M}, i32.dtype(torch::kInt64));  // in / out
    Tensor ids_in = torch::empty({M}, i32);
    Tensor sort_temp = scratch(int64_t(cuda::intersect_sort_temp_bytes(M, C * tile_width * tile_height)), radii);
    uint64_t* k = reinterpret_cast<uint64_t*>(ptr<int64_t>(keys));
    IntersectSortBuffers b = {k, M ? k + M : nullptr, ptr<int>(ids_in), ptr<int>(flatten_ids), ptr<int>(offsets),
                              sort_temp.data_ptr(), size_t(sort_temp.numel())};
    check(cuda::intersect_sort(a, ptr<int64_t>(cum), M, b, stream()), "intersect_sort");
    return {tiles_per_gauss, offsets, flatten_ids};
}

// -> render [C, H, W, D], alphas [C, H, W, 1], final_T [C, H, W], last_ids [C, H, W],
//    accum weights [C, N], pixel counts [C, N]
std::vector<Tensor> blend_forward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                  const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                  int64_t width, int64_t height, int64_t tile_size) {
    const c10::cuda::CUDAGuard guard(colors.device());
    const int64_t C = colors.size(0), N = colors.size(1), D = colors.size(2);
    auto f32 = colors.options();
    Tensor render = torch::zeros({C, height, width, D}, f32);
    Tensor alphas = torch::zeros({C, height, width, 1}, f32);
    Tensor final_T = torch::ones({C, height, width}, f32);
    Tensor last_ids = torch::zeros({C, height, width}, f32.dtype(torch::kInt32));
    Tensor weights = torch::zeros({C, N}, f32);
    Tensor pixel_counts = torch::zeros({C, N}, f32.dtype(torch::kInt32));
    BlendArgs a = blend_args(means2d, conics, colors, opacities, isect_offsets, flatten_ids, width, height, tile_size);
    BlendForwardOut out = {ptr<float>(render),   ptr<float>(alphas),  ptr<float>(final_T),
                           ptr<int>(last_ids),   ptr<float>(weights), ptr<int>(pixel_counts)};
    check(cuda::blend_forward(a, out, stream()), "blend_forward");
    return {render, alphas, final_T, last_ids, weights, pixel_counts};
}

// -> v_means2d [C, N, 2], v_conics [C, N, 3], v_colors [C, N, D], v_opacities [C, N],
//    v_abs [C, N, 2] (undefined without absgrad)
std::vector<Tensor> blend_backward(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                                   const Tensor& opacities, const Tensor& isect_offsets, const Tensor& flatten_ids,
                                   int64_t width, int64_t height, int64_t tile_size, const Tensor& final_T,
                                   const Tensor& last_ids, const Tensor& v_render_colors,
                                   const Tensor& v_render_alphas, bool absgrad) {
    const c10::cuda::CUDAGuard guard(colors.device());
    const int64_t C = colors.size(0), N = colors.size(1), D = colors.size(2);
    auto f32 = colors.options();
    Tensor v_means2d = torch::zeros({C, N, 2}, f32), v_conics = torch::zeros({C, N, 3}, f32);
    Tensor v_colors = torch::zeros({C, N, D}, f32), v_opacities = torch::zeros({C, N}, f32);
    Tensor v_abs = absgrad ? torch::zeros({C, N, 2}, f32) : Tensor();
    BlendArgs a = blend_args(means2d, conics, colors, opacities, isect_offsets, flatten_ids, width, height, tile_size);
    BlendBackwardIO io = {ptr<float>(final_T),     ptr<int>(last_ids),      ptr<float>(v_render_colors),
                          ptr<float>(v_render_alphas), ptr<float>(v_means2d), ptr<float>(v_conics),
                          ptr<float>(v_colors),    ptr<float>(v_opacities), absgrad ? ptr<float>(v_abs) : nullptr};
    check(cuda::blend_backward(a, io, stream()), "blend_backward");
    return {v_means2d, v_conics, v_colors, v_opacities, v_abs};
}

}  // namespace splat::cuda_ext

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    using namespace splat::cuda_ext;
    m.def("project_forward", &project_forward);
    m.def("project_backward", &project_backward);
    m.def("sh_colors_forward", &sh_colors_forward);
    m.def("sh_colors_backward", &sh_colors_backward);
    m.def("intersect_tiles", &intersect_tiles);
    m.def("blend_forward", &blend_forward);
    m.def("blend_backward", &blend_backward);
}
