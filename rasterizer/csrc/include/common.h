// Small vector/matrix types and constants shared by the CPU and CUDA backends.
// Everything here is HOST_DEVICE so each formula exists once.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#if (defined(__AVX512F__) || defined(__AVX__)) && !defined(__CUDACC__)
#include <immintrin.h>
#endif

#if defined(__CUDACC__)
#define HOST_DEVICE __host__ __device__ __forceinline__
#else
// forced, as on the GPU: GCC otherwise keeps the projection math out of line
#define HOST_DEVICE inline __attribute__((always_inline))
#endif

namespace splat {

// Mirrors rasterizer/constants.py.
constexpr float ALPHA_MAX = 0.99f;
constexpr float ALPHA_MIN = 1.0f / 255.0f;
constexpr float T_MIN = 1e-4f;
constexpr float RADIUS_SIGMA = 3.33f;
constexpr float FOV_CLAMP = 1.3f;

struct Vec2 { float x, y; };
struct Vec3 { float x, y, z; };
struct Vec4 { float w, x, y, z; };  // quaternion, scalar first
struct Sym2 { float a, b, c; };     // symmetric 2x2 [[a, b], [b, c]]
struct Mat3 { float m[3][3]; };     // row-major

// fminf / fmaxf as compares: inline on the CPU, where the libm functions are
// calls. Same result as fminf / fmaxf when only the first argument can be NaN.
HOST_DEVICE float min_f(float a, float b) { return a < b ? a : b; }
HOST_DEVICE float max_f(float a, float b) { return a > b ? a : b; }

HOST_DEVICE Vec3 operator+(Vec3 a, Vec3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
HOST_DEVICE float dot(Vec3 a, Vec3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

HOST_DEVICE Vec3 mul(const Mat3& A, Vec3 v) {
    return {A.m[0][0] * v.x + A.m[0][1] * v.y + A.m[0][2] * v.z,
            A.m[1][0] * v.x + A.m[1][1] * v.y + A.m[1][2] * v.z,
            A.m[2][0] * v.x + A.m[2][1] * v.y + A.m[2][2] * v.z};
}

HOST_DEVICE Vec3 mul_transposed(const Mat3& A, Vec3 v) {  // A^T v
    return {A.m[0][0] * v.x + A.m[1][0] * v.y + A.m[2][0] * v.z,
            A.m[0][1] * v.x + A.m[1][1] * v.y + A.m[2][1] * v.z,
            A.m[0][2] * v.x + A.m[1][2] * v.y + A.m[2][2] * v.z};
}

HOST_DEVICE Mat3 matmul(const Mat3& A, const Mat3& B) {
    Mat3 C;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            C.m[i][j] = A.m[i][0] * B.m[0][j] + A.m[i][1] * B.m[1][j] + A.m[i][2] * B.m[2][j];
    return C;
}

HOST_DEVICE Mat3 transpose(const Mat3& A) {
    Mat3 T;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) T.m[i][j] = A.m[j][i];
    return T;
}

HOST_DEVICE Mat3 add(const Mat3& A, const Mat3& B) {
    Mat3 C;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) C.m[i][j] = A.m[i][j] + B.m[i][j];
    return C;
}

// The rotation R and translation t of a row-major viewmat [R t; 0 0 0 1].
HOST_DEVICE Mat3 viewmat_rotation(const float* viewmat) {
    Mat3 R;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) R.m[i][j] = viewmat[i * 4 + j];
    return R;
}

HOST_DEVICE Vec3 viewmat_translation(const float* viewmat) { return {viewmat[3], viewmat[7], viewmat[11]}; }

