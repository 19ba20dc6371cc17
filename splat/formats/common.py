"""Small helpers shared by the format modules: constants, activations, errors."""

from __future__ import annotations

import math
import os

import numpy as np

from splat.errors import SplatError

SH_C0 = 0.28209479177387814  # degree-0 real SH basis value: color = 0.5 + SH_C0 * dc


def bad_file(path: str | os.PathLike, what: str) -> SplatError:
    """A user-facing error that names the file and what is wrong with it."""
    return SplatError(f"{os.fspath(path)}: {what}")


def sh_degree_for(num_coeffs: int, path: str | os.PathLike = "<scene>") -> int:
    """SH degree from the number of coefficients per channel, K = (degree + 1)^2."""
    degree = math.isqrt(num_coeffs) - 1
    if num_coeffs < 1 or (degree + 1) ** 2 != num_coeffs:
        raise bad_file(path, f"{num_coeffs} SH coefficients per channel is not (degree + 1)^2")
    return degree


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def logit(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    # clamp: 8-bit alphas of exactly 0 or 255 would give +-inf
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p / (1.0 - p))


def unorm8(byte: np.ndarray) -> np.ndarray:
    """8-bit value -> [0, 1], nudging 0 and 255 a quarter step inward: `logit` stays
    finite, and re-encoding (round(p * 255)) still gives the same byte."""
    return np.clip(byte.astype(np.float64), 0.25, 254.75) / 255.0


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SplatError(f"{os.fspath(path)}: no such file") from None
    except IsADirectoryError:
        raise bad_file(path, "is a directory, expected a file") from None
