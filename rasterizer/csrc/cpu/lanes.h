// Vectors of W float lanes (GCC/Clang vector extensions) for the CPU blend:
// one vector holds one row of a tile's strip of pixels, so the blend loops
// are explicit SIMD and per-Gaussian sums need not go through memory. A
// strip is one register wide (blend.cpp, strip_lanes): a whole 16-pixel tile
// row with AVX-512, half of one with AVX2. The shared per-sample math
// (blend.h) takes these as F. Lane permutes and mask counts have no portable
// vector-extension form (GCC writes them lane by lane, through memory), so
// AVX-512 and AVX2 get intrinsics.
#pragma once

#include <cstdint>

#include "../include/common.h"

namespace splat::cpu {

// The types, spelled out per width: GCC ignores a vector_size that depends on
// a template parameter inside a class template.
template <int W>
struct LaneTypes;
#define SPLAT_LANE_TYPES(W)                                                     \
    template <>                                                                 \
    struct LaneTypes<W> {                                                       \
        typedef float F __attribute__((vector_size(4 * W)));   /* values */      \
        typedef int32_t I __attribute__((vector_size(4 * W))); /* masks: -1, 0 */ \
    };
SPLAT_LANE_TYPES(4)
SPLAT_LANE_TYPES(8)
SPLAT_LANE_TYPES(16)
SPLAT_LANE_TYPES(32)
SPLAT_LANE_TYPES(64)
#undef SPLAT_LANE_TYPES

template <int W>
struct Lanes {
    using F = typename LaneTypes<W>::F;
    using I = typename LaneTypes<W>::I;

    static F index() {  // 0, 1, ..., W - 1
        F v;
        for (int i = 0; i < W; ++i) v[i] = float(i);
        return v;
    }

    // Every lane set to lane r of v: one permute with AVX-512, whose inputs are
    // ready long before the row needs it.
    static F broadcast(F v, int r) {
#if defined(__AVX512F__)
        if constexpr (W == 16) {
            __m512 x;
            __builtin_memcpy(&x, &v, 64);
            x = _mm512_permutexvar_ps(_mm512_set1_epi32(r), x);
            __builtin_memcpy(&v, &x, 64);
            return v;
        }
#endif
        return F{} + v[r];
    }

    static int count(I mask) {
#if defined(__AVX512F__)
        if constexpr (W == 16) {
            __m512i m;
            __builtin_memcpy(&m, &mask, 64);
            return __builtin_popcount(_mm512_movepi32_mask(m));
        }
#elif defined(__AVX2__)
        if constexpr (W == 8) return __builtin_popcount(_mm256_movemask_ps(__m256(mask)));
#endif
        int n = 0;
        for (int i = 0; i < W; ++i) n -= mask[i];
        return n;
    }

    // Sum of the lanes: low half + high half until 4 lanes are left, in
    // registers (a round trip through memory stalls on store forwarding), in
    // a fixed order (the same for any thread count).
    static float sum(F v) {
        if constexpr (W == 4) {
            return (v[0] + v[2]) + (v[1] + v[3]);
        } else {
            return Lanes<W / 2>::sum(low_half(v) + high_half(v));
        }
    }

    // out[j] = sum(v[j]) for 8 vectors at once. With AVX-512 the lanes of all
    // eight are reduced together by shuffles (24 instructions instead of 72),
    // the per-Gaussian tail of the backward pass; the order of the additions
    // is fixed either way. Forced inline: GCC left it a call (through the
    // PLT) taking its vectors through memory, twice per intersection.
    [[gnu::always_inline]] static void sum8(const F (&v)[8], float* out) {
#if defined(__AVX512F__)
        if constexpr (W == 16) {
            __m512 x[8];
            for (int j = 0; j < 8; ++j) __builtin_memcpy(&x[j], &v[j], 64);
            __m512 pairs[4];  // [v_2i in 2 x 4 lanes | v_2i+1 in 2 x 4 lanes]
            for (int i = 0; i < 4; ++i)
                pairs[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                                         _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
            __m512 quads[2];  // 128-bit lane q: 4 partial sums of v_4i+q
            for (int i = 0; i < 2; ++i)
                quads[i] = _mm512_add_ps(_mm512_shuffle_f32x4(pairs[2 * i], pairs[2 * i + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                                         _mm512_shuffle_f32x4(pairs[2 * i], pairs[2 * i + 1], _MM_SHUFFLE(3, 1, 3, 1)));
            const __m512 halves = _mm512_add_ps(_mm512_shuffle_ps(quads[0], quads[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                                _mm512_shuffle_ps(quads[0], quads[1], _MM_SHUFFLE(3, 2, 3, 2)));
            const __m512 sums = _mm512_add_ps(_mm512_shuffle_ps(halves, halves, _MM_SHUFFLE(2, 0, 2, 0)),
                                              _mm512_shuffle_ps(halves, halves, _MM_SHUFFLE(3, 1, 3, 1)));
            // lane 4q holds sum(v_q), lane 4q + 1 holds sum(v_4+q)
            const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
            _mm256_storeu_ps(out, _mm512_castps512_ps256(_mm512_permutexvar_ps(order, sums)));
            return;
        }
#elif defined(__AVX2__)
        if constexpr (W == 8) {  // horizontal adds pair the lanes up: 7 instructions instead of 48
            __m256 x[8];
            for (int j = 0; j < 8; ++j) x[j] = __m256(v[j]);
            const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(x[0], x[1]), _mm256_hadd_ps(x[2], x[3]));
            const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(x[4], x[5]), _mm256_hadd_ps(x[6], x[7]));
            // q0: the low-half sums of v0..v3, then their high-half sums; q1 likewise for v4..v7
            _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20),
                                                _mm256_permute2f128_ps(q0, q1, 0x31)));
            return;
        }
#endif
        for (int j = 0; j < 8; ++j) out[j] = sum(v[j]);
    }
};

}  // namespace splat::cpu
