// EWA projection of one 3D Gaussian into one pinhole camera (gsplat "classic"
// semantics), and its hand-written backward pass.
#pragma once

#include "common.h"

namespace splat {

struct Camera {
    Mat3 R;  // world-to-camera rotation
    Vec3 t;  // world-to-camera translation
    float fx, fy, cx, cy;
    int width, height;
};

// A camera from a row-major viewmat [4, 4] (world-to-camera) and K [3, 3].
HOST_DEVICE Camera load_camera(const float* viewmat, const float* K, int width, int height) {
    Camera cam;
    cam.R = viewmat_rotation(viewmat);
    cam.t = viewmat_translation(viewmat);
    cam.fx = K[0];
    cam.fy = K[4];
    cam.cx = K[2];
    cam.cy = K[5];
    cam.width = width;
    cam.height = height;
    return cam;
}

struct ProjectionSettings {
    float eps2d, near_plane, far_plane;
    bool antialiased;
};

struct Projection {
    bool valid;
    int radius_x, radius_y;
    Vec2 mean2d;
    float depth;
    Sym2 conic;          // inverse of the dilated 2D covariance
    float compensation;  // sqrt(det(cov) / det(cov + eps2d I))
};

struct ProjectionGrad {
    Vec3 v_mean;
    Vec4 v_quat;
    Vec3 v_scale;
    Mat3 v_R;
    Vec3 v_t;
};

HOST_DEVICE Mat3 quat_to_rotmat(Vec4 q) {  // q normalized, (w, x, y, z)
    float w = q.w, x = q.x, y = q.y, z = q.z;
    Mat3 R;
    R.m[0][0] = 1.f - 2.f * (y * y + z * z); R.m[0][1] = 2.f * (x * y - w * z); R.m[0][2] = 2.f * (x * z + w * y);
    R.m[1][0] = 2.f * (x * y + w * z); R.m[1][1] = 1.f - 2.f * (x * x + z * z); R.m[1][2] = 2.f * (y * z - w * x);
    R.m[2][0] = 2.f * (x * z - w * y); R.m[2][1] = 2.f * (y * z + w * x); R.m[2][2] = 1.f - 2.f * (x * x + y * y);
    return R;
}

// gradient w.r.t. the normalized quaternion of sum(V * R(q))
HOST_DEVICE Vec4 quat_to_rotmat_backward(Vec4 q, const Mat3& V) {
    float w = q.w, x = q.x, y = q.y, z = q.z;
    const float(*v)[3] = V.m;
    return {
        2.f * (-z * v[0][1] + y * v[0][2] + z * v[1][0] - x * v[1][2] - y * v[2][0] + x * v[2][1]),
        2.f * (y * v[0][1] + z * v[0][2] + y * v[1][0] - 2.f * x * v[1][1] - w * v[1][2] + z * v[2][0] +
               w * v[2][1] - 2.f * x * v[2][2]),
        2.f * (-2.f * y * v[0][0] + x * v[0][1] + w * v[0][2] + x * v[1][0] + z * v[1][2] - w * v[2][0] +
               z * v[2][1] - 2.f * y * v[2][2]),
        2.f * (-2.f * z * v[0][0] - w * v[0][1] + x * v[0][2] + w * v[1][0] - 2.f * z * v[1][1] + y * v[1][2] +
               x * v[2][0] + y * v[2][1]),
    };
}

HOST_DEVICE Vec4 normalize_quat(Vec4 q, float* inv_norm) {
    float inv = 1.f / sqrtf(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z);
    *inv_norm = inv;
    return {q.w * inv, q.x * inv, q.y * inv, q.z * inv};
}

// Quantities shared by the forward and backward passes.
struct ProjectionState {
    Vec3 p;          // camera-space mean
    Vec4 qn;         // normalized quaternion
    float q_inv_norm;
    Mat3 Rq, M;      // M = Rq diag(scale)
    Mat3 cov_cam;    // camera-space 3D covariance
    float J00, J02, J11, J12;
    bool clamped_x, clamped_y;
    Sym2 cov;        // dilated 2D covariance
    float det, det_orig;
};

HOST_DEVICE ProjectionState projection_state(Vec3 mean, Vec4 quat, Vec3 scale, const Camera& cam,
                                             const ProjectionSettings& s) {
    ProjectionState st;
    st.p = mul(cam.R, mean) + cam.t;
    st.qn = normalize_quat(quat, &st.q_inv_norm);
    st.Rq = quat_to_rotmat(st.qn);
    const float sc[3] = {scale.x, scale.y, scale.z};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) st.M.m[i][j] = st.Rq.m[i][j] * sc[j];
    Mat3 cov_world = matmul(st.M, transpose(st.M));
    st.cov_cam = matmul(matmul(cam.R, cov_world), transpose(cam.R));

