// Real spherical harmonics (degree <= 3) evaluated at a view direction,
// with the basis and signs of the 3DGS reference; forward and backward.
#pragma once

#include "common.h"

namespace splat {

constexpr float SH_C0 = 0.28209479177387814f;
constexpr float SH_C1 = 0.48860251190291987f;
constexpr float SH_C2A = 1.0925484305920792f;
constexpr float SH_C2B = 0.94617469575756008f;
constexpr float SH_C2C = 0.31539156525252005f;
constexpr float SH_C2D = 0.54627421529603959f;
constexpr float SH_C3A = 0.59004358992664352f;
constexpr float SH_C3B = 2.8906114426405538f;
constexpr float SH_C3C = 0.45704579946446572f;
constexpr float SH_C3D = 0.3731763325901154f;
constexpr float SH_C3E = 1.4453057213202769f;

// basis[0..(degree+1)^2) at unit direction (x, y, z)
HOST_DEVICE void sh_basis(int degree, float x, float y, float z, float* basis) {
    basis[0] = SH_C0;
    if (degree < 1) return;
    basis[1] = -SH_C1 * y;
    basis[2] = SH_C1 * z;
    basis[3] = -SH_C1 * x;
    if (degree < 2) return;
    float x2 = x * x, y2 = y * y, z2 = z * z;
    basis[4] = SH_C2A * x * y;
    basis[5] = -SH_C2A * y * z;
    basis[6] = SH_C2B * z2 - SH_C2C;
    basis[7] = -SH_C2A * x * z;
    basis[8] = SH_C2D * (x2 - y2);
    if (degree < 3) return;
    basis[9] = SH_C3A * y * (-3.f * x2 + y2);
    basis[10] = SH_C3B * x * y * z;
    basis[11] = SH_C3C * y * (1.f - 5.f * z2);
    basis[12] = SH_C3D * z * (5.f * z2 - 3.f);
    basis[13] = SH_C3C * x * (1.f - 5.f * z2);
    basis[14] = SH_C3E * z * (x2 - y2);
    basis[15] = SH_C3A * x * (-x2 + 3.f * y2);
}

// d(sum_k v_basis[k] * basis[k]) / d(x, y, z) for a unit direction
HOST_DEVICE Vec3 sh_basis_backward(int degree, float x, float y, float z, const float* v_basis) {
    Vec3 g = {0.f, 0.f, 0.f};
    if (degree < 1) return g;
    g.y += -SH_C1 * v_basis[1];
    g.z += SH_C1 * v_basis[2];
    g.x += -SH_C1 * v_basis[3];
    if (degree < 2) return g;
    float x2 = x * x, y2 = y * y, z2 = z * z;
    g.x += SH_C2A * y * v_basis[4];
    g.y += SH_C2A * x * v_basis[4];
    g.y += -SH_C2A * z * v_basis[5];
    g.z += -SH_C2A * y * v_basis[5];
    g.z += 2.f * SH_C2B * z * v_basis[6];
    g.x += -SH_C2A * z * v_basis[7];
    g.z += -SH_C2A * x * v_basis[7];
    g.x += 2.f * SH_C2D * x * v_basis[8];
    g.y += -2.f * SH_C2D * y * v_basis[8];
    if (degree < 3) return g;
    g.x += -6.f * SH_C3A * x * y * v_basis[9];
    g.y += 3.f * SH_C3A * (y2 - x2) * v_basis[9];
    g.x += SH_C3B * y * z * v_basis[10];
    g.y += SH_C3B * x * z * v_basis[10];
    g.z += SH_C3B * x * y * v_basis[10];
    g.y += SH_C3C * (1.f - 5.f * z2) * v_basis[11];
    g.z += -10.f * SH_C3C * y * z * v_basis[11];
    g.z += SH_C3D * (15.f * z2 - 3.f) * v_basis[12];
    g.x += SH_C3C * (1.f - 5.f * z2) * v_basis[13];
    g.z += -10.f * SH_C3C * x * z * v_basis[13];
    g.x += 2.f * SH_C3E * x * z * v_basis[14];
    g.y += -2.f * SH_C3E * y * z * v_basis[14];
    g.z += SH_C3E * (x2 - y2) * v_basis[14];
    g.x += 3.f * SH_C3A * (y2 - x2) * v_basis[15];
    g.y += 6.f * SH_C3A * x * y * v_basis[15];
    return g;
}

// The unit view direction and 1 / |dir|; below |dir| = 1e-12 the scale is
// clamped, so a zero direction stays zero.
HOST_DEVICE Vec3 unit_direction(Vec3 dir, float* inv_norm) {
    const float inv = 1.f / max_f(sqrtf(dot(dir, dir)), 1e-12f);
    *inv_norm = inv;
    return {dir.x * inv, dir.y * inv, dir.z * inv};
}

// color[3] = sum_k basis_k(dir / |dir|) * coeffs[k][0..3), coefficient j of
// the row at coeffs[j * stride] (the CPU passes blocks transposed, stride 256)
HOST_DEVICE void sh_to_color(int degree, Vec3 dir, const float* coeffs, float* color, int stride = 1) {
    float inv, basis[16];
    const Vec3 d = unit_direction(dir, &inv);
    sh_basis(degree, d.x, d.y, d.z, basis);
    int K = (degree + 1) * (degree + 1);
    for (int ch = 0; ch < 3; ++ch) {
        float sum = 0.f;
        for (int k = 0; k < K; ++k) sum += basis[k] * coeffs[(k * 3 + ch) * stride];
        color[ch] = sum;
    }
}

// The backward of sh_to_color comes in two parts, which the CPU runs as
// separate loops: the coefficients' gradient, an outer product contiguous per
// Gaussian, and the direction's, which vectorizes across Gaussians.

// v_coeffs[k][ch] += basis_k * v_color[ch]
HOST_DEVICE void sh_to_color_backward_coeffs(int degree, Vec3 dir, const float* v_color, float* v_coeffs) {
    float inv, basis[16];
    const Vec3 d = unit_direction(dir, &inv);
    sh_basis(degree, d.x, d.y, d.z, basis);
    int K = (degree + 1) * (degree + 1);
    for (int k = 0; k < K; ++k)
        for (int ch = 0; ch < 3; ++ch) v_coeffs[k * 3 + ch] += basis[k] * v_color[ch];
}

// The gradient w.r.t. the un-normalized dir of sum_k v_basis[k] * basis_k(dir / |dir|).
HOST_DEVICE Vec3 sh_basis_backward_dir(int degree, Vec3 dir, const float* v_basis) {
    float inv;
    const Vec3 d = unit_direction(dir, &inv);
    Vec3 v_d = sh_basis_backward(degree, d.x, d.y, d.z, v_basis);
    // remove the radial part (normalization is scale-invariant), except where
    // |dir| < 1e-12 and the scale was clamped; a select, not a branch, so it vectorizes
    float proj = dot(dir, dir) < 1e-24f ? 0.f : dot(v_d, d);
    return {(v_d.x - proj * d.x) * inv, (v_d.y - proj * d.y) * inv, (v_d.z - proj * d.z) * inv};
}

// The gradient w.r.t. the un-normalized dir. As in sh_to_color, entry j of
// coeffs (and of v_color) is at [j * stride].
HOST_DEVICE Vec3 sh_to_color_backward_dir(int degree, Vec3 dir, const float* coeffs, const float* v_color,
                                          int stride = 1) {
    float v_basis[16];
    int K = (degree + 1) * (degree + 1);
    const float v0 = v_color[0], v1 = v_color[stride], v2 = v_color[2 * stride];
    for (int k = 0; k < K; ++k)
        v_basis[k] = coeffs[k * 3 * stride] * v0 + coeffs[(k * 3 + 1) * stride] * v1 + coeffs[(k * 3 + 2) * stride] * v2;
    return sh_basis_backward_dir(degree, dir, v_basis);
}

// jacobian[ch] = d color[ch] / d dir, so that sh_to_color_backward_dir is
// sum_ch v_color[ch] * jacobian[ch]: the CPU's forward pass keeps it, and its
// backward pass then need not read the coefficients again.
HOST_DEVICE void sh_to_color_dir_jacobian(int degree, Vec3 dir, const float* coeffs, Vec3* jacobian,
                                          int stride = 1) {
    int K = (degree + 1) * (degree + 1);
    // each channel's coefficients, written out (with a loop over the
    // channels GCC left the CPU's loop over Gaussians scalar)
    float c0[16], c1[16], c2[16];
    for (int k = 0; k < K; ++k) {
        c0[k] = coeffs[k * 3 * stride];
        c1[k] = coeffs[(k * 3 + 1) * stride];
        c2[k] = coeffs[(k * 3 + 2) * stride];
    }
    jacobian[0] = sh_basis_backward_dir(degree, dir, c0);
    jacobian[1] = sh_basis_backward_dir(degree, dir, c1);
    jacobian[2] = sh_basis_backward_dir(degree, dir, c2);
}

// ---- 3DGS view-dependent colors ------------------------------------------
// The SH are evaluated at the direction from the camera center to the
// Gaussian; the color is that value + 0.5, clamped at 0.

// Camera center of a row-major world-to-camera viewmat [R t; 0 0 0 1]:
// c = -R^-1 t (only the top three rows are read).
HOST_DEVICE Vec3 camera_center(const float* viewmat) {
    const Vec3 c = mul(inverse(viewmat_rotation(viewmat)), viewmat_translation(viewmat));
    return {-c.x, -c.y, -c.z};
}

// v_viewmat (top three rows, row-major) += the gradient through c given
// v_c = dL/dc: dc = -R^-1 (dR c + dt), so with u = -R^-T v_c,
// dL/dR = u c^T and dL/dt = u.
HOST_DEVICE void camera_center_backward(const float* viewmat, Vec3 v_c, float* v_viewmat) {
    const Vec3 c = camera_center(viewmat), w = mul_transposed(inverse(viewmat_rotation(viewmat)), v_c);
    const float u[3] = {-w.x, -w.y, -w.z};
    for (int i = 0; i < 3; ++i) {
        v_viewmat[i * 4] += u[i] * c.x;
        v_viewmat[i * 4 + 1] += u[i] * c.y;
        v_viewmat[i * 4 + 2] += u[i] * c.z;
        v_viewmat[i * 4 + 3] += u[i];
    }
}

constexpr float SH_COLOR_OFFSET = 0.5f;

HOST_DEVICE float clamp_color(float raw) { return raw > 0.f ? raw : 0.f; }

// The clamp passes the gradient where raw >= 0 (torch.clamp_min's rule), so
// a Gaussian at exactly 0 (black, as initialized from black points) still learns.
HOST_DEVICE float clamp_color_backward(float raw, float v_color) { return raw >= 0.f ? v_color : 0.f; }

}  // namespace splat
