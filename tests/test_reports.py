import json

import numpy as np
import pandas as pd
import pytest

from nnlens import report


def test_save_table_writes_csv_and_markdown_with_fixed_format(out):
    df = pd.DataFrame({"layer": ["stem", "pool"], "acc": [0.912345678, 1 / 3], "n": [1, 2]})
    csv = out.save_table(df, "01_demo")
    md = csv.with_suffix(".md")
    assert csv.read_text().splitlines() == ["layer,acc,n", "stem,0.9123,1", "pool,0.3333,2"]
    assert "| stem | 0.9123 | 1 |" in md.read_text()
    first = (csv.read_bytes(), md.read_bytes())
    out.save_table(df, "01_demo")
    assert (csv.read_bytes(), md.read_bytes()) == first


def test_save_table_rejects_non_frames(out):
    with pytest.raises(TypeError, match="pandas DataFrame"):
        out.save_table([1, 2], "x")


def test_ledger_rows_and_claims_md(out):
    a = report.Ledger("01", "smoke", out)
    a.claim("01.2", "second", value=0.5, threshold=">= 0.9", holds=False)
    a.claim("01.1", "first", value=0.95, threshold=">= 0.9", holds=True)
    a.claim("01.1", "first (again)", value=0.96, threshold=">= 0.9", holds=True)  # replaces
    a.save()
    b = report.Ledger("03", "smoke", out)
    b.claim("03.10", "tenth", value="2 of 3", threshold="all", holds=False)
    b.save()
    df = report.load_claims(out.claims)
    assert list(df["id"]) == ["01.1", "01.2", "03.10"]
    text = (out.root / "claims.md").read_text()
    assert "1 of 3 paper claims hold" in text
    assert "| 01.1 | paper claim | first (again) | 0.9600 | >= 0.9 | holds |" in text
    assert "| 01.2 | paper claim | second | 0.5000 | >= 0.9 | **does not hold** |" in text
    assert text.index("## Study 01") < text.index("## Study 03")


def test_ledger_rejects_foreign_ids_and_unknown_verdicts(out):
    led = report.Ledger("02", "smoke", out)
    with pytest.raises(ValueError, match="must start with the study number '02'"):
        led.claim("01.1", "x", 1.0, ">0", True)
    with pytest.raises(ValueError, match="verdict must be one of holds, does not hold"):
        led.claim("02.1", "x", 1.0, ">0", "yes")
    with pytest.raises(TypeError, match="holds must be a bool or a verdict"):
        led.claim("02.1", "x", 1.0, ">0", 1)
    with pytest.raises(ValueError, match="says why in its note"):
        led.claim("02.1", "x", 1.0, ">0", "inconclusive")
    with pytest.raises(ValueError, match="kind must be one of"):
        led.claim("02.1", "x", 1.0, ">0", True, kind="claim")
    led.claim("02.1", "x", 1.0, ">0", np.bool_(True))
    led.claim("02.2", "y", 1.0, ">0", "untestable", kind="control", note="no GPU")
    assert list(led.frame()["verdict"]) == ["holds", "untestable"]


def test_threshold_checks_and_renders_the_number_it_compares(out):
    t = report.Threshold("TAD_MAX", "|TAD|", "<=", 0.02, "the spread of 5 reruns")
    assert t.check(0.02) and not t.check(0.021) and not t.check(float("nan"))
    assert t.text() == "|TAD| ≤ 0.02"
    band = report.Threshold("BAND", "slope", "in", (0.5, 1.5), "a simulated null", unit="x")
    assert band.check(1.0) and not band.check(2.0) and band.text() == "slope in [0.5, 1.5]x"
    with pytest.raises(ValueError, match="give the reason"):
        report.Threshold("X", "x", ">", 1.0, "")
    with pytest.raises(ValueError, match="take a \\(lo, hi\\) pair"):
        report.Threshold("X", "x", "in", 1.0, "r")
    row = report.Row.judge("01.3", "small drift", 0.05, t, kind="control", detail="5 seeds")
    assert row.verdict == "does not hold" and row.value == "0.0500 (5 seeds)"
    led = report.Ledger("01", "smoke", out).extend([row])
    saved = led.frame().iloc[0]
    assert saved["threshold"] == "|TAD| ≤ 0.02" and saved["reason"] == "TAD_MAX: the spread of 5 reruns"
    led.save()
    text = (out.root / "claims.md").read_text()
    assert "0 of 1 controls hold." in text and "- 01.3: TAD_MAX: the spread of 5 reruns" in text


def test_manifest_is_stable_and_complete(out):
    from nnlens.studies import profiles

    cfg = profiles.load("01", "smoke")
    p = report.write_manifest(out, "01", "smoke", seeds=[0], config=cfg)
    first = p.read_bytes()
    doc = json.loads(first)
    assert doc["profile"] == "smoke" and doc["seeds"] == [0] and doc["config"]["epochs"] == cfg.epochs
    assert doc["packages"]["torch"] and "commit" in doc
    assert report.write_manifest(out, "01", "smoke", seeds=[0], config=cfg).read_bytes() == first


def test_savefig_is_byte_stable(out):
    import matplotlib.pyplot as plt

    report.use_style()

    def draw():
        fig, ax = plt.subplots()
        ax.plot(np.arange(10), np.arange(10) ** 2, label="k²")
        ax.set(title="demo", xlabel="k")
        ax.legend()
        return fig

    png, pdf = out.savefig(draw(), "00_demo", close=True)
    first = (png.read_bytes(), pdf.read_bytes())
    assert first[0][:8] == b"\x89PNG\r\n\x1a\n" and first[1][:5] == b"%PDF-"
    saved = out.savefig(draw(), "00_demo", close=True)
    assert (png.read_bytes(), pdf.read_bytes()) == first
    assert repr(saved) == "saved figures/00_demo.png and figures/00_demo.pdf"  # no machine paths


def test_savefig_rejects_paths_as_names(out):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    with pytest.raises(ValueError, match="plain file stem"):
        out.savefig(fig, "figures/x")
    plt.close(fig)


def test_atomic_write_keeps_old_file_on_error(tmp_path):
    from nnlens import _io

    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]
