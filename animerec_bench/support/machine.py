"""What machine a number was measured on: CPU, cores, memory, GPUs, OS, Python, frameworks.

Nothing heavy is imported here: versions come from package metadata, and device lists from
Keras/TensorFlow/JAX are read only when the job already imported them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from animerec_bench.support import compile_cache

#: Distributions whose versions are recorded (None when not installed).
PACKAGES = ("numpy", "tensorflow", "tensorflow-cpu", "keras", "jax", "jaxlib", "torch")


def _cpuinfo_field(name: str) -> str | None:
    """The first ``name`` line's value in Linux ``/proc/cpuinfo`` (None: no such line or file)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine() or "unknown"


#: The vector instruction sets that decide a float kernel's speed (and, across them, its last
#: bits: BLAS and oneDNN pick their kernels by them), widest last; ``simd`` records those present.
SIMD_FLAGS = ("avx", "fma", "avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
#: The label's name for the widest recorded set.
SIMD_NAMES = {"avx512f": "AVX-512", "avx2": "AVX2", "avx": "AVX"}


def simd() -> list[str] | None:
    """The :data:`SIMD_FLAGS` this CPU has (Linux ``/proc/cpuinfo``), None where unknown. Two
    machines with the same model name can differ here: this project's "AMD EPYC" hosts have come
    with and without AVX-512, and ``kernel-tower``'s towers took 10-11 s an epoch on one, 19-21 s
    on the other."""
    flags = _cpuinfo_field("flags")
    return None if flags is None else [flag for flag in SIMD_FLAGS if flag in flags.split()]


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpus() -> list[dict]:
    """NVIDIA GPUs from ``nvidia-smi`` (empty when it is absent or fails)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            found.append({"name": parts[0], "memory_mib": int(parts[1]) if parts[1].isdigit() else None,
                          "driver": parts[2]})
    return found


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in PACKAGES:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def keras_backend() -> str:
    """The backend Keras uses or would use: the live one if imported, else env/config/default."""
    if "keras" in sys.modules:
        try:
            return sys.modules["keras"].backend.backend()
        except Exception:
            pass
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


#: The package whose version is a Keras backend's version.
BACKEND_PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu"), "jax": ("jax",), "torch": ("torch",)}


def keras_backend_version() -> str | None:
    """The version of the backend Keras runs on in this process; None when Keras was not
    imported (a numpy model: no backend was used, so none is claimed)."""
    if "keras" not in sys.modules:
        return None
    backend = keras_backend()
    module = sys.modules.get(backend)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return module.__version__
    for dist in BACKEND_PACKAGES.get(backend, (backend,)):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def framework_devices() -> list[str] | None:
    """Devices the already-imported framework sees; None when no framework was imported."""
    try:
        if "tensorflow" in sys.modules:
            tf = sys.modules["tensorflow"]
            return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
        if "jax" in sys.modules:
            return [str(d) for d in sys.modules["jax"].devices()]
        if "torch" in sys.modules:
            torch = sys.modules["torch"]
            return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    except Exception:
        return None
    return None


def machine_info() -> dict:
    """Everything a result records about the machine (plain JSON types)."""
    uname = platform.uname()
    return {
        "cpu": cpu_model(),
        "simd": simd(),
        "arch": uname.machine,
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "memory_bytes": memory_bytes(),
        "gpus": gpus(),
        "os": f"{uname.system} {uname.release}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "versions": versions(),
        "keras_backend": keras_backend(),
        "keras_backend_version": keras_backend_version(),
        "devices": framework_devices(),
        "compile_cache": compile_cache.in_use(),
    }


def short_label(machine: dict) -> str:
    """One-line hardware label for tables: CPU (with its widest vector set, where recorded), usable cores (``1 of 2 cores`` when the job had
    an allotment: ``run --jobs N``), memory, GPU or none, and the Keras backend when a Keras
    model ran on another than TensorFlow. Timings under different allotments or backends are
    not comparable, so they never share a leaderboard row."""
    cpu = re.sub(r"\((R|TM|tm|r)\)|\bCPU\b|@.*$|\bProcessor\b", "", str(machine.get("cpu") or "unknown"))
    cpu = re.sub(r"\s+", " ", cpu).strip() or "unknown CPU"
    widest = [SIMD_NAMES[f] for f in reversed(SIMD_FLAGS) if f in SIMD_NAMES and f in (machine.get("simd") or ())]
    if widest:  # results from before ``simd`` was recorded keep their label (and their rows)
        cpu += f" ({widest[0]})"
    cores = machine.get("usable_cores") or machine.get("cores")
    mem = machine.get("memory_bytes")
    parts = [cpu]
    allotted = machine.get("cores_allotted")
    if allotted and cores:
        parts.append(f"{allotted} of {cores} cores")
    elif cores:
        parts.append(f"{cores} cores")
    if mem:
        parts.append(f"{mem / 2**30:.0f} GiB")
    g = machine.get("gpus") or []
    parts.append(", ".join(sorted(x.get("name", "?") for x in g)) if g else "no GPU")
    backend = machine.get("keras_backend")
    if machine.get("keras_backend_version") and backend and backend != "tensorflow":
        parts.append(f"Keras on {backend} {machine['keras_backend_version']}")
    return ", ".join(parts)
