"""The words of the report site (used by ``nnlens.workbook.site``): findings, counts, provenance, glossary.

- ``findings(rows)``: two or three sentences per study, generated from its ledger rows (kinds, verdicts);
- ``counts_table(df)``: rows per kind and verdict (``report.ledger.counts``) as HTML;
- ``paper_numbers(df)``: the "paper vs here" table of ``paper number`` rows;
- ``claims_table(df)``: a study's rows, thresholds as their ``Threshold`` objects render them;
- ``provenance(root)``: commit, date, profile, threads, machine and environment of a reports folder, read
  from ``manifests/*.json``, ``timings.json``, the executed notebooks and ``requirements.lock``, with a
  warning when studies come from different commits or from a commit that is not the code's current one;
- ``GLOSSARY``: the terms the studies use, defined once; ``link_citations``: arXiv ids as links.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from pathlib import Path

import pandas as pd

from .. import paths
from ..report import ledger
from ..report import provenance as _provenance

GLOSSARY = {
    "eNTK": "empirical neural tangent kernel: the inner products of the network's parameter gradients at "
            "two inputs, one C × C block per pair for C outputs.",
    "pNTK": "pseudo-NTK: the eNTK of the sum of the outputs (one number per pair instead of a C × C block).",
    "trNTK": "trace NTK: the trace of the eNTK block, cosine-normalized by the two inputs' own traces; "
             "trNTK⁰ is the same without the normalization.",
    "proj-pNTK / proj-trNTK": "the kernels computed from gradients sketched to K dimensions by a random "
                              "projection (Johnson–Lindenstrauss; error falls as K^-1/2).",
    "CK": "conjugate kernel: inner products of the last hidden layer's features (no gradients).",
    "Em": "embedding kernel: inner products of the concatenated features of every layer.",
    "kGLM": "kernel generalized linear model: a linear classifier on a kernel's rows, the surrogate that "
            "stands in for the network.",
    "τ": "Kendall's rank correlation between the surrogate's and the network's outputs on test points "
         "(faithfulness; 1 = same ranking).",
    "TAD": "test-accuracy difference: surrogate accuracy minus network accuracy (0 = equally accurate).",
    "LDS": "linear datamodeling score: the rank correlation between an attribution's predicted and the "
           "actually retrained outputs over random training subsets (retraining is the ground truth).",
    "TRAK": "Tracing with the Randomly-projected After Kernel (Park et al. 2023), an attribution baseline.",
    "NC1": "neural collapse, first property: within-class variability of a layer's features relative to "
           "the between-class spread (→ 0 as features collapse to their class means).",
    "v*": "the least fraction of a layer's variance (its first k principal components) with which a "
          "simple probe reaches the network's accuracy minus 0.05.",
    "ESD": "empirical spectral density: the histogram of a weight or kernel matrix's eigenvalues.",
    "MP edge": "the upper edge of the Marchenko–Pastur law, the largest eigenvalue a random matrix of "
               "that shape and variance has; eigenvalues beyond it are outliers (signal).",
    "ANOVA": "analysis of variance: how much of the spread of a result is due to each factor (optimizer, "
             "seed, ...) and to their interaction.",
    "threshold": "the cut a measured value is compared with, fixed before the run and calibrated on the "
                 "noise at the size run (a simulated null, the spread of reruns, or a power calculation).",
}

_ARXIV = re.compile(r"arXiv[:\s]\s*(\d{4}\.\d{4,5})(v\d+)?")


def link_citations(text: str) -> str:
    """``arXiv 2205.12372`` (or ``arXiv:2205.12372``) as a link to its abstract page (HTML in, HTML out)."""
    return _ARXIV.sub(lambda m: f'<a href="https://arxiv.org/abs/{m.group(1)}">{m.group(0)}</a>', text)


def esc(text) -> str:
    return link_citations(html.escape(str(text)))


_CONSTANT = re.compile(r"(^|(?<=[\s(;]))[A-Z][A-Z0-9]*_[A-Z0-9_]+:\s*")


def threshold_text(text: str) -> str:
    """A threshold or reason as the reader needs it: ``REL_ERR_F32: <= 1e-05 ...`` loses the code's constant name."""
    return _CONSTANT.sub("", str(text))


