// 3DGS view-dependent colors for C cameras x N Gaussians: spherical harmonics
// at the direction from each camera center, + 0.5, clamped at 0 (sh.h), in
// one pass; parallel over blocks of Gaussians.
#include <ATen/Parallel.h>

#include <algorithm>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../include/sh.h"
#include "ops.h"

namespace splat::cpu {

namespace {

constexpr int64_t BLOCK = 1024;  // Gaussians per task (for_each_block)

std::vector<Vec3> camera_centers(const Tensor& viewmats) {
    std::vector<Vec3> centers(viewmats.size(0));
    for (size_t c = 0; c < centers.size(); ++c) centers[c] = camera_center(viewmats.data_ptr<float>() + c * 16);
    return centers;
}

#if defined(__AVX512F__)
// r[c] becomes column c of the 16 x 16 matrix whose rows r held: unpacks
// within 128-bit lanes, then 128-bit lanes across registers.
inline __attribute__((always_inline)) void transpose16(__m512 (&r)[16]) {
    __m512 a[16], b[16];
    for (int i = 0; i < 8; ++i)
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]), a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    for (int i = 0; i < 4; ++i) {  // b[4i + j], 128-bit lane q: column 4q + j of rows 4i..4i+3
        b[4 * i] = _mm512_shuffle_ps(a[4 * i], a[4 * i + 2], 0x44);
        b[4 * i + 1] = _mm512_shuffle_ps(a[4 * i], a[4 * i + 2], 0xEE);
        b[4 * i + 2] = _mm512_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0x44);
        b[4 * i + 3] = _mm512_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j) {
        const __m512 x0 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0x88), x1 = _mm512_shuffle_f32x4(b[j], b[4 + j], 0xDD);
        const __m512 y0 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0x88), y1 = _mm512_shuffle_f32x4(b[8 + j], b[12 + j], 0xDD);
        r[j] = _mm512_shuffle_f32x4(x0, y0, 0x88), r[8 + j] = _mm512_shuffle_f32x4(x0, y0, 0xDD);
        r[4 + j] = _mm512_shuffle_f32x4(x1, y1, 0x88), r[12 + j] = _mm512_shuffle_f32x4(x1, y1, 0xDD);
    }
}

// The first `used` coefficients of `count` <= 16 Gaussians' rows (row stride
// `row`), transposed: out[j * stride + l] = coefficient j of Gaussian l (l >= count: 0).
void transpose_coeffs(const float* co, int64_t row, int used, float* out, int64_t stride, int count = 16) {
    for (int t = 0; t * 16 < used; ++t) {
        const int n = std::min(16, used - 16 * t);
        __m512 r[16];
        for (int l = 0; l < 16; ++l)
            r[l] = l < count ? _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), co + l * row + 16 * t) : _mm512_setzero_ps();
        transpose16(r);
        for (int c = 0; c < n; ++c) _mm512_store_ps(out + (16 * t + c) * stride, r[c]);
    }
}

// The inverse, into the rows of `count` Gaussians: out[l * row + j] = (or +=
// when accumulate) in[j * stride + l] for j < used, l < count. 64-byte
// stores of whole rows where the scalar loop wrote (and GCC shuffled) 48
// values per Gaussian; non-temporal where they overwrite aligned rows (the
// caller then ends with _mm_sfence).
void untranspose_coeffs(const float* in, int64_t stride, int used, float* out, int64_t row, int count,
                        bool accumulate) {
    for (int t = 0; t * 16 < used; ++t) {
        const int n = std::min(16, used - 16 * t);
        const __mmask16 cols = __mmask16((1u << n) - 1);
        __m512 r[16];
        for (int c = 0; c < 16; ++c) r[c] = c < n ? _mm512_load_ps(in + (16 * t + c) * stride) : _mm512_setzero_ps();
        transpose16(r);
        for (int l = 0; l < count; ++l) {
            float* o = out + l * row + 16 * t;
            if (!accumulate && n == 16 && reinterpret_cast<uintptr_t>(o) % 64 == 0)
                _mm512_stream_ps(o, r[l]);
            else
                _mm512_mask_storeu_ps(o, cols, accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(cols, o), r[l]) : r[l]);
        }
    }
}
#elif defined(__AVX2__)
// As transpose16, for 8 x 8: r[c] becomes column c of the matrix whose rows r held.
inline __attribute__((always_inline)) void transpose8(__m256 (&r)[8]) {
    __m256 a[8], b[8];
    for (int i = 0; i < 4; ++i)
        a[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]), a[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    for (int i = 0; i < 2; ++i) {  // b[4i + j], 128-bit lane q: column 4q + j of rows 4i..4i+3
        b[4 * i] = _mm256_shuffle_ps(a[4 * i], a[4 * i + 2], 0x44);
        b[4 * i + 1] = _mm256_shuffle_ps(a[4 * i], a[4 * i + 2], 0xEE);
        b[4 * i + 2] = _mm256_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0x44);
        b[4 * i + 3] = _mm256_shuffle_ps(a[4 * i + 1], a[4 * i + 3], 0xEE);
    }
    for (int j = 0; j < 4; ++j)
        r[j] = _mm256_permute2f128_ps(b[j], b[4 + j], 0x20), r[4 + j] = _mm256_permute2f128_ps(b[j], b[4 + j], 0x31);
}

