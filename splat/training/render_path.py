"""Camera paths for videos: orbit, spiral (around the mean pose), or the train views."""

from __future__ import annotations

import math

import numpy as np
import torch

from splat.rotations import matrix_to_quat, quat_to_matrix, slerp


def _look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """World-to-camera (OpenCV: x right, y down, z forward) looking from eye at target."""
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)  # right = forward x up; then y = z x x points down
    if np.linalg.norm(x) < 1e-8:
        x = np.cross(z, np.array([1.0, 0.0, 0.0]))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return np.linalg.inv(c2w)


def _frame(cameras):
    c2w = torch.linalg.inv(cameras.viewmats.double()).numpy()
    centers = c2w[:, :3, 3]
    up = -c2w[:, :3, 1].mean(0)  # cameras' "up" is -y
    up /= np.linalg.norm(up)
    # target: the point closest to all optical axes (least squares)
    dirs = c2w[:, :3, 2]
    A = np.zeros((3, 3))
    b = np.zeros(3)
    for o, d in zip(centers, dirs):
        P = np.eye(3) - np.outer(d, d)
        A += P
        b += P @ o
    target = np.linalg.lstsq(A, b, rcond=None)[0]
    mean = centers.mean(0)
    spread = max(float(np.linalg.norm(centers - mean, axis=1).max()), 1e-6)
    if not np.all(np.isfinite(target)) or np.linalg.norm(target - mean) > 3 * spread:
        fwd = dirs.mean(0)  # (nearly) parallel axes, e.g. forward-facing: look ahead
        target = mean + fwd / (np.linalg.norm(fwd) + 1e-12) * spread
    return centers, up, target


def focus_point(cameras) -> np.ndarray:
    """The point closest to all optical axes (what the cameras look at), [3]."""
    return _frame(cameras)[2]


def orbit(cameras, n_frames: int = 120) -> torch.Tensor:
    """A circle around the scene's look-at point at the mean camera height and distance."""
    centers, up, target = _frame(cameras)
    rel = centers - target
    height = float((rel @ up).mean())
    radial = rel - np.outer(rel @ up, up)
    radius = float(np.linalg.norm(radial, axis=1).mean())
    e1 = radial[0] / (np.linalg.norm(radial[0]) + 1e-12)
    e2 = np.cross(up, e1)
    mats = []
    for t in np.linspace(0, 2 * math.pi, n_frames, endpoint=False):
        eye = target + up * height + radius * (math.cos(t) * e1 + math.sin(t) * e2)
        mats.append(_look_at(eye, target, up))
    return torch.tensor(np.stack(mats), dtype=torch.float32)


def spiral(cameras, n_frames: int = 120, rotations: int = 2) -> torch.Tensor:
    """An LLFF-style spiral around the mean camera, looking at the scene's focus point."""
    centers, up, target = _frame(cameras)
    mean = centers.mean(0)
    fwd = target - mean
    dist = np.linalg.norm(fwd)
    fwd /= dist
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    true_up = np.cross(right, fwd)
    spread = np.percentile(np.abs((centers - mean) @ np.stack([right, true_up, fwd]).T), 90, axis=0) + 0.05 * dist
    mats = []
    for t in np.linspace(0, 2 * math.pi * rotations, n_frames, endpoint=False):
        eye = mean + spread[0] * math.cos(t) * right + spread[1] * math.sin(t) * true_up \
            + spread[2] * math.sin(0.5 * t) * fwd
        mats.append(_look_at(eye, target, true_up))
    return torch.tensor(np.stack(mats), dtype=torch.float32)


def interpolate_poses(c2w: np.ndarray, n_frames: int) -> np.ndarray:
    """Piecewise slerp / lerp through camera-to-world matrices [M, 4, 4] -> [n_frames, 4, 4]."""
    m = len(c2w)
    out = []
    for s in np.linspace(0, m - 1, n_frames):
        i = min(int(s), m - 2)
        t = s - i
        R = quat_to_matrix(slerp(matrix_to_quat(c2w[i, :3, :3]), matrix_to_quat(c2w[i + 1, :3, :3]), t))
        M = np.eye(4)
        M[:3, :3], M[:3, 3] = R, (1 - t) * c2w[i, :3, 3] + t * c2w[i + 1, :3, 3]
        out.append(M)
    return np.stack(out)


def make_path(kind: str, cameras, n_frames: int = 120) -> torch.Tensor:
    """World-to-camera matrices [n_frames, 4, 4] for `orbit`, `spiral` or `train`."""
    if kind == "orbit":
        return orbit(cameras, n_frames)
    if kind == "spiral":
        return spiral(cameras, n_frames)
    if kind == "train":
        order = sorted(range(len(cameras)), key=lambda i: cameras.names[i]) if cameras.names else list(range(len(cameras)))
        c2w = torch.linalg.inv(cameras.viewmats[order].double()).numpy()
        if len(c2w) == 1:
            return cameras.viewmats[order].float().repeat(n_frames, 1, 1)
        return torch.tensor(np.linalg.inv(interpolate_poses(c2w, n_frames)), dtype=torch.float32)
    raise ValueError(f"unknown camera path {kind!r} (orbit, spiral, train)")