    // Jacobian of the perspective map, evaluated no further out than
    // FOV_CLAMP x the field of view (keeps off-screen footprints bounded).
    float z = st.p.z, rz = 1.f / z;
    float slack = FOV_CLAMP - 1.f;
    float lim_x_pos = (cam.width - cam.cx) / cam.fx + slack * 0.5f * cam.width / cam.fx;
    float lim_x_neg = cam.cx / cam.fx + slack * 0.5f * cam.width / cam.fx;
    float lim_y_pos = (cam.height - cam.cy) / cam.fy + slack * 0.5f * cam.height / cam.fy;
    float lim_y_neg = cam.cy / cam.fy + slack * 0.5f * cam.height / cam.fy;
    float u = st.p.x * rz, v = st.p.y * rz;
    st.clamped_x = !(u >= -lim_x_neg && u <= lim_x_pos);
    st.clamped_y = !(v >= -lim_y_neg && v <= lim_y_pos);
    float tx = z * min_f(max_f(u, -lim_x_neg), lim_x_pos);
    float ty = z * min_f(max_f(v, -lim_y_neg), lim_y_pos);
    st.J00 = cam.fx * rz;
    st.J02 = -cam.fx * tx * rz * rz;
    st.J11 = cam.fy * rz;
    st.J12 = -cam.fy * ty * rz * rz;

    // cov2d = J cov_cam J^T with J = [[J00, 0, J02], [0, J11, J12]]
    const float(*S)[3] = st.cov_cam.m;
    float A0[3], A1[3];  // rows of J cov_cam
    for (int k = 0; k < 3; ++k) {
        A0[k] = st.J00 * S[0][k] + st.J02 * S[2][k];
        A1[k] = st.J11 * S[1][k] + st.J12 * S[2][k];
    }
    float a = A0[0] * st.J00 + A0[2] * st.J02;
    float b = A0[1] * st.J11 + A0[2] * st.J12;
    float c = A1[1] * st.J11 + A1[2] * st.J12;
    st.det_orig = a * c - b * b;
    st.cov = {a + s.eps2d, b, c + s.eps2d};
    st.det = st.cov.a * st.cov.c - b * b;
    return st;
}

// project_gaussian in two steps. The first, the projected shape, has no
// branches (the CPU vectorizes it across Gaussians); the second, the
// footprint's radius and the culling, needs a logf (the CPU runs it scalar).

struct ProjectedShape {
    // 1 inside the depth range with a positive-definite 2D covariance, else 0
    // (a float: with a bool member GCC would not vectorize the CPU loop)
    float candidate;
    Vec2 mean2d;         // 0 outside the depth range
    float depth;
    Sym2 conic;          // 0 unless candidate
    float compensation;  // 0 unless candidate
    Sym2 cov;            // the dilated 2D covariance
};

HOST_DEVICE ProjectedShape projected_shape(Vec3 mean, Vec4 quat, Vec3 scale, const Camera& cam,
                                           const ProjectionSettings& s) {
    const ProjectionState st = projection_state(mean, quat, scale, cam, s);
    const bool in_range = st.p.z > s.near_plane && st.p.z < s.far_plane;
    const bool candidate = in_range && st.det > 0.f;
    const float inv_det = 1.f / st.det, ratio = st.det_orig * inv_det;
    ProjectedShape out;
    out.candidate = candidate ? 1.f : 0.f;
    out.depth = st.p.z;
    out.mean2d = {in_range ? cam.fx * st.p.x / st.p.z + cam.cx : 0.f, in_range ? cam.fy * st.p.y / st.p.z + cam.cy : 0.f};
    out.conic = {candidate ? st.cov.c * inv_det : 0.f, candidate ? -st.cov.b * inv_det : 0.f,
                 candidate ? st.cov.a * inv_det : 0.f};
    out.compensation = candidate && ratio > 0.f ? sqrtf(max_f(ratio, 0.f)) : 0.f;
    out.cov = st.cov;
    return out;
}