inline __m256i first_lanes(int n) {  // lanes < n set
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The first n <= 8 floats at p: masked moves only for partial rows (a masked
// store is microcoded on AMD: the backward ran 0.84x with them throughout).
inline __m256 load_first(const float* p, int n, __m256i cols) {
    return n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, cols);
}
inline void store_first(float* p, int n, __m256i cols, __m256 v) {
    if (n == 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, cols, v);
}

// transpose_coeffs and untranspose_coeffs as above, in 8 x 8 blocks, and
// without non-temporal stores: 32-byte ones, to rows 192 bytes apart, made
// the SH backward on (a) 0.82x. Against the scalar loops, on AVX2 (Zen 3):
// SH forward 1.07-1.36x, backward 1.09x on (a), 1.6-2.1x in cache.
void transpose_coeffs(const float* co, int64_t row, int used, float* out, int64_t stride, int count = 16) {
    for (int g = 0; g < 16; g += 8)
        for (int t = 0; t * 8 < used; ++t) {
            const int n = std::min(8, used - 8 * t);
            const __m256i cols = first_lanes(n);
            __m256 r[8];
            for (int l = 0; l < 8; ++l)
                r[l] = g + l < count ? load_first(co + (g + l) * row + 8 * t, n, cols) : _mm256_setzero_ps();
            transpose8(r);
            for (int c = 0; c < n; ++c) _mm256_store_ps(out + (8 * t + c) * stride + g, r[c]);
        }
}

void untranspose_coeffs(const float* in, int64_t stride, int used, float* out, int64_t row, int count,
                        bool accumulate) {
    for (int g = 0; g < count; g += 8)
        for (int t = 0; t * 8 < used; ++t) {
            const int n = std::min(8, used - 8 * t);
            const __m256i cols = first_lanes(n);
            __m256 r[8];
            for (int c = 0; c < 8; ++c) r[c] = c < n ? _mm256_load_ps(in + (8 * t + c) * stride + g) : _mm256_setzero_ps();
            transpose8(r);
            for (int l = 0; l < std::min(8, count - g); ++l) {
                float* o = out + (g + l) * row + 8 * t;
                store_first(o, n, cols, accumulate ? _mm256_add_ps(load_first(o, n, cols), r[l]) : r[l]);
            }
        }
}
#else
void transpose_coeffs(const float* co, int64_t row, int used, float* out, int64_t stride, int count = 16) {
    for (int j = 0; j < used; ++j)
        for (int l = 0; l < 16; ++l) out[j * stride + l] = l < count ? co[l * row + j] : 0.f;
}

void untranspose_coeffs(const float* in, int64_t stride, int used, float* out, int64_t row, int count,
                        bool accumulate) {
    for (int l = 0; l < count; ++l)
        for (int j = 0; j < used; ++j) out[l * row + j] = (accumulate ? out[l * row + j] : 0.f) + in[j * stride + l];
}
#endif

// With the degree a compile-time constant the basis code has no branches, so
// the loops vectorize across Gaussians. One camera's colors of Gaussians
// [begin, end); `raw` keeps the unclamped values for the backward pass, and
// with JACOBIAN `jac` the direction Jacobian (sh_to_color_dir_jacobian),
// entry j of Gaussian i at jac[j * plane + i].
template <int DEGREE, bool JACOBIAN>
void colors_range(int64_t begin, int64_t end, int64_t K, const float* means, Vec3 center, const float* co,
                  float* raw, float* out, float* jac, int64_t plane) {
    auto colors = [&](int64_t i, const float* coeffs, int stride) {
        const float* m = means + i * 3;
        float* r = raw + i * 3;
        sh_to_color(DEGREE, {m[0] - center.x, m[1] - center.y, m[2] - center.z}, coeffs, r, stride);
        for (int ch = 0; ch < 3; ++ch) {
            r[ch] += SH_COLOR_OFFSET;
            out[i * 3 + ch] = clamp_color(r[ch]);
        }
    };
    // A loop of its own: in the colors' loop, GCC's code for the colors
    // changed in the last bit with the Jacobian beside them.
    auto jacobian = [&](int64_t i, const float* coeffs, int stride) {
        const float* m = means + i * 3;
        Vec3 J[3];
        sh_to_color_dir_jacobian(DEGREE, {m[0] - center.x, m[1] - center.y, m[2] - center.z}, coeffs, J, stride);
        for (int ch = 0; ch < 3; ++ch) {
            jac[(ch * 3) * plane + i] = J[ch].x;
            jac[(ch * 3 + 1) * plane + i] = J[ch].y;
            jac[(ch * 3 + 2) * plane + i] = J[ch].z;
        }
    };
#if defined(__AVX512F__) || defined(__AVX2__)
    // In blocks of SUB Gaussians, the coefficients transposed first: read in
    // place, each vector of them took 16 scalar loads and inserts (GCC's code
    // for the strided access). SH forward 1.3-1.5x while the coefficients sit
    // in cache (5k Gaussians), 0.95-1.07x on 100k, whose 19 MB stream from
    // memory. There, a prefetch of the Gaussians PREFETCH ahead: 1.00-1.17x
    // on 100k over six A/B runs, median 1.06x (32 or 128 ahead: 1.04x, 256:
    // 1.00x). In a loop over SH alone 5k Gaussians' 1 MB stays in cache and
    // the prefetch cost 3-6 %, but inside a full iteration (rasterize and
    // backward) the rest of the pipeline evicts it, and there it took SH
    // forward on the small bench case from 168 to 161 us (cpu_ab --flow,
    // AVX-512). (Measured with AVX-512; with AVX2, see transpose8.)
    constexpr int USED = (DEGREE + 1) * (DEGREE + 1) * 3;
    constexpr int64_t SUB = 256, PREFETCH = 64;
    alignas(64) float block[USED * SUB];
    for (; begin + SUB <= end; begin += SUB) {
        for (int64_t b = 0; b < SUB; b += 16) {
            if (begin + b + PREFETCH + 16 <= end) {
                const char* ahead = reinterpret_cast<const char*>(co + (begin + b + PREFETCH) * K * 3);
                for (int64_t o = 0; o < 16 * K * 3 * 4; o += 64) __builtin_prefetch(ahead + o, 0, 3);
            }
            transpose_coeffs(co + (begin + b) * K * 3, K * 3, USED, block + b, SUB);
        }
#pragma omp simd
        for (int64_t l = 0; l < SUB; ++l) colors(begin + l, block + l, SUB);
        if constexpr (JACOBIAN) {
#pragma omp simd
            for (int64_t l = 0; l < SUB; ++l) jacobian(begin + l, block + l, SUB);
        }
    }
#endif
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) colors(i, co + i * K * 3, 1);
    if constexpr (JACOBIAN) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) jacobian(i, co + i * K * 3, 1);
    }
}

