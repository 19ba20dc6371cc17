"""Just-in-time build of the compiled backends (torch.utils.cpp_extension + ninja).

Built on first use, with a visible message, and cached under
$SPLAT_BUILD_DIR (default ~/.cache/splat/build). The cache key includes the
sources, the torch version and the CPU's instruction-set flags, because the
CPU backend is compiled with -march=native. A new build deletes all but the
few most recently used older ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from types import ModuleType

from splat.errors import BuildError

CSRC = Path(__file__).parent / "csrc"
_loaded: dict[str, ModuleType] = {}


def loaded(name: str) -> ModuleType | None:
    """The extension `name` ("cpu", "cuda") if this process has loaded it; builds nothing."""
    return _loaded.get(name)


def build_dir() -> Path:
    root = os.environ.get("SPLAT_BUILD_DIR") or Path.home() / ".cache" / "splat" / "build"
    return Path(root)


def _cpu_signature() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return flags


def _fingerprint(sources: list[Path], extra: str) -> str:
    import torch

    h = hashlib.sha256()
    for path in sorted(sources + list((CSRC / "include").glob("*.h")) + list(sources[0].parent.glob("*.h"))):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(torch.__version__.encode())
    h.update(sys.version.encode())
    h.update(extra.encode())
    return h.hexdigest()[:12]


def _check_toolchain(compiler: str) -> None:
    if shutil.which(compiler) is None:
        raise BuildError(
            f"the C++ compiler '{compiler}' is not installed; install a C++17 compiler "
            "(Debian/Ubuntu: apt-get install g++; macOS: xcode-select --install)"
        )
    if not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        raise BuildError("Python headers (Python.h) are missing; install them (Debian/Ubuntu: apt-get install python3-dev)")
    try:
        import ninja  # noqa: F401
    except ImportError:
        if shutil.which("ninja") is None:
            raise BuildError("ninja is missing; install it with 'pip install ninja'") from None


@contextlib.contextmanager
def _build_lock(out: Path):
    """Hold an exclusive lock on `out` while loading (and maybe building) there.

    torch's own lock is a file that a killed build leaves behind, and two
    processes loading the same cached build at once could remove it under
    each other (one then failed with "No such file or directory: .../lock"
    and fell back to the torch reference). An flock is released by the
    kernel when its process exits, so the lock can never go stale; while we
    hold it no other process is inside torch's loader for `out`, so a torch
    lock file found there is a leftover and is removed.
    """
    with open(out / "splat-build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"splat: waiting for another process building into {out}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            (out / "lock").unlink(missing_ok=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


KEEP_BUILDS = 4  # per backend: the one in use and the three used most recently before it


def prune_old_builds(name: str, current: Path) -> list[Path]:
    """Delete all but the KEEP_BUILDS most recently used builds of backend `name`
    (every change of the sources, torch or compiler flags makes a new one);
    returns the deleted folders. A build another process holds the lock of
    is kept; a process that already loaded one keeps its mapped library."""
    def last_used(folder: Path) -> float:  # the lock file is rewritten on every load
        lock = folder / "splat-build.lock"
        return (lock if lock.exists() else folder).stat().st_mtime

    others = sorted((d for d in build_dir().glob(f"{name}_*") if d.is_dir() and d != current), key=last_used)
    deleted = []
    for folder in others[: max(0, len(others) - (KEEP_BUILDS - 1))]:
        with open(folder / "splat-build.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # in use
            shutil.rmtree(folder, ignore_errors=True)
            deleted.append(folder)
    return deleted


def _load(name: str, sources: list[Path], cflags: list[str], ldflags: list[str], **kwargs) -> ModuleType:
    from torch.utils import cpp_extension

    key = f"{name}_{_fingerprint(sources, ' '.join(cflags) + _cpu_signature())}"
    out = build_dir() / key
    out.mkdir(parents=True, exist_ok=True)
    cached = any(out.glob(f"{key}*.so"))
    if not cached:
        print(f"splat: compiling the {name} rasterizer backend (first use; about a minute) into {out}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    kwargs = dict(
        name=key,
        sources=[str(s) for s in sources],
        extra_cflags=cflags,
        extra_ldflags=ldflags,
        extra_include_paths=[str(CSRC / "include")],
        build_directory=str(out),
        verbose=os.environ.get("SPLAT_BUILD_VERBOSE") == "1",
        **kwargs,
    )
    try:
        with _build_lock(out):
            module = cpp_extension.load(**kwargs)
    except Exception as err:  # compiler errors arrive as RuntimeError/CalledProcessError
        raise BuildError(f"building the {name} backend failed in {out}: {err}".strip()) from err
    if not cached:
        print(f"splat: {name} backend ready ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        prune_old_builds(name, out)
    return module


def load_cpu() -> ModuleType:
    """The compiled CPU extension (built on first call)."""
    if "cpu" not in _loaded:
        compiler = os.environ.get("CXX", "c++")
        _check_toolchain(compiler)
        sources = sorted((CSRC / "cpu").glob("*.cpp"))
        native = [] if os.environ.get("SPLAT_NO_NATIVE") == "1" else ["-march=native"]
        # no-trapping/no-errno change no result; they let the blend loops vectorize
        cflags = ["-O3", "-std=c++17", "-fopenmp", *native, "-fno-trapping-math", "-fno-math-errno", "-Wno-psabi"]
        _loaded["cpu"] = _load("splat_cpu", sources, cflags, ["-fopenmp"])
    return _loaded["cpu"]


def _cuda_unavailable_reason() -> str | None:
    """Why the CUDA backend cannot be built here, or None. Starts no compiler."""
    import torch

    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support; install a CUDA build of torch"
    if not torch.cuda.is_available():
        return "no usable CUDA GPU (torch.cuda.is_available() is False)"
    from torch.utils.cpp_extension import CUDA_HOME

    if CUDA_HOME is None or not Path(CUDA_HOME, "bin", "nvcc").exists():
        return f"nvcc was not found; install the CUDA toolkit {torch.version.cuda} and set CUDA_HOME"
    return None


def load_cuda() -> ModuleType:
    """The compiled CUDA extension (built on first call, for the current GPU's architecture).

    Raises BuildError without a CUDA build of torch, a usable GPU or nvcc.
    Never called at import time: only when a CUDA tensor meets backend "cuda"/"auto".
    """
    if "cuda" not in _loaded:
        reason = _cuda_unavailable_reason()
        if reason is not None:
            raise BuildError(f"the cuda rasterizer backend is unavailable: {reason}")
        import torch

        _check_toolchain(os.environ.get("CXX", "c++"))
        cuda_dir = CSRC / "cuda"
        sources = sorted(cuda_dir.glob("*.cu")) + [cuda_dir / "ext.cpp"]
        major, minor = torch.cuda.get_device_capability()
        arch = f"{major}{minor}"
        # _fingerprint hashes *.h only: the device headers (*.cuh) and the
        # architecture enter the cache key through this define.
        cuh = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(cuda_dir.glob("*.cuh")))).hexdigest()[:12]
        cflags = ["-O3", f"-DSPLAT_CUDA_BUILD_KEY=sm{arch}_{cuh}"]
        # No --use_fast_math: blending stays close to the CPU backend (the
        # kernels call __expf explicitly through fast_exp where it is wanted).
        # An explicit -gencode also stops torch from adding its default arch list.
        cuda_cflags = ["-O3", f"-gencode=arch=compute_{arch},code=sm_{arch}", "-lineinfo"]
        _loaded["cuda"] = _load("splat_cuda", sources, cflags, [], extra_cuda_cflags=cuda_cflags)
    return _loaded["cuda"]
