// Host-side interface of the CUDA kernels: plain pointers and sizes, no torch.
//
// The kernels (*.cu) include only this file, ../include/*.h, device.cuh and
// CUDA/CUB headers, so they compile with a bare nvcc (the CI compile check);
// ext.cpp is the only file that knows about torch. Every launcher is
// asynchronous on `stream` and returns the launch status (cudaGetLastError or
// the CUB call's result). Tensor layouts are those of the CPU backend (ops.h),
// all float32 / int32, contiguous; C cameras, N Gaussians, M intersections.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace splat::cuda {

// ---- projection.cu ------------------------------------------------------
struct ProjectArgs {
    int64_t C, N;
    int width, height;
    float eps2d, near_plane, far_plane;
    bool antialiased;
    const float* means;      // [N, 3]
    const float* quats;      // [N, 4] wxyz
    const float* scales;     // [N, 3]
    const float* opacities;  // [N]; negative: plain RADIUS_SIGMA extent
    const float* viewmats;   // [C, 4, 4]
    const float* Ks;         // [C, 3, 3]
};

struct ProjectForwardOut {
    int* radii;            // [C, N, 2]
    float* means2d;        // [C, N, 2]
    float* depths;         // [C, N]
    float* conics;         // [C, N, 3]
    float* compensations;  // [C, N]
};

struct ProjectBackwardIO {
    const int* radii;              // [C, N, 2]
    const float* v_means2d;        // [C, N, 2]
    const float* v_depths;         // [C, N]
    const float* v_conics;         // [C, N, 3]
    const float* v_compensations;  // [C, N]
    float* v_means;                // [N, 3]     written
    float* v_quats;                // [N, 4]     written
    float* v_scales;               // [N, 3]     written
    float* v_viewmats;             // [C, 4, 4]  accumulated (+=): pass zeros; null: not wanted
};

cudaError_t project_forward(const ProjectArgs& a, const ProjectForwardOut& out, cudaStream_t stream);
cudaError_t project_backward(const ProjectArgs& a, const ProjectBackwardIO& io, cudaStream_t stream);

// ---- sh.cu ----------------------------------------------------------------
// 3DGS view-dependent colors (sh.h): means [N, 3], viewmats [C, 4, 4],
// coeffs [N, K, 3] -> colors [C, N, 3] and the unclamped colors raw [C, N, 3]
cudaError_t sh_colors_forward(int degree, int64_t C, int64_t N, int64_t K, const float* means,
                              const float* viewmats, const float* coeffs, float* colors, float* raw,
                              cudaStream_t stream);
// -> v_means [N, 3] (written), v_coeffs [N, K, 3] (accumulated: pass zeros) and
// v_dirs [C, N, 3] (written; minus their sum over N is dL/d(camera center))
cudaError_t sh_colors_backward(int degree, int64_t C, int64_t N, int64_t K, const float* means,
                               const float* viewmats, const float* coeffs, const float* raw,
                               const float* v_colors, float* v_means, float* v_coeffs, float* v_dirs,
                               cudaStream_t stream);
// v_viewmats [C, 4, 4] (accumulated: pass zeros) from v_centers [C, 3]
cudaError_t camera_centers_backward(int64_t C, const float* viewmats, const float* v_centers, float* v_viewmats,
                                    cudaStream_t stream);

// ---- intersect.cu ---------------------------------------------------------
// Three steps, because the caller must read the total M back to allocate:
//   1. intersect_count: tiles_per_gauss [C*N] and its inclusive scan cum [C*N];
//   2. (caller) M = cum[C*N - 1];
//   3. intersect_sort: one (tile | depth) key per intersection, radix sort,
//      flatten_ids [M] and isect_offsets [C * tile_height * tile_width].
// CUB scratch sizes come from the *_temp_bytes functions.
struct IntersectArgs {
    int64_t C, N;
    int tile_size, tile_width, tile_height;
    const float* means2d;  // [C, N, 2]
    const int* radii;      // [C, N, 2]
    const float* depths;   // [C, N]
    const float* conics;     // [C, N, 3]; null: no reach test (whole tile rectangles)
    const float* opacities;  // [C, N]
};

size_t intersect_count_temp_bytes(int64_t CN);
cudaError_t intersect_count(const IntersectArgs& a, int* tiles_per_gauss, int64_t* cum, void* temp,
                            size_t temp_bytes, cudaStream_t stream);

struct IntersectSortBuffers {
    uint64_t* keys_in;   // [M] scratch
    uint64_t* keys_out;  // [M] scratch
    int* ids_in;         // [M] scratch
    int* flatten_ids;    // [M] output
    int* isect_offsets;  // [C * tile_height * tile_width] output
    void* temp;          // CUB scratch
    size_t temp_bytes;
};

size_t intersect_sort_temp_bytes(int64_t M, int64_t n_tiles);
cudaError_t intersect_sort(const IntersectArgs& a, const int64_t* cum, int64_t M, const IntersectSortBuffers& b,
                           cudaStream_t stream);

// ---- blend_forward.cu / blend_backward.cu ---------------------------------
struct BlendArgs {
    int64_t C, N, D, M;
    int width, height, tile_size, tile_width, tile_height;
    const float* means2d;      // [C, N, 2]
    const float* conics;       // [C, N, 3]
    const float* colors;       // [C, N, D]
    const float* opacities;    // [C, N]
    const int* isect_offsets;  // [C, tile_height, tile_width]
    const int* flatten_ids;    // [M]
};

struct BlendForwardOut {
    float* render;        // [C, H, W, D]  pass zeros
    float* alphas;        // [C, H, W]
    float* final_T;       // [C, H, W]
    int* last_ids;        // [C, H, W]
    float* weights;       // [C, N]  accumulated: pass zeros
    int* pixel_counts;    // [C, N]  accumulated: pass zeros
};

struct BlendBackwardIO {
    const float* final_T;          // [C, H, W]
    const int* last_ids;           // [C, H, W]
    const float* v_render;         // [C, H, W, D]
    const float* v_alphas;         // [C, H, W]
    float* v_means2d;              // [C, N, 2]  accumulated: pass zeros
    float* v_conics;               // [C, N, 3]  accumulated: pass zeros
    float* v_colors;               // [C, N, D]  accumulated: pass zeros
    float* v_opacities;            // [C, N]     accumulated: pass zeros
    float* v_abs;                  // [C, N, 2]  accumulated, or nullptr (no absgrad)
};

cudaError_t blend_forward(const BlendArgs& a, const BlendForwardOut& out, cudaStream_t stream);
cudaError_t blend_backward(const BlendArgs& a, const BlendBackwardIO& io, cudaStream_t stream);

}  // namespace splat::cuda