// One camera's part of the backward pass over Gaussians [begin, end), in
// blocks of SUB, with loops that vectorize across Gaussians:
//   1. the direction gradient (added to v_means, camera 0 writes it; its sum
//      over the block is returned for the camera center): from the forward
//      pass's Jacobian `jac` (layout as in colors_range), or, without one,
//      from the coefficients transposed as in the forward pass. (Before, the
//      loop read them in place and a `first_camera ?` select in it kept GCC
//      from vectorizing: the SH backward was 1.8x slower on 5k Gaussians.)
//      The Jacobian spares the backward pass the coefficients' 19 MB (100k
//      Gaussians, degree 3) altogether.
//   2. the outer product basis x v_color (sh_to_color_backward_coeffs) into
//      a transposed block, then transposed into the rows of v_coeffs (camera
//      0 writes them). (An `omp simd` on this loop made GCC 12 give up on
//      it; it auto-vectorizes without.)
template <int DEGREE>
Vec3 colors_backward_range(int64_t begin, int64_t end, int64_t K, const float* means, Vec3 center,
                           const float* co, const float* jac, int64_t plane, const float* raw, const float* v_colors,
                           float* v_coeffs, float* v_means, bool first_camera) {
    constexpr int K_USED = (DEGREE + 1) * (DEGREE + 1), USED = K_USED * 3;
    constexpr int64_t SUB = 256;
    alignas(64) float block[USED * SUB];  // [j][l]: coefficient j of Gaussian l (no jac), then its gradient
    alignas(64) float vc[3 * SUB];        // [ch][l]: dL/dcolor before the clamp
    alignas(64) float v_dir[3 * SUB];     // [axis][l]: the direction gradient
    float sx = 0.f, sy = 0.f, sz = 0.f;
    for (int64_t b0 = begin; b0 < end; b0 += SUB) {
        const int64_t n = std::min(end - b0, SUB);
        const float* m = means + b0 * 3;
        for (int64_t l = 0; l < n; ++l)
            for (int ch = 0; ch < 3; ++ch) vc[ch * SUB + l] = clamp_color_backward(raw[b0 * 3 + l * 3 + ch], v_colors[b0 * 3 + l * 3 + ch]);
        if (jac) {
            const float* J = jac + b0;
#pragma omp simd reduction(+ : sx, sy, sz)
            for (int64_t l = 0; l < n; ++l) {
                float g[3];
                for (int a = 0; a < 3; ++a)
                    g[a] = vc[l] * J[a * plane + l] + vc[SUB + l] * J[(3 + a) * plane + l] + vc[2 * SUB + l] * J[(6 + a) * plane + l];
                v_dir[l] = g[0], v_dir[SUB + l] = g[1], v_dir[2 * SUB + l] = g[2];
                sx += g[0], sy += g[1], sz += g[2];
            }
        } else {
            for (int64_t g = 0; g < n; g += 16)
                transpose_coeffs(co + (b0 + g) * K * 3, K * 3, USED, block + g, SUB, int(std::min<int64_t>(16, n - g)));
#pragma omp simd reduction(+ : sx, sy, sz)
            for (int64_t l = 0; l < n; ++l) {
                const Vec3 g = sh_to_color_backward_dir(DEGREE, {m[l * 3] - center.x, m[l * 3 + 1] - center.y, m[l * 3 + 2] - center.z},
                                                        block + l, vc + l, SUB);
                v_dir[l] = g.x, v_dir[SUB + l] = g.y, v_dir[2 * SUB + l] = g.z;
                sx += g.x, sy += g.y, sz += g.z;
            }
        }
        // (here, not inside the loops above: a `first_camera ?` select there
        // kept GCC 12 from vectorizing them)
        float* vm = v_means + b0 * 3;
        for (int64_t l = 0; l < n; ++l)
            for (int a = 0; a < 3; ++a) vm[l * 3 + a] = (first_camera ? 0.f : vm[l * 3 + a]) + v_dir[a * SUB + l];
        for (int64_t l = 0; l < n; ++l) {
            float inv, bk[16];
            const Vec3 u = unit_direction({m[l * 3] - center.x, m[l * 3 + 1] - center.y, m[l * 3 + 2] - center.z}, &inv);
            sh_basis(DEGREE, u.x, u.y, u.z, bk);
            for (int k = 0; k < K_USED; ++k)
                for (int ch = 0; ch < 3; ++ch) block[(k * 3 + ch) * SUB + l] = bk[k] * vc[ch * SUB + l];
        }
        for (int64_t g = 0; g < n; g += 16)
            untranspose_coeffs(block + g, SUB, USED, v_coeffs + (b0 + g) * K * 3, K * 3,
                               int(std::min<int64_t>(16, n - g)), !first_camera);
        if (first_camera && USED < K * 3)  // coefficients beyond the degree
            for (int64_t l = 0; l < n; ++l) std::fill(v_coeffs + (b0 + l) * K * 3 + USED, v_coeffs + (b0 + l + 1) * K * 3, 0.f);
    }
#if defined(__AVX512F__)
    _mm_sfence();  // orders the non-temporal stores before the threads join
#endif
    return {-sx, -sy, -sz};  // dir = mean - center
}

}  // namespace

