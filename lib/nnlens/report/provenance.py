"""What produced a study's reports: the run manifest, the machine, torch's build, the data's hashes.

``write_manifest(out, study, profile, seeds, config)`` records the profile, seeds, config,
package versions, the commit that last changed the code, the machine (CPU model, cores,
RAM, GPU), torch's build and thread count, and the sha256 of every data file the config
reads, as ``manifests/<study>.json``. Nothing time-dependent is written, so a rerun on the
same machine leaves identical bytes (wall times go to ``timings.json``, written by the runner).
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from .. import _io, data, paths
from .outputs import Outputs


def datasets_of(cfg) -> list[str]:
    """The dataset names a study config reads: its fields named ``dataset`` or ``*_dataset``, in field order."""
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return []
    return [getattr(cfg, f.name) for f in dataclasses.fields(cfg)
            if f.name == "dataset" or f.name.endswith("_dataset")]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model, logical cores (all and usable by this process), RAM, GPU: stable across reruns here."""
    import psutil
    import torch

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "cores_usable": usable,
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "gpu": gpu,
            "system": f"{platform.system()} {platform.machine()}"}


def torch_build() -> dict:
    """torch's version, build (CUDA version or cpu), BLAS backends, and the threads this process uses."""
    import torch

    return {"version": torch.__version__, "cuda": torch.version.cuda, "build": "cuda" if torch.version.cuda else "cpu",
            "device": "cuda" if torch.cuda.is_available() else "cpu",
            "mkl": torch.backends.mkl.is_available(), "openmp": torch.backends.openmp.is_available(),
            "threads": torch.get_num_threads(), "nnlens_threads": os.environ.get("NNLENS_THREADS")}


@functools.lru_cache(maxsize=None)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def data_hashes(cfg) -> dict[str, dict[str, str]]:
    """{dataset: {file name: sha256}} for every dataset ``cfg`` reads (synthetic data has no files)."""
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return {}
    out = {}
    for name in dict.fromkeys(datasets_of(cfg)):
        files = {}
        for f in data.files(name):
            st = f.stat()
            files[f.name] = _sha256(str(f), st.st_mtime_ns, st.st_size)
        out[name] = files
    return out


CODE_PATHS = ("lib", "notebooks", "benchmarks", "pyproject.toml", "requirements.lock")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", "-C", str(paths.ROOT), *args], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _commit() -> str:
    """The last commit that changed the code (not the reports), '+dirty' if the code has local changes.

    Committing regenerated reports therefore does not change the manifest of the next run.
    """
    commit = _git("log", "-1", "--format=%h", "--", *CODE_PATHS) or "unknown"
    dirty = _git("status", "--porcelain", "--", *CODE_PATHS)
    return commit + ("+dirty" if dirty else "")


def code_commit() -> str:
    """The commit a manifest written now would record (``_commit``)."""
    return _commit()


def package_versions(names=("torch", "torchvision", "numpy", "scipy", "scikit-learn", "statsmodels",
                            "pandas", "matplotlib", "seaborn", "powerlaw", "pytorch-optimizer")) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def write_manifest(out: Outputs, study: str, profile: str, seeds, config=None, extra: dict | None = None) -> Path:
    """Record what produced a study's reports: profile, seeds, config, versions, commit, machine, data.

    Also: the hardware (``machine``: CPU model, cores, RAM, GPU), torch's build and the
    thread count it ran with (``torch_build``; ``make reproduce`` pins it through
    ``THREADS``), and the sha256 of every data file the config reads (``data_hashes``). Nothing
    time-dependent is written, so a rerun on the same machine leaves identical bytes: wall times go
    to ``timings.json`` (written by the runner).
    """
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    doc = {
        "study": str(study).zfill(2),
        "profile": profile,
        "seeds": list(seeds) if not isinstance(seeds, int) else [seeds],
        "config": cfg,
        "python": platform.python_version(),
        "packages": package_versions(),
        "commit": _commit(),
        "machine": machine(),
        "torch": torch_build(),
        "data": data_hashes(config),
        **(extra or {}),
    }
    target = out.manifests / f"{str(study).zfill(2)}.json"
    return _io.write_text(target, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
