"""Compile-only check of the CUDA kernels, for CI machines without a GPU.

    python -m splat.rasterizer.check_cuda_compile [--nvcc PATH] [--arch 80 90] [--no-binding]

Runs `nvcc -c` on every csrc/cuda/*.cu for each architecture (default sm_80
and sm_90) into a temporary directory; the kernels include only our headers
and CUDA/CUB, so neither a GPU nor a CUDA build of torch is needed. Then, when
torch's headers are installed, syntax-checks the torch binding (ext.cpp) with
the host compiler. Exits 1 with the compiler's message on the first failure,
2 when nvcc is missing; prints one summary line on success.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

CSRC = Path(__file__).parent / "csrc"
CUDA_DIR = CSRC / "cuda"


def find_nvcc(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for candidate in (os.environ.get("NVCC"), shutil.which("nvcc")):
        if candidate:
            return candidate
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home and Path(home, "bin", "nvcc").exists():
            return str(Path(home, "bin", "nvcc"))
    return None


def run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        print(f"FAILED: {what}\n$ {' '.join(cmd)}\n{output}", file=sys.stderr)
        sys.exit(1)
    if output:  # warnings: shown, not fatal
        print(f"{what}:\n{output}", file=sys.stderr)


def check_kernels(nvcc: str, archs: list[str], std: str, out: Path) -> int:
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]
    sources = sorted(CUDA_DIR.glob("*.cu"))
    for src in sources:
        cmd = [nvcc, f"-std={std}", "-O3", *gencode, "-I", str(CSRC / "include"), "-c", str(src),
               "-o", str(out / f"{src.stem}.o")]  # fmt: skip
        run(cmd, f"nvcc {src.name}")
    return len(sources)


def nvcc_include_dirs(nvcc: str) -> list[Path]:
    """The include directories nvcc itself uses (from its dry run), for the host compiler."""
    dry = subprocess.run([nvcc, "--dryrun", "-x", "cu", "-c", os.devnull, "-o", os.devnull], capture_output=True, text=True)
    dirs = []
    for line in dry.stderr.splitlines():
        if line.startswith("#$ INCLUDES=") or line.startswith("#$ SYSTEM_INCLUDES="):
            dirs += [Path(tok.strip('"')) for tok in line.split("=", 1)[1].split() if tok.strip('"') not in ("", "-isystem")]
    return [Path(str(d).removeprefix("-I")) for d in dirs]


def torch_include_dirs() -> list[Path] | None:
    """torch's header directories, when torch and its CUDA headers are installed."""
    try:
        import torch.utils.cpp_extension as ext
    except ImportError:
        return None
    dirs = [Path(p) for p in ext.include_paths()]
    if not any((d / "c10" / "cuda" / "CUDAStream.h").exists() for d in dirs):
        return None
    return dirs


def check_binding(nvcc: str, std: str, out: Path) -> bool:
    """Host-compiler syntax check of ext.cpp; False when torch's headers are absent."""
    dirs = torch_include_dirs()
    compiler = os.environ.get("CXX", "c++")
    if dirs is None or shutil.which(compiler) is None:
        return False
    # A CPU build of torch ships c10/cuda without this configure-time header;
    # an empty stand-in is enough for a syntax check.
    stub = out / "stub"
    if not any((d / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists() for d in dirs):
        (stub / "c10" / "cuda" / "impl").mkdir(parents=True)
        (stub / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").write_text("#pragma once\n")
    includes = [f"-I{p}" for p in [stub, *dirs, *nvcc_include_dirs(nvcc), Path(sysconfig.get_paths()["include"])]]
    cmd = [compiler, "-std=c++20" if std == "c++17" else f"-std={std}", "-fsyntax-only", *includes,
           "-DTORCH_EXTENSION_NAME=splat_cuda", str(CUDA_DIR / "ext.cpp")]  # fmt: skip
    run(cmd, "c++ ext.cpp (torch binding)")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvcc", help="nvcc to use (default: $NVCC, PATH, $CUDA_HOME/bin)")
    parser.add_argument("--arch", nargs="+", default=["80", "90"], help="compute capabilities (default: 80 90)")
    parser.add_argument("--std", default="c++17", help="C++ standard for the kernels (default: c++17)")
    parser.add_argument("--no-binding", action="store_true", help="skip the syntax check of the torch binding")
    args = parser.parse_args(argv)

    nvcc = find_nvcc(args.nvcc)
    if nvcc is None:
        print("check_cuda_compile: nvcc not found (set NVCC or CUDA_HOME, or pass --nvcc)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="splat-cuda-check-") as tmp:
        n = check_kernels(nvcc, args.arch, args.std, Path(tmp))
        binding = False if args.no_binding else check_binding(nvcc, args.std, Path(tmp))
    version = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.splitlines()
    version = [line.split(", ", 1)[-1] for line in version if "release" in line]  # "release 13.0, V13.0.88"
    archs = ", ".join(f"sm_{a}" for a in args.arch)
    note = "binding checked" if binding else "binding skipped" if args.no_binding else "binding not checked (no torch headers)"
    print(f"cuda compile check OK: {n} kernel files for {archs} with nvcc {version[0] if version else nvcc}; "
          f"{note}; {time.perf_counter() - start:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