// means [N, 3], viewmats [C, 4, 4], coeffs [N, K, 3] -> colors [C, N, 3],
// the unclamped colors [C, N, 3] and, with dir_jacobian, the direction
// Jacobian [C, 9, N] (else empty), both for sh_colors_backward
std::vector<Tensor> sh_colors_forward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                      const Tensor& coeffs, bool dir_jacobian) {
    const int64_t C = viewmats.size(0), N = means.size(0), K = coeffs.size(1);
    Tensor colors = torch::empty({C, N, 3}, means.options()), raw = torch::empty({C, N, 3}, means.options());
    Tensor jacobian = torch::empty({dir_jacobian ? C : 0, 9, N}, means.options());
    const std::vector<Vec3> centers = camera_centers(viewmats);
    const float *m = means.data_ptr<float>(), *co = coeffs.data_ptr<float>();
    float *out = colors.data_ptr<float>(), *r = raw.data_ptr<float>(), *jac = jacobian.data_ptr<float>();
    for_each_block(N, BLOCK, dir_jacobian ? 30.0 * C : 20.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            float *rc = r + c * N * 3, *oc = out + c * N * 3, *jc = dir_jacobian ? jac + c * 9 * N : nullptr;
            auto run = [&](auto range_of_degree) { range_of_degree(begin, end, K, m, centers[c], co, rc, oc, jc, N); };
            switch (degree * 2 + dir_jacobian) {
                case 0: run(colors_range<0, false>); break;
                case 1: run(colors_range<0, true>); break;
                case 2: run(colors_range<1, false>); break;
                case 3: run(colors_range<1, true>); break;
                case 4: run(colors_range<2, false>); break;
                case 5: run(colors_range<2, true>); break;
                case 6: run(colors_range<3, false>); break;
                default: run(colors_range<3, true>);
            }
        }
    });
    return {colors, raw, jacobian};
}