def _verdict(verdict: str, note: str) -> str:
    cls = verdict.replace(" ", "-")
    return f'<td class="v {cls}">{html.escape(verdict)}' + (f"<br><small>{esc(note)}</small>" if note else "") + "</td>"


def claims_table(df: pd.DataFrame, reasons: bool = True) -> str:
    head = ("<tr><th>row</th><th>kind</th><th>statement</th><th>measured</th><th>threshold</th>"
            "<th>verdict</th></tr>")
    rows = []
    for r in df.itertuples(index=False):
        why = (f'<details><summary>why this threshold</summary>{esc(threshold_text(r.reason))}</details>'
               if reasons and getattr(r, "reason", "") else "")
        rows.append(f'<tr id="row-{html.escape(r.id)}"><td>{html.escape(r.id)}</td><td>{html.escape(r.kind)}</td>'
                    f"<td>{esc(r.statement)}</td><td>{esc(r.value)}</td>"
                    f"<td>{esc(threshold_text(r.threshold))}{why}</td>{_verdict(r.verdict, r.note)}</tr>")
    return f'<table class="claims">\n{head}\n' + "\n".join(rows) + "\n</table>"


def counts_table(df: pd.DataFrame) -> str:
    """Rows per kind (lines) and verdict (columns): what the ledger found, never one mixed total."""
    if not len(df):
        return "<p>No rows in the ledger.</p>"
    t = ledger.counts(df)
    head = "<tr><th>kind of row</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in t.columns) + "</tr>"
    body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{int(v)}</td>" for v in r) + "</tr>"
                   for k, r in t.iterrows())
    return f'<table class="counts">\n{head}\n{body}\n</table>'


def paper_numbers(df: pd.DataFrame) -> str:
    """The ``paper number`` rows: the paper's value (in the threshold or the note) beside ours."""
    rows = df[df["kind"] == "paper number"] if len(df) else df
    if not len(rows):
        return ("<p>This ledger has no <code>paper number</code> rows (values printed in a paper, ours "
                "beside them) yet.</p>")
    body = "".join(f"<tr><td>{html.escape(r.id)}</td><td>{esc(r.statement)}</td><td>{esc(threshold_text(r.threshold))}"
                   f"</td><td>{esc(r.value)}</td>{_verdict(r.verdict, r.note)}</tr>" for r in rows.itertuples())
    return ('<table class="claims">\n<tr><th>row</th><th>quantity</th><th>paper</th><th>here</th>'
            f"<th>verdict</th></tr>\n{body}\n</table>")


def _shorten(text: str, n: int = 140) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= n else text[:n - 1].rsplit(" ", 1)[0] + "…"


def findings(rows: pd.DataFrame) -> str:
    """Two or three sentences from a study's rows: counts by kind, what holds, what does not (with numbers)."""
    if not len(rows):
        return "No rows recorded for this study yet."
    out = [f"Of its {len(rows)} rows: {ledger.summary_line(rows)[:-1]}."]
    claims = rows[rows["kind"].isin(["paper claim", "paper number"])]
    if not len(claims):
        claims = rows
    held = claims[claims["verdict"] == "holds"]
    failed = claims[claims["verdict"] == "does not hold"]
    open_ = claims[claims["verdict"].isin(["inconclusive", "untestable"])]
    if len(held):
        out.append("Holds here: " + "; ".join(f"{_shorten(r.statement, 100)} ({r.id})"
                                              for r in held.head(2).itertuples()) + ".")
    if len(failed):
        r = failed.iloc[0]
        more = f"; also {', '.join(failed['id'].iloc[1:])}" if len(failed) > 1 else ""
        out.append(f"Does not hold: {_shorten(r.statement, 100)} ({r.id}: measured {_shorten(r.value, 70)}){more}.")
    if len(open_):
        r = open_.iloc[0]
        out.append(f"Open: {_shorten(r.statement, 90)} ({r.id}, {r.verdict}: {_shorten(r.note, 90)}).")
    return " ".join(esc(s) for s in out)


