"""What a run needs and what it ran on: checked before ``make reproduce`` starts, recorded in manifests.

- ``missing_data(study, profile)``: the datasets a study's profile names (its ``dataset``,
  ``binary_dataset`` and ``mlp_dataset`` fields) that are not on disk, one sentence each.
  ``digits``, ``digits01`` and ``clutter`` ship with scikit-learn; ``cifar10`` must be in
  ``data/raw/cifar-10-batches-py`` (or its archive in ``data/raw``; ``nnlens.data.cifar10``);
  ``mnist``, ``fashion_mnist`` and the sets built from them (``nnlens.realdata.BASE``) need the
  four IDX files of their set in ``data/raw/{MNIST,FashionMNIST}/raw`` (one message names them).
- ``fetch_data(study, profile)``: fetch and verify the registry data sets a study's profile needs
  (``nnlens.realdata.fetch``), before ``missing_data`` checks; returns one sentence per failure.
- ``check_writable(folder)``: a file can be created, written and renamed there, and there
  is room; otherwise one sentence saying why (before anything runs).
- ``thread_env(n)``: the environment that pins torch/BLAS/OpenMP to ``n`` threads in a
  kernel started with it (torch takes its intra-op thread count from ``OMP_NUM_THREADS``).
- ``machine()``, ``torch_build()``, ``data_hashes(cfg)``: hardware, torch build and the
  sha256 of every data file a study config reads, for ``reports.write_manifest``.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import os
import platform
import shutil
import tempfile
from pathlib import Path

from . import paths

DATA_FIELDS = ("dataset", "binary_dataset", "mlp_dataset")   # config fields that name a dataset
CIFAR_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
               "test_batch", "batches.meta")
MIN_FREE_BYTES = 200 * 2**20   # reports of one study are < 20 MB; 200 MB leaves room for the staged copy
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NNLENS_THREADS")
DEFAULT_THREADS = 2


def _digits_file() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
    return p if p.is_file() else None


def data_files(name: str) -> list[Path]:
    """The files on disk that dataset ``name`` is read from (empty when it is missing)."""
    from . import realdata

    if name in realdata.BASE:
        folder = realdata.raw_folder(name)
        if realdata.missing(name):
            return []
        return [folder / f if (folder / f).is_file() else folder / (f + ".gz") for f in realdata.FILES]
    if name in ("digits", "digits01", "clutter"):
        f = _digits_file()
        return [f] if f else []
    if name == "cifar10":
        folder = paths.RAW / "cifar-10-batches-py"
        files = [folder / f for f in CIFAR_FILES]
        if all(f.is_file() for f in files):
            return files
        archive = paths.RAW / "cifar-10-python.tar.gz"
        return [archive] if archive.is_file() else []
    return []


def datasets_of(cfg) -> list[str]:
    """The dataset names a study config reads (its ``DATA_FIELDS``), in field order."""
    return [getattr(cfg, f) for f in DATA_FIELDS if hasattr(cfg, f)]


def missing_data(study: str, profile: str) -> list[str]:
    """One sentence per dataset that ``study`` at ``profile`` needs and that is not on disk."""
    from . import profiles

    cfg = profiles.load(study, profile)
    out = []
    for name in dict.fromkeys(datasets_of(cfg)):
        if data_files(name):
            continue
        from . import realdata

        if name in realdata.BASE:
            out.append(realdata.missing_message(name))
        elif name == "cifar10":
            from .data import CIFAR_URL

            raw = paths.show(paths.RAW)
            out.append(f"cifar10 is not in {raw}/cifar-10-batches-py: download {CIFAR_URL} into {raw}/ "
                       f"(it is extracted on first use)")
        else:
            out.append(f"{name}: scikit-learn's digits data is not installed (run `make setup`)")
    return out


def fetch_data(study: str, profile: str, log=print) -> list[str]:
    """Fetch and verify the registry data sets ``study`` at ``profile`` needs; one sentence per failure.

    Sets already on disk are only verified (md5). Nothing is fetched for studies on built-in data.
    """
    from . import profiles, realdata

    names = [n for n in datasets_of(profiles.load(study, profile)) if n in realdata.BASE]
    problems = []
    for base in dict.fromkeys(realdata.base(n).name for n in names):
        try:
            realdata.fetch(base, log=log)
        except (realdata.DataMissingError, realdata.ChecksumError) as e:
            problems.append(str(e))
    return problems


def check_writable(folder: Path) -> str | None:
    """None when ``folder`` takes a new file (created, written, renamed, removed) and has room; else why not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        try:
            os.write(fd, b"nnlens write check\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, tmp + ".renamed")
        os.unlink(tmp + ".renamed")
    except OSError as e:
        return f"cannot write to {folder} ({e.strerror or e})"
    free = shutil.disk_usage(folder).free
    if free < MIN_FREE_BYTES:
        return f"only {free / 2**20:.0f} MB free in {folder} (need {MIN_FREE_BYTES / 2**20:.0f} MB)"
    return None


def thread_env(n: int) -> dict[str, str]:
    """Environment variables that pin a new process to ``n`` torch/BLAS/OpenMP threads."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"threads must be a positive int, got {n!r}")
    return {k: str(n) for k in THREAD_VARS}


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
        for f in data_files(name):
            st = f.stat()
            files[f.name] = _sha256(str(f), st.st_mtime_ns, st.st_size)
        out[name] = files
    return out