// -> v_means [N, 3], v_coeffs [N, K, 3] (both summed over cameras in camera
// order) and v_viewmats [C, 4, 4] (through the camera centers).
// dir_jacobian: sh_colors_forward's, or empty (then read the coefficients).
std::vector<Tensor> sh_colors_backward(int64_t degree, const Tensor& means, const Tensor& viewmats,
                                       const Tensor& coeffs, const Tensor& raw, const Tensor& v_colors,
                                       const Tensor& dir_jacobian) {
    const int64_t C = viewmats.size(0), N = means.size(0), K = coeffs.size(1);
    TORCH_CHECK(dir_jacobian.numel() == 0 || dir_jacobian.numel() == C * 9 * N,
                "sh_colors_backward: dir_jacobian is not sh_colors_forward's for these inputs");
    // all written by camera 0's pass
    Tensor v_means = torch::empty({N, 3}, means.options()), v_coeffs = torch::empty({N, K, 3}, means.options());
    const std::vector<Vec3> centers = camera_centers(viewmats);
    const int64_t n_blocks = (N + BLOCK - 1) / BLOCK;
    std::vector<Vec3> v_centers(n_blocks * C);  // per block and camera, summed in block order below
    const float *m = means.data_ptr<float>(), *co = coeffs.data_ptr<float>(), *r = raw.data_ptr<float>();
    const float* jac = dir_jacobian.numel() ? dir_jacobian.data_ptr<float>() : nullptr;
    const float* vc = v_colors.data_ptr<float>();
    float *vm = v_means.data_ptr<float>(), *vco = v_coeffs.data_ptr<float>();
    // v_coeffs is written with non-temporal stores (colors_backward_range),
    // which skip reading its lines first: SH backward on (a) 1.02-1.21x over
    // four A/B runs. Inside a whole iteration even 5k Gaussians' 1 MB goes
    // to memory (see colors_range): on the small bench case 161 -> 99 us.
    for_each_block(N, BLOCK, 20.0 * C, [&](int64_t begin, int64_t end) {
        for (int64_t c = 0; c < C; ++c) {
            const int64_t i = c * N * 3;  // camera c's colors
            const float* jc = jac ? jac + c * 9 * N : nullptr;
            Vec3& vcen = v_centers[begin / BLOCK * C + c];
            auto run = [&](auto range_of_degree) {
                vcen = range_of_degree(begin, end, K, m, centers[c], co, jc, N, r + i, vc + i, vco, vm, c == 0);
            };
            switch (degree) {
                case 0: run(colors_backward_range<0>); break;
                case 1: run(colors_backward_range<1>); break;
                case 2: run(colors_backward_range<2>); break;
                default: run(colors_backward_range<3>);
            }
        }
    });
    Tensor v_viewmats = torch::zeros({C, 4, 4}, means.options());
    for (int64_t c = 0; c < C; ++c) {
        Vec3 sum = {0.f, 0.f, 0.f};
        for (int64_t b = 0; b < n_blocks; ++b) sum = sum + v_centers[b * C + c];
        camera_center_backward(viewmats.data_ptr<float>() + c * 16, sum, v_viewmats.data_ptr<float>() + c * 16);
    }
    return {v_means, v_coeffs, v_viewmats};
}

}  // namespace splat::cpu