def glossary_html() -> str:
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{esc(v)}</dd>" for k, v in GLOSSARY.items())
    return f'<h2 id="glossary">Glossary</h2>\n<dl class="glossary">{items}</dl>'


# ------------------------------------------------------------------ provenance
def _head() -> str:
    """The commit of the code as it is now (``provenance.code_commit``: the last commit that changed the code,
    '+dirty' with local changes), the one a manifest written now would record; '' outside a git checkout.
    Not HEAD: committing the reports of a run moves HEAD but not the code the results were made with."""
    commit = _provenance.code_commit()
    return "" if commit == "unknown" else commit


def _manifests(root: Path) -> dict[str, dict]:
    out = {}
    for p in sorted((root / "manifests").glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
    return out


def provenance(root: Path) -> dict:
    """What the published results ran on, study by study, and the warnings a reader must see."""
    mans = _manifests(root)
    timings = {}
    try:
        timings = json.loads((root / "timings.json").read_text()).get("studies", {})
    except (OSError, ValueError):
        pass
    runs = {p.stem[:2]: dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            for p in sorted((root / "notebooks").glob("*.ipynb"))}
    lock = paths.ROOT / "requirements.lock"
    lock_hash = hashlib.sha256(lock.read_bytes()).hexdigest()[:12] if lock.is_file() else "-"
    studies = {}
    for s in sorted(set(mans) | set(runs)):
        m = mans.get(s, {})
        mach = m.get("machine", {})
        studies[s] = {"commit": m.get("commit", "?"), "date": runs.get(s, "?"), "profile": m.get("profile", "?"),
                      "threads": timings.get(s, {}).get("threads", m.get("torch", {}).get("threads", "?")),
                      "machine": ", ".join(str(x) for x in (mach.get("cpu"), f"{mach.get('cores', '?')} cores",
                                                           f"{mach.get('ram_gib', '?')} GiB",
                                                           mach.get("gpu") or "no GPU") if x),
                      "env": f"Python {m.get('python', '?')}, torch {m.get('packages', {}).get('torch', '?')}"}
    head = _head()
    commits = sorted({v["commit"] for v in studies.values()})
    warnings = []
    if len(commits) > 1:
        warnings.append(f"the studies come from {len(commits)} different commits ({', '.join(commits)}): "
                        "rerun `make reproduce FORCE=1` for one consistent set")
    if head and commits and any(not head.startswith(c[:7]) and not c.startswith(head) for c in commits):
        warnings.append(f"the code is at {head}, not the commit the results were made with")
    return {"studies": studies, "head": head, "lock": lock_hash, "warnings": warnings}


def provenance_html(prov: dict, study: str | None = None) -> str:
    """The provenance box: one study's run (on its page) or every study's (front and claims pages)."""
    rows = {study: prov["studies"][study]} if study and study in prov["studies"] else prov["studies"]
    if not rows:
        return '<aside class="provenance"><p>No run manifests in this reports folder.</p></aside>'
    head = "<tr><th>study</th><th>commit</th><th>run</th><th>profile</th><th>threads</th><th>machine</th>" \
           "<th>environment</th></tr>"
    body = "".join(f"<tr><td>{s}</td><td><code>{html.escape(str(v['commit']))}</code></td><td>{v['date']}</td>"
                   f"<td>{html.escape(str(v['profile']))}</td><td>{v['threads']}</td><td>{html.escape(v['machine'])}"
                   f"</td><td>{html.escape(v['env'])}</td></tr>" for s, v in rows.items())
    warn = "".join(f'<p class="warning">⚠ Provenance: {html.escape(w)}.</p>' for w in prov["warnings"])
    return (f'<aside class="provenance" id="provenance">{warn}<details>'
            f"<summary>Provenance: commit {', '.join(sorted({str(v['commit']) for v in rows.values()}))}, "
            f"profile {', '.join(sorted({str(v['profile']) for v in rows.values()}))}, environment lock "
            f"<code>{prov['lock']}</code> (sha256 of requirements.lock)"
            f"{', code now at ' + prov['head'] if prov['head'] else ''}</summary>"
            f'<table class="prov">{head}{body}</table></details></aside>')
