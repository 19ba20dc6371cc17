// Front-to-back blending: one thread block per tile (or per 16x16 sub-block
// of a larger tile, see device.cuh), one thread per pixel.
//
// The tile's depth-sorted Gaussians are staged in shared memory in batches of
// one Gaussian per thread; every thread then walks the batch in order. The
// block stops as soon as all its pixels are done (__syncthreads_count).
// Per-Gaussian statistics (accumulated weight, pixel count) are summed over
// the warp first, then one atomicAdd per warp: the float weights are thus
// summed in a run-dependent order (not bit-deterministic, unlike the CPU).
//
// CDIM > 0: channel count known at compile time, the pixel's color sum lives
// in registers; CDIM == 0: any D, the sum is accumulated in the output itself
// (the pixel owns it, so no atomics).
#include "device.cuh"
#include "launch.h"

namespace splat::cuda {
namespace {

template <int CDIM>
__global__ void __launch_bounds__(BLEND_MAX_THREADS)
    blend_forward_kernel(BlendArgs a, BlendForwardOut out, int side, int subs_per_side) {
    const BlendPixel px = blend_pixel(a.tile_size, a.tile_width, a.tile_height, a.width, a.height, side,
                                      subs_per_side);
    const int64_t n_tiles = a.C * int64_t(a.tile_width) * a.tile_height;
    const int start = a.isect_offsets[px.tile];
    const int end = px.tile + 1 < n_tiles ? a.isect_offsets[px.tile + 1] : static_cast<int>(a.M);
    const int D = CDIM > 0 ? CDIM : static_cast<int>(a.D);
    const float cx = px.x + 0.5f, cy = px.y + 0.5f;  // pixel center

    __shared__ SharedGaussian batch[BLEND_MAX_THREADS];
    float T = 1.f;
    bool done = !px.inside;
    int last = 0;  // 1 + index in the tile's list of the last Gaussian used
    float acc[CDIM > 0 ? CDIM : 1] = {};
    float* render = out.render + px.pix * D;

    for (int batch_start = start; batch_start < end; batch_start += blockDim.x) {
        // also the barrier that keeps the previous batch alive until all used it
        if (__syncthreads_count(done) == static_cast<int>(blockDim.x)) break;
        const int k = batch_start + threadIdx.x;
        if (k < end) batch[threadIdx.x] = load_gaussian(a.flatten_ids[k], a.means2d, a.conics, a.opacities);
        __syncthreads();
        const int count = min(static_cast<int>(blockDim.x), end - batch_start);
        for (int j = 0; j < count; ++j) {  // same trip count on every lane: the warp stays converged
            const SharedGaussian& g = batch[j];
            bool use = false;
            float w = 0.f;
            if (!done) {
                const float sigma = gaussian_sigma(g.conic, g.mx - cx, g.my - cy);
                const float raw = gaussian_alpha_raw(g.opacity, sigma);
                if (alpha_counts(sigma, raw)) {
                    const float alpha = clamp_alpha(raw);
                    const float next_T = T * (1.f - alpha);
                    if (next_T <= T_MIN) {
                        done = true;  // this Gaussian is not blended
                    } else {
                        use = true;
                        w = alpha * T;
                        const float* c = a.colors + int64_t(g.id) * D;
                        if (CDIM > 0) {
#pragma unroll
                            for (int ch = 0; ch < (CDIM > 0 ? CDIM : 1); ++ch) acc[ch] += w * c[ch];
                        } else {
                            for (int ch = 0; ch < D; ++ch) render[ch] += w * c[ch];
                        }
                        T = next_T;
                        last = batch_start + j - start + 1;
                    }
                }
            }
            const unsigned used = __ballot_sync(FULL_MASK, use);
            if (used) {  // warp-uniform
                const float wsum = warp_sum(w);
                if (lane_zero()) {
                    atomicAdd(out.weights + g.id, wsum);
                    atomicAdd(out.pixel_counts + g.id, __popc(used));
                }
            }
        }
    }
    if (!px.inside) return;
    if (CDIM > 0)
        for (int ch = 0; ch < (CDIM > 0 ? CDIM : 1); ++ch) render[ch] = acc[ch];
    out.alphas[px.pix] = 1.f - T;
    out.final_T[px.pix] = T;
    out.last_ids[px.pix] = last;
}

template <int CDIM>
cudaError_t launch(const BlendArgs& a, const BlendForwardOut& out, cudaStream_t stream) {
    const BlendLayout l = blend_layout(a.tile_size);
    const dim3 grid(static_cast<unsigned>(a.C * a.tile_width * a.tile_height), l.subs_per_side * l.subs_per_side);
    blend_forward_kernel<CDIM><<<grid, l.threads, 0, stream>>>(a, out, l.side, l.subs_per_side);
    return cudaGetLastError();
}

}  // namespace

cudaError_t blend_forward(const BlendArgs& a, const BlendForwardOut& out, cudaStream_t stream) {
    if (a.C * a.tile_width * a.tile_height == 0 || a.width == 0 || a.height == 0) return cudaSuccess;
    switch (a.D) {  // the common channel counts get register accumulators
        case 1: return launch<1>(a, out, stream);
        case 3: return launch<3>(a, out, stream);
        case 4: return launch<4>(a, out, stream);
        default: return launch<0>(a, out, stream);
    }
}

}  // namespace splat::cuda
