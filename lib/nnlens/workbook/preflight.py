"""What a run needs: checked before ``make reproduce`` starts.

- ``missing_data(study, profile)``: the datasets a study's profile names (its ``dataset``,
  ``binary_dataset`` and ``mlp_dataset`` fields) that are not on disk, one sentence each.
  Which files a dataset reads is ``data.files``; ``cifar10`` must be in
  ``data/raw/cifar-10-batches-py`` (or its archive in ``data/raw``; ``nnlens.data.cifar10``);
  ``mnist``, ``fashion_mnist`` and the sets built from them (``nnlens.realdata.BASE``) need the
  four IDX files of their set in ``data/raw/{MNIST,FashionMNIST}/raw`` (one message names them).
- ``fetch_data(study, profile)``: fetch and verify the registry data sets a study's profile needs
  (``nnlens.realdata.fetch``), before ``missing_data`` checks; returns one sentence per failure.
- ``check_writable(folder)``: a file can be created, written and renamed there, and there
  is room; otherwise one sentence saying why (before anything runs).
- ``thread_env(n)``: the environment that pins torch/BLAS/OpenMP to ``n`` threads in a
  kernel started with it (torch takes its intra-op thread count from ``OMP_NUM_THREADS``).
(What a run ran on -- machine, torch build, data hashes -- is ``report.provenance``.)
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from .. import data, paths, realdata
from ..report import provenance
from ..studies import profiles

MIN_FREE_BYTES = 200 * 2**20   # reports of one study are < 20 MB; 200 MB leaves room for the staged copy
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NNLENS_THREADS")
DEFAULT_THREADS = 2


def missing_data(study: str, profile: str) -> list[str]:
    """One sentence per dataset that ``study`` at ``profile`` needs and that is not on disk."""
    cfg = profiles.load(study, profile)
    out = []
    for name in dict.fromkeys(provenance.datasets_of(cfg)):
        if data.files(name):
            continue
        if name in realdata.BASE:
            out.append(realdata.missing_message(name))
        elif name == "cifar10":
            raw = paths.show(paths.RAW)
            out.append(f"cifar10 is not in {raw}/cifar-10-batches-py: download {data.CIFAR_URL} into {raw}/ "
                       f"(it is extracted on first use)")
        else:
            out.append(f"{name}: scikit-learn's digits data is not installed (run `make setup`)")
    return out


def fetch_data(study: str, profile: str, log=print) -> list[str]:
    """Fetch and verify the registry data sets ``study`` at ``profile`` needs; one sentence per failure.

    Sets already on disk are only verified (md5). Nothing is fetched for studies on built-in data.
    """
    names = [n for n in provenance.datasets_of(profiles.load(study, profile)) if n in realdata.BASE]
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


def check_data(picked: list[str], profile: str) -> dict[str, list[str]]:
    """{study: its missing datasets}, printed as one message (one line per dataset) when not empty.

    Registry data sets (MNIST, Fashion-MNIST) a study needs are fetched and verified first, with a
    progress line each (``preflight.fetch_data``); what cannot be fetched is then reported as missing."""
    for s in picked:
        fetch_data(s, profile, log=lambda m: print(f"  data: {m}", flush=True))
    missing = {s: m for s in picked if (m := missing_data(s, profile))}
    if missing:
        needed: dict[str, list[str]] = {}
        for s, ms in missing.items():
            for m in ms:
                needed.setdefault(m, []).append(s)
        lines = [f"  {m} (needed by {', '.join(ss)})" for m, ss in needed.items()]
        runnable = [s for s in picked if s not in missing]
        print(f"missing data at profile {profile}; skipping {', '.join(missing)}"
              f"{', running ' + ', '.join(runnable) if runnable else ''}:\n" + "\n".join(lines),
              file=sys.stderr, flush=True)
    return missing
