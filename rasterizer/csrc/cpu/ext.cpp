// Python bindings of the CPU rasterizer ops (inputs are checked in Python).
#include <utility>

#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    using namespace splat::cpu;
    m.def("project_forward", &project_forward);
    m.def("project_backward", &project_backward);
    m.def("sh_colors_forward", &sh_colors_forward);
    m.def("sh_colors_backward", &sh_colors_backward);
    m.def("intersect_tiles", &intersect_tiles);
    m.def("blend_forward", &blend_forward);
    m.def("blend_backward", &blend_backward);
    m.def("first_non_finite", &first_non_finite);
    m.def("any_zero_quaternion", &any_zero_quaternion);
    m.def("num_threads", &num_threads);
    m.def("set_min_parallel_work_ns", [](double ns) {  // returns the previous value
        return std::exchange(min_parallel_work_ns(), ns);
    });
}