// A^-1 by the adjugate (for the well-conditioned rotations of viewmats).
HOST_DEVICE Mat3 inverse(const Mat3& A) {
    const float(*a)[3] = A.m;
    Mat3 adj;
    adj.m[0][0] = a[1][1] * a[2][2] - a[1][2] * a[2][1];
    adj.m[0][1] = a[0][2] * a[2][1] - a[0][1] * a[2][2];
    adj.m[0][2] = a[0][1] * a[1][2] - a[0][2] * a[1][1];
    adj.m[1][0] = a[1][2] * a[2][0] - a[1][0] * a[2][2];
    adj.m[1][1] = a[0][0] * a[2][2] - a[0][2] * a[2][0];
    adj.m[1][2] = a[0][2] * a[1][0] - a[0][0] * a[1][2];
    adj.m[2][0] = a[1][0] * a[2][1] - a[1][1] * a[2][0];
    adj.m[2][1] = a[0][1] * a[2][0] - a[0][0] * a[2][1];
    adj.m[2][2] = a[0][0] * a[1][1] - a[0][1] * a[1][0];
    const float inv_det = 1.f / (a[0][0] * adj.m[0][0] + a[0][1] * adj.m[1][0] + a[0][2] * adj.m[2][0]);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) adj.m[i][j] *= inv_det;
    return adj;
}

HOST_DEVICE Mat3 zeros3() {
    Mat3 Z;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) Z.m[i][j] = 0.f;
    return Z;
}

// Lane-wise conversions for fast_exp, on a float and (CPU only) on GCC/Clang
// vectors of float or int32 lanes (the CPU blend's rows, cpu/lanes.h).
HOST_DEVICE int32_t to_int_lanes(float x) { return static_cast<int32_t>(x); }
HOST_DEVICE float to_float_lanes(int32_t i) { return static_cast<float>(i); }
HOST_DEVICE int32_t float_bits_lanes(float f) {
    union { float f; int32_t i; } u;
    u.f = f;
    return u.i;
}
HOST_DEVICE float bits_to_float_lanes(int32_t i) {
    union { int32_t i; float f; } u;
    u.i = i;
    return u.f;
}
#if !defined(__CUDACC__)
template <typename V, typename = std::enable_if_t<!std::is_arithmetic_v<V>>>
inline auto to_int_lanes(V x) {
    typedef int32_t I __attribute__((vector_size(sizeof(V))));
    return __builtin_convertvector(x, I);
}
template <typename V, typename = std::enable_if_t<!std::is_arithmetic_v<V>>>
inline auto to_float_lanes(V i) {
    typedef float F __attribute__((vector_size(sizeof(V))));
    return __builtin_convertvector(i, F);
}
template <typename V, typename = std::enable_if_t<!std::is_arithmetic_v<V>>>
inline auto float_bits_lanes(V f) {
    typedef int32_t I __attribute__((vector_size(sizeof(V))));
    I i;
    std::memcpy(&i, &f, sizeof(V));
    return i;
}
template <typename V, typename = std::enable_if_t<!std::is_arithmetic_v<V>>>
inline auto bits_to_float_lanes(V i) {
    typedef float F __attribute__((vector_size(sizeof(V))));
    F f;
    std::memcpy(&f, &i, sizeof(V));
    return f;
}
#endif

#if !defined(__CUDACC__)
// Bytes in one vector register. The CPU kernels' vectors are at most this
// wide: GCC 12 has no machine mode for a wider one, keeps it on the stack,
// moves it in pieces (store-forwarding stalls) and compares it lane by lane,
// which made the blend's 16-lane rows 6-10x slower with AVX2 than with AVX-512.
#if defined(__AVX512F__)
constexpr size_t REGISTER_BYTES = 64;
#elif defined(__AVX__)
constexpr size_t REGISTER_BYTES = 32;
#else
constexpr size_t REGISTER_BYTES = 16;  // SSE, NEON
#endif

