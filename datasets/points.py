"""The initial point cloud a trainer starts from.

SfM points (with colors) when the format has them; otherwise uniform random
points inside the box spanned by the cameras. Open3D does the optional
clean-up: voxel downsampling (fewer, evenly spread seeds) and statistical
outlier removal (drops the floaters SfM leaves far from any surface).
"""

from __future__ import annotations

import numpy as np


def random_points(centers: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform in the axis-aligned box of camera centers [N, 3], gray colors.

    Cameras surround what they look at, so their box contains the scene; a
    flat box (cameras on a plane) is padded to the largest extent.
    """
    rng = np.random.default_rng(seed)
    lo, hi = centers.min(axis=0), centers.max(axis=0)
    extent = hi - lo
    pad = np.maximum(extent.max() * 0.5 - extent, 0) / 2  # avoid a zero-thickness box
    lo, hi = lo - pad, hi + pad
    xyz = rng.uniform(lo, hi, size=(n, 3))  # [n, 3]
    rgb = np.full((n, 3), 0.5)  # [n, 3]
    return xyz, rgb


def filter_points(
    xyz: np.ndarray,  # [P, 3]
    rgb: np.ndarray,  # [P, 3] in [0, 1]
    voxel_size: float | None = None,
    outlier_neighbors: int = 0,
    outlier_std: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-downsample and/or drop statistical outliers with Open3D.

    voxel_size: merge points per voxel (None: keep all). outlier_neighbors:
    neighbours for the statistical test (0: no outlier removal); points whose
    mean neighbour distance exceeds mean + outlier_std * std are removed.
    """
    if len(xyz) == 0 or (not voxel_size and not outlier_neighbors):
        return xyz, rgb
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(xyz, dtype=np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(np.clip(np.asarray(rgb, dtype=np.float64), 0, 1))
    if voxel_size:
        pcd = pcd.voxel_down_sample(float(voxel_size))
    if outlier_neighbors and len(pcd.points) > outlier_neighbors:
        pcd, _ = pcd.remove_statistical_outlier(nb_neighbors=int(outlier_neighbors), std_ratio=float(outlier_std))
    return np.asarray(pcd.points), np.asarray(pcd.colors)
