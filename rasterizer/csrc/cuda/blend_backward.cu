// Backward of the blending, back to front: one thread block per tile (or
// sub-block, see device.cuh), one thread per pixel, Gaussians staged in
// shared memory in batches read from the back of the tile's list.
//
// Each pixel starts from its final transmittance and recovers the one before
// each Gaussian by dividing out (1 - alpha), as the CPU backend does. Instead
// of a per-channel buffer of the color blended behind the current Gaussian it
// carries one scalar, S = sum over later Gaussians j of w_j (c_j . v_pixel),
// since dL/dalpha_k only needs that dot product:
//   dL/dalpha_k = T_k (c_k . v) - S / (1 - alpha_k) + v_alpha T_final / (1 - alpha_k).
// Per-Gaussian gradients are summed over the warp (__shfl_down_sync) and
// added to global memory with one atomicAdd per warp and value, so the float
// sums are run-order dependent: backward is not bit-deterministic on CUDA.
#include "device.cuh"
#include "launch.h"

namespace splat::cuda {
namespace {

template <int CDIM>
__global__ void __launch_bounds__(BLEND_MAX_THREADS)
    blend_backward_kernel(BlendArgs a, BlendBackwardIO io, int side, int subs_per_side) {
    const BlendPixel px = blend_pixel(a.tile_size, a.tile_width, a.tile_height, a.width, a.height, side,
                                      subs_per_side);
    const int start = a.isect_offsets[px.tile];
    const int D = CDIM > 0 ? CDIM : static_cast<int>(a.D);
    const float cx = px.x + 0.5f, cy = px.y + 0.5f;

    const float T_final = px.inside ? io.final_T[px.pix] : 1.f;
    const int last = px.inside ? io.last_ids[px.pix] : 0;  // Gaussians [0, last) of the list may count
    const float v_alpha_out = px.inside ? io.v_alphas[px.pix] : 0.f;
    const float* v_pix = io.v_render + px.pix * D;  // [D]
    float v_reg[CDIM > 0 ? CDIM : 1] = {};
    if (CDIM > 0 && px.inside)
#pragma unroll
        for (int ch = 0; ch < (CDIM > 0 ? CDIM : 1); ++ch) v_reg[ch] = v_pix[ch];

    // Only the first max(last) Gaussians of the list matter to this block.
    __shared__ int block_last;
    if (threadIdx.x == 0) block_last = 0;
    __syncthreads();
    if (last > 0) atomicMax(&block_last, last);
    __syncthreads();
    const int end = start + block_last;

    __shared__ SharedGaussian batch[BLEND_MAX_THREADS];
    float T = T_final;  // transmittance behind the current Gaussian
    float S = 0.f;      // sum over later Gaussians of w_j (c_j . v)
    for (int batch_end = end; batch_end > start; batch_end -= blockDim.x) {
        __syncthreads();  // the previous batch is no longer read
        const int k_load = batch_end - 1 - static_cast<int>(threadIdx.x);  // batch[j] = list[batch_end - 1 - j]
        if (k_load >= start) batch[threadIdx.x] = load_gaussian(a.flatten_ids[k_load], a.means2d, a.conics, a.opacities);
        __syncthreads();
        const int count = min(static_cast<int>(blockDim.x), batch_end - start);
        for (int j = 0; j < count; ++j) {  // uniform trip count: the warp stays converged
            const SharedGaussian& g = batch[j];
            const int rel = batch_end - 1 - j - start;
            const float dx = g.mx - cx, dy = g.my - cy;
            const float sigma = gaussian_sigma(g.conic, dx, dy);
            const float raw = gaussian_alpha_raw(g.opacity, sigma);
            const bool active = rel < last && alpha_counts(sigma, raw);
            if (!__any_sync(FULL_MASK, active)) continue;  // warp-uniform

            SampleGrad sg = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
            float w = 0.f;
            const float* c = a.colors + int64_t(g.id) * D;
            if (active) {
                const float alpha = clamp_alpha(raw);
                const float ra = 1.f / (1.f - alpha);
                const float T_k = T * ra;  // transmittance in front of this Gaussian
                w = alpha * T_k;
                float cv = 0.f;  // c_k . v
                if (CDIM > 0) {
#pragma unroll
                    for (int ch = 0; ch < (CDIM > 0 ? CDIM : 1); ++ch) cv += c[ch] * v_reg[ch];
                } else {
                    for (int ch = 0; ch < D; ++ch) cv += c[ch] * v_pix[ch];
                }
                const float v_alpha = T_final * ra * v_alpha_out + cv * T_k - S * ra;
                S += w * cv;
                sg = alpha_backward(g.conic, g.opacity, dx, dy, sigma, v_alpha);
                T = T_k;
            }

            // warp sums, lane 0 adds them to the Gaussian's gradients
            const float s_op = warp_sum(sg.v_opacity);
            const float s_ca = warp_sum(sg.v_conic_a), s_cb = warp_sum(sg.v_conic_b), s_cc = warp_sum(sg.v_conic_c);
            const float s_mx = warp_sum(sg.v_mean_x), s_my = warp_sum(sg.v_mean_y);
            const int64_t id = g.id;
            if (lane_zero()) {
                atomicAdd(io.v_opacities + id, s_op);
                atomicAdd(io.v_conics + id * 3, s_ca);
                atomicAdd(io.v_conics + id * 3 + 1, s_cb);
                atomicAdd(io.v_conics + id * 3 + 2, s_cc);
                atomicAdd(io.v_means2d + id * 2, s_mx);
                atomicAdd(io.v_means2d + id * 2 + 1, s_my);
            }
            if (io.v_abs != nullptr) {  // absgrad: sum over pixels of |dL/dmean2d|
                const float s_ax = warp_sum(fabsf(sg.v_mean_x)), s_ay = warp_sum(fabsf(sg.v_mean_y));
                if (lane_zero()) {
                    atomicAdd(io.v_abs + id * 2, s_ax);
                    atomicAdd(io.v_abs + id * 2 + 1, s_ay);
                }
            }
            // dL/dc_k = w_k v
            if (CDIM > 0) {
#pragma unroll
                for (int ch = 0; ch < (CDIM > 0 ? CDIM : 1); ++ch) {
                    const float s = warp_sum(w * v_reg[ch]);
                    if (lane_zero()) atomicAdd(io.v_colors + id * D + ch, s);
                }
            } else {
                for (int ch = 0; ch < D; ++ch) {
                    const float s = warp_sum(active ? w * v_pix[ch] : 0.f);
                    if (lane_zero()) atomicAdd(io.v_colors + id * D + ch, s);
                }
            }
        }
    }
}

template <int CDIM>
cudaError_t launch(const BlendArgs& a, const BlendBackwardIO& io, cudaStream_t stream) {
    const BlendLayout l = blend_layout(a.tile_size);
    const dim3 grid(static_cast<unsigned>(a.C * a.tile_width * a.tile_height), l.subs_per_side * l.subs_per_side);
    blend_backward_kernel<CDIM><<<grid, l.threads, 0, stream>>>(a, io, l.side, l.subs_per_side);
    return cudaGetLastError();
}

}  // namespace

cudaError_t blend_backward(const BlendArgs& a, const BlendBackwardIO& io, cudaStream_t stream) {
    if (a.C * a.tile_width * a.tile_height == 0 || a.M == 0) return cudaSuccess;
    switch (a.D) {
        case 1: return launch<1>(a, io, stream);
        case 3: return launch<3>(a, io, stream);
        case 4: return launch<4>(a, io, stream);
        default: return launch<0>(a, io, stream);
    }
}

}  // namespace splat::cuda