// The low and high halves of a vector's lanes, by shuffles, which GCC keeps
// in registers (a memcpy of a half went through the stack).
template <size_t Offset, typename V, size_t... Is>
inline auto lanes_at(const V& v, std::index_sequence<Is...>) {
    return __builtin_shufflevector(v, v, (Offset + Is)...);
}
template <typename V>
constexpr size_t LANE_COUNT = sizeof(V) / sizeof(std::declval<V>()[0]);
template <typename V>
inline auto low_half(const V& v) {
    return lanes_at<0>(v, std::make_index_sequence<LANE_COUNT<V> / 2>());
}
template <typename V>
inline auto high_half(const V& v) {
    return lanes_at<LANE_COUNT<V> / 2>(v, std::make_index_sequence<LANE_COUNT<V> / 2>());
}
#endif

#if (defined(__AVX512F__) || defined(__AVX__)) && !defined(__CUDACC__)
// A vector of floats one register wide (cpu/lanes.h) seen as the intrinsics'
// type R (__m512, __m256): op(a, b).
template <typename F>
constexpr bool IS_REGISTER_LANES = sizeof(F) == REGISTER_BYTES && !std::is_arithmetic_v<F>;

template <typename R, typename F, typename Op>
HOST_DEVICE F as_register(F a, F b, Op op) {
    static_assert(sizeof(R) == sizeof(F));
    R x, y;
    std::memcpy(&x, &a, sizeof(R)), std::memcpy(&y, &b, sizeof(R));
    x = op(x, y);
    std::memcpy(&a, &x, sizeof(R));
    return a;
}
#endif

// Lane-wise min / max for a float or a vector of floats (cpu/lanes.h), with
// the NaN rule of a < b ? a : b (b). GCC writes a compare and a blend for that
// on vectors; vminps / vmaxps follow the same rule in one instruction, which
// the blend's alpha chains wait on (exp's clamp, alpha's cap).
template <typename F>
HOST_DEVICE F min_of(F a, F b) {
#if defined(__AVX512F__) && !defined(__CUDACC__)
    if constexpr (IS_REGISTER_LANES<F>) return as_register<__m512>(a, b, [](__m512 x, __m512 y) { return _mm512_min_ps(x, y); });
#elif defined(__AVX__) && !defined(__CUDACC__)
    if constexpr (IS_REGISTER_LANES<F>) return as_register<__m256>(a, b, [](__m256 x, __m256 y) { return _mm256_min_ps(x, y); });
#endif
    return a < b ? a : b;
}
template <typename F>
HOST_DEVICE F max_of(F a, F b) {
#if defined(__AVX512F__) && !defined(__CUDACC__)
    if constexpr (IS_REGISTER_LANES<F>) return as_register<__m512>(a, b, [](__m512 x, __m512 y) { return _mm512_max_ps(x, y); });
#elif defined(__AVX__) && !defined(__CUDACC__)
    if constexpr (IS_REGISTER_LANES<F>) return as_register<__m256>(a, b, [](__m256 x, __m256 y) { return _mm256_max_ps(x, y); });
#endif
    return a > b ? a : b;
}

