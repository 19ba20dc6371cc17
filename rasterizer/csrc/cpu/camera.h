// Reading cameras out of viewmats [C, 4, 4] and Ks [C, 3, 3] float32 tensors.
#pragma once

#include "../include/projection.h"

namespace splat::cpu {

inline Camera load_camera(const float* viewmat, const float* K, int width, int height) {
    Camera cam;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) cam.R.m[i][j] = viewmat[i * 4 + j];
    cam.t = {viewmat[3], viewmat[7], viewmat[11]};
    cam.fx = K[0];
    cam.fy = K[4];
    cam.cx = K[2];
    cam.cy = K[5];
    cam.width = width;
    cam.height = height;
    return cam;
}

}  // namespace splat::cpu