// The footprint's pixel half-extents (radius_x, radius_y) of a candidate:
// opacity-aware (beyond this many sigmas alpha < ALPHA_MIN anyway; opacity < 0
// means "no opacity": the plain RADIUS_SIGMA extent); false if culled (alpha
// always below ALPHA_MIN, empty, or off-screen).
HOST_DEVICE bool footprint_radius(Vec2 mean2d, Sym2 cov, float compensation, float opacity, const Camera& cam,
                                  const ProjectionSettings& s, int* radius_x, int* radius_y) {
    float extend = RADIUS_SIGMA;
    if (opacity >= 0.f) {
        float op = s.antialiased ? opacity * compensation : opacity;
        if (op < ALPHA_MIN) return false;
        extend = min_f(extend, sqrtf(2.f * logf(max_f(op, ALPHA_MIN) / ALPHA_MIN)));
    }
    float rx = ceilf(extend * sqrtf(max_f(cov.a, 0.f)));
    float ry = ceilf(extend * sqrtf(max_f(cov.c, 0.f)));
    if (rx <= 0.f && ry <= 0.f) return false;
    if (mean2d.x + rx <= 0.f || mean2d.x - rx >= cam.width || mean2d.y + ry <= 0.f || mean2d.y - ry >= cam.height)
        return false;
    *radius_x = static_cast<int>(rx);
    *radius_y = static_cast<int>(ry);
    return true;
}

HOST_DEVICE Projection project_gaussian(Vec3 mean, Vec4 quat, Vec3 scale, float opacity, const Camera& cam,
                                        const ProjectionSettings& s) {
    const ProjectedShape shape = projected_shape(mean, quat, scale, cam, s);
    Projection out;
    out.radius_x = out.radius_y = 0;
    out.mean2d = shape.mean2d;
    out.depth = shape.depth;
    out.conic = shape.conic;
    out.compensation = shape.compensation;
    out.valid = shape.candidate != 0.f && footprint_radius(shape.mean2d, shape.cov, shape.compensation, opacity, cam, s,
                                                    &out.radius_x, &out.radius_y);
    return out;
}