// exp for the blend loops: __expf on CUDA; on the CPU a Cephes-style
// polynomial for a float or a vector of floats (cpu/lanes.h), and for 16-lane
// vectors with AVX-512 a table variant (first below): 1 ulp (1.2e-7
// relative) where the blend keeps a sample (x > -5.6), 3e-7 at the ends of
// [-50, 88]. It is written for a short dependency chain, which is what bounds
// the blend loops: one ln 2 constant in the reduction (two, Cody-Waite, only
// pay off for large x), Estrin's scheme for the polynomial.
// Inputs below -50 give exp(-50): the blend discards every sample whose
// alpha is below 1/255 (x < -5.6), and the clamp keeps the masked lanes'
// products away from subnormal floats, whose arithmetic the CPU does in slow
// microcode (the blend loops ran 8-14 % slower with them).
template <typename F>
HOST_DEVICE F fast_exp(F x) {
#if defined(__CUDA_ARCH__)
    return __expf(x);
#else
    x = min_of(max_of(x, F{} - 50.0f), F{} + 88.0f);
#if defined(__AVX512F__) && !defined(__CUDACC__)
    if constexpr (IS_REGISTER_LANES<F>) {
        // 16 lanes (the blend's rows): x = (16 m + j) ln 2 / 16 + r, |r| <= ln 2 / 32,
        // exp(x) = 2^m 2^(j / 16) exp(r): 2^(j / 16) from a 16-entry table, which
        // is one register and one permute (on the low 4 bits of n), and exp(r) a
        // cubic (r^4 / 24 < 1e-8). Shorter than the degree-6 polynomial's chain:
        // the blend 1.04-1.07x forward, 1.02-1.04x backward; same accuracy.
        const F shifted = x * 23.0831206542f + 12582912.0f;  // x 16 / ln 2, rounded as below
        const F n = shifted - 12582912.0f;
        const auto ni = float_bits_lanes(shifted) - 0x4b400000;
        const F r = x - n * 0.0433216988f;  // ln 2 / 16
        const F p = (r + 1.0f) + (r * r) * (r * 0.166666672f + 0.5f);
        const __m512 table = _mm512_setr_ps(1.0f, 1.04427378f, 1.09050773f, 1.13878863f, 1.18920712f, 1.24185781f,
                                            1.29683955f, 1.35425555f, 1.41421356f, 1.47682615f, 1.54221083f,
                                            1.61049033f, 1.68179283f, 1.75625216f, 1.83400809f, 1.91520656f);
        __m512i j;
        std::memcpy(&j, &ni, 64);
        const __m512 table_j = _mm512_permutexvar_ps(j, table);
        F two_j16;
        std::memcpy(&two_j16, &table_j, 64);
        return p * (two_j16 * bits_to_float_lanes(((ni >> 4) + 127) << 23));  // m = n >> 4 (floor)
    }
#endif
    // n = round(x / ln 2) by the adder: 1.5 * 2^23 has an ulp of 1, so the sum
    // rounds to an integer, whose value sits in the low mantissa bits
    const F shifted = x * 1.44269504088896341f + 12582912.0f;
    const F n = shifted - 12582912.0f;
    const auto ni = float_bits_lanes(shifted) - 0x4b400000;  // n as an integer
    const F r = x - n * 0.693147182f;
    // Estrin: pairs of terms in parallel, a shorter chain than Horner's
    const F r2 = r * r, r4 = r2 * r2;
    const F q01 = r * 1.6666665459e-1f + 5.0000001201e-1f, q23 = r * 8.3334519073e-3f + 4.1665795894e-2f;
    const F q45 = r * 1.9875691500e-4f + 1.3981999507e-3f;
    const F q = (q23 * r2 + q01) + q45 * r4;
    const F p = q * r2 + (r + 1.0f);
    return p * bits_to_float_lanes((ni + 127) << 23);  // 2^n assembled in the exponent bits
#endif
}

// Natural log of x >= 1 (finite) for per-Gaussian bounds: logf on CUDA; on
// the CPU a Cephes-style polynomial (about 1 ulp), for a float or a vector
// of floats, so loops over Gaussians vectorize.
template <typename F>
HOST_DEVICE F fast_log(F x) {
#if defined(__CUDA_ARCH__)
    return logf(x);
#else
    const auto bits = float_bits_lanes(x);
    auto e = to_float_lanes(((bits >> 23) & 0xff) - 126);    // x = m 2^e, m in [0.5, 1)
    F m = bits_to_float_lanes((bits & 0x007fffff) | 0x3f000000);
    const auto small = m < 0.707106781186547524f;           // m in [sqrt(1/2), sqrt(2)) after the shift
    e = small ? e - 1.f : e;
    m = small ? m + m - 1.f : m - 1.f;
    const F z = m * m;
    F y = F{} + 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z - 2.12194440e-4f * e - 0.5f * z;
    return m + y + 0.693359375f * e;
#endif
}

}  // namespace splat