// Backward of project_gaussian for a valid Gaussian, given the gradients of
// mean2d, depth, conic and compensation. The camera's gradient (v_R, v_t) is
// left zero unless `viewmat_grad`: most renders do not refine poses.
HOST_DEVICE ProjectionGrad project_gaussian_backward(Vec3 mean, Vec4 quat, Vec3 scale, const Camera& cam,
                                                     const ProjectionSettings& s, Vec2 v_mean2d, float v_depth,
                                                     Sym2 v_conic, float v_comp, bool viewmat_grad) {
    ProjectionState st = projection_state(mean, quat, scale, cam, s);
    float inv_det = 1.f / st.det;
    Sym2 Q = {st.cov.c * inv_det, -st.cov.b * inv_det, st.cov.a * inv_det};

    // conic = cov^-1  =>  dL/dcov = -Q G Q, G the (symmetric) gradient of Q
    float g00 = v_conic.a, g01 = 0.5f * v_conic.b, g11 = v_conic.c;
    float QG00 = Q.a * g00 + Q.b * g01, QG01 = Q.a * g01 + Q.b * g11;
    float QG10 = Q.b * g00 + Q.c * g01, QG11 = Q.b * g01 + Q.c * g11;
    float V00 = -(QG00 * Q.a + QG01 * Q.b);
    float V01 = -(QG00 * Q.b + QG01 * Q.c);
    float V11 = -(QG10 * Q.b + QG11 * Q.c);

    // compensation = sqrt(r), r = det(cov - eps I) / det(cov)
    float r = st.det_orig * inv_det;
    if (r > 0.f) {
        float v_r = v_comp * 0.5f / sqrtf(r);
        V00 += v_r * ((1.f - r) * Q.a - s.eps2d * inv_det);
        V11 += v_r * ((1.f - r) * Q.c - s.eps2d * inv_det);
        V01 += v_r * (1.f - r) * Q.b;
    }

    // cov2d = J S J^T  =>  v_S = J^T V J,  v_J = 2 V J S
    const float J[2][3] = {{st.J00, 0.f, st.J02}, {0.f, st.J11, st.J12}};
    const float V[2][2] = {{V00, V01}, {V01, V11}};
    Mat3 v_cov_cam;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            float sum = 0.f;
            for (int a = 0; a < 2; ++a)
                for (int b = 0; b < 2; ++b) sum += J[a][i] * V[a][b] * J[b][j];
            v_cov_cam.m[i][j] = sum;
        }
    float VJ[2][3];
    for (int a = 0; a < 2; ++a)
        for (int k = 0; k < 3; ++k) VJ[a][k] = V[a][0] * J[0][k] + V[a][1] * J[1][k];
    float v_J[2][3];
    for (int a = 0; a < 2; ++a)
        for (int k = 0; k < 3; ++k) {
            float sum = 0.f;
            for (int l = 0; l < 3; ++l) sum += VJ[a][l] * st.cov_cam.m[l][k];
            v_J[a][k] = 2.f * sum;
        }

    // J and mean2d depend on the camera-space mean p
    float x = st.p.x, y = st.p.y, z = st.p.z, rz = 1.f / z, rz2 = rz * rz, rz3 = rz2 * rz;
    Vec3 v_p = {cam.fx * rz * v_mean2d.x, cam.fy * rz * v_mean2d.y,
                -(cam.fx * x * v_mean2d.x + cam.fy * y * v_mean2d.y) * rz2 + v_depth};
    v_p.z += -cam.fx * rz2 * v_J[0][0] - cam.fy * rz2 * v_J[1][1];
    float tx = -st.J02 * z * z / cam.fx, ty = -st.J12 * z * z / cam.fy;
    if (st.clamped_x) {
        v_p.z += cam.fx * tx * rz3 * v_J[0][2];  // J02 = -fx L / z
    } else {
        v_p.x += -cam.fx * rz2 * v_J[0][2];
        v_p.z += 2.f * cam.fx * tx * rz3 * v_J[0][2];
    }
    if (st.clamped_y) {
        v_p.z += cam.fy * ty * rz3 * v_J[1][2];
    } else {
        v_p.y += -cam.fy * rz2 * v_J[1][2];
        v_p.z += 2.f * cam.fy * ty * rz3 * v_J[1][2];
    }

    ProjectionGrad g;
    // p = R mean + t
    g.v_mean = mul_transposed(cam.R, v_p);
    g.v_t = viewmat_grad ? v_p : Vec3{0.f, 0.f, 0.f};
    g.v_R = zeros3();
    if (viewmat_grad) {
        // v_R = v_p mean^T + 2 v_S R Sigma (from p = R mean + t and cov_cam = R Sigma R^T)
        const Mat3 v_S_R_Sigma = matmul(matmul(v_cov_cam, cam.R), matmul(st.M, transpose(st.M)));
        const float mv[3] = {mean.x, mean.y, mean.z}, pv[3] = {v_p.x, v_p.y, v_p.z};
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) g.v_R.m[i][j] = pv[i] * mv[j] + 2.f * v_S_R_Sigma.m[i][j];
    }
    // cov_cam = R Sigma R^T  =>  v_Sigma = R^T v_S R
    Mat3 v_Sigma = matmul(matmul(transpose(cam.R), v_cov_cam), cam.R);
    // Sigma = M M^T  =>  v_M = 2 v_Sigma M
    Mat3 v_M = matmul(v_Sigma, st.M);
    // M = Rq diag(scale)
    const float sc[3] = {scale.x, scale.y, scale.z};
    Mat3 v_Rq;
    float v_sc[3] = {0.f, 0.f, 0.f};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            v_M.m[i][j] *= 2.f;
            v_Rq.m[i][j] = v_M.m[i][j] * sc[j];
            v_sc[j] += v_M.m[i][j] * st.Rq.m[i][j];
        }
    g.v_scale = {v_sc[0], v_sc[1], v_sc[2]};
    // through the quaternion's normalization
    Vec4 v_qn = quat_to_rotmat_backward(st.qn, v_Rq);
    float proj = v_qn.w * st.qn.w + v_qn.x * st.qn.x + v_qn.y * st.qn.y + v_qn.z * st.qn.z;
    g.v_quat = {(v_qn.w - proj * st.qn.w) * st.q_inv_norm, (v_qn.x - proj * st.qn.x) * st.q_inv_norm,
                (v_qn.y - proj * st.qn.y) * st.q_inv_norm, (v_qn.z - proj * st.qn.z) * st.q_inv_norm};
    return g;
}

}  // namespace splat
