"""The report site: executed notebooks and the claims ledger as static HTML.

``python -m nnlens.workbook.site`` (``make site``) reads the published reports
(``reports/notebooks/*.ipynb`` executed by the runner, ``reports/claims/*.csv``,
``reports/figures/*.png``) and writes ``reports/site/``:

- ``index.html``: every study's verdicts (how many claims hold, and each row) and
  its key figure, with links to the study's page and the ledger;
- ``claims.html``: the whole ledger, one table per study;
- ``<notebook>.html``: each executed notebook, rendered by nbconvert's
  ``HTMLExporter`` (lab template) with its figures inline as embedded images, and
  a navigation bar back to the front page and the ledger.

Every page is self-contained (figures are ``data:`` URIs) and byte-stable: the
same reports give the same bytes on a rerun (nothing here reads the clock).
"""
from __future__ import annotations

import argparse
import base64
import html
import re
import sys
from pathlib import Path

import nbformat

from .. import _io, paths
from ..report.ledger import load_claims

# The figure shown for each study on the front page: the one that answers the study's
# question at a glance. A study missing here (or whose figure is missing) shows its
# first figure in name order.
KEY_FIGURES = {
    "01": "01_accuracy_vs_k",
    "02": "02_tau_tad",
    "03": "03_twolayer_esd",
    "04": "04_interaction",
    "05": "05_bench_scaling",
}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 70rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; line-height: 1.45; }
table.claims { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; font-size: .9rem; }
table.claims th, table.claims td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left;
                                   vertical-align: top; }
table.claims th { background: #f6f8fa; }
td.holds { color: #1a7f37; } td.fails { color: #cf222e; font-weight: 600; }
img.key { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
.counts { font-weight: 600; }
"""


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            f"{_nav()}\n{body}\n</body>\n</html>\n")


def _nav() -> str:
    # inline styles (the only copy): the notebook pages carry nbconvert's stylesheet, not the site's
    link = 'style="margin-right: 1.5rem"'
    return ('<nav class="nnlens" style="font-family: system-ui, sans-serif; padding: .5rem 1rem; '
            'border-bottom: 1px solid #d0d7de; margin-bottom: 1rem">'
            f'<a {link} href="index.html">nnlens reports</a><a {link} href="claims.html">claims ledger</a></nav>')


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _title(nb) -> str:
    """The notebook's first Markdown heading (``# 04 · Optimizer variance``)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


def _claims_table(df) -> str:
    head = "<tr><th>claim</th><th>statement</th><th>measured</th><th>threshold</th><th>verdict</th></tr>"
    rows = []
    for r in df.itertuples(index=False):
        verdict = '<td class="holds">holds</td>' if r.holds else '<td class="fails">does not hold</td>'
        rows.append(f"<tr><td>{html.escape(r.id)}</td><td>{html.escape(r.statement)}</td>"
                    f"<td>{html.escape(r.value)}</td><td>{html.escape(r.threshold)}</td>{verdict}</tr>")
    return f'<table class="claims">\n{head}\n' + "\n".join(rows) + "\n</table>"


def _counts(df) -> str:
    n_hold = int(df["holds"].sum())
    return (f'<p class="counts">{n_hold} of {len(df)} claims hold; '
            f"{len(df) - n_hold} do not.</p>")


def render_notebook(nb_path: Path, out: Path, nb=None) -> Path:
    """One executed notebook (``nb``, read from ``nb_path`` when not given) as a self-contained HTML
    page, with the site's navigation bar."""
    from nbconvert import HTMLExporter

    nb = nb if nb is not None else nbformat.read(nb_path, as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": _title(nb) or nb_path.stem}})
    # the site's navigation right after <body ...>; the rest is nbconvert's page as it is
    body = re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + "\n" + _nav(), body, count=1)
    return _io.write_text(out / f"{nb_path.stem}.html", body)


def build(reports_root: Path | None = None, out: Path | None = None) -> Path:
    """Render the site from ``reports_root`` (default ``reports/``) into ``out`` (default ``<reports_root>/site``)."""
    root = Path(reports_root) if reports_root is not None else paths.REPORTS
    out = Path(out) if out is not None else root / "site"
    out.mkdir(parents=True, exist_ok=True)
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"error: no executed notebooks in {root / 'notebooks'}; run `make reproduce` first")
    claims = load_claims(root / "claims")
    figures = root / "figures"

    sections, summary = [], []
    for nb_path in notebooks:
        study = nb_path.stem[:2]
        nb = nbformat.read(nb_path, as_version=4)
        render_notebook(nb_path, out, nb)
        title = _title(nb) or nb_path.stem
        rows = claims[claims["id"].str.startswith(study + ".")] if len(claims) else claims
        part = [f'<h2 id="study-{study}"><a href="{nb_path.stem}.html">{html.escape(title)}</a></h2>']
        n_hold = int(rows["holds"].sum()) if len(rows) else 0
        summary.append(f'<tr><td><a href="#study-{study}">{html.escape(title)}</a></td><td>{n_hold}</td>'
                       f'<td>{len(rows) - n_hold}</td><td><a href="{nb_path.stem}.html">notebook</a></td></tr>')
        if len(rows):
            part += [_counts(rows), _claims_table(rows)]
        else:
            part.append("<p>No claims recorded for this study.</p>")
        key = figures / f"{KEY_FIGURES.get(study, '')}.png"
        if not key.is_file():
            found = sorted(figures.glob(f"{study}_*.png"))
            key = found[0] if found else None
        if key is not None:
            part.append(f'<figure><img class="key" src="{_png_uri(key)}" alt="{html.escape(key.stem)}">'
                        f"<figcaption>{html.escape(key.stem)} (all figures: "
                        f'<a href="{nb_path.stem}.html">the executed notebook</a>)</figcaption></figure>')
        sections.append("\n".join(part))

    profiles = ", ".join(sorted(set(claims["profile"]))) if len(claims) else "-"
    intro = ("<h1>nnlens reports</h1>\n"
             "<p>Five papers' claims re-tested at small scale. Each study below lists every claim "
             "it checks, what was measured, the threshold fixed before the run, and the verdict; "
             "a claim that does not hold at this scale is reported as not holding. "
             f'The whole ledger: <a href="claims.html">claims</a>. Profile: {html.escape(profiles)}.</p>\n'
             + (_counts(claims) if len(claims) else "")
             + '<table class="claims">\n<tr><th>study</th><th>claims that hold</th><th>do not hold</th>'
               "<th>executed notebook</th></tr>\n" + "\n".join(summary) + "\n</table>")
    _io.write_text(out / "index.html", _page("nnlens reports", intro + "\n" + "\n".join(sections)))

    ledger = ["<h1>Claims ledger</h1>", _counts(claims) if len(claims) else "<p>No claims recorded.</p>"]
    stems = {p.stem[:2]: p.stem for p in notebooks}
    for study in sorted(set(claims["id"].str.split(".").str[0])) if len(claims) else []:
        rows = claims[claims["id"].str.startswith(study + ".")]
        heading = (f'<a href="{stems[study]}.html">Study {study}</a>' if study in stems else f"Study {study}")
        ledger += [f'<h2 id="study-{study}">{heading}</h2>', _claims_table(rows)]
    _io.write_text(out / "claims.html", _page("nnlens claims ledger", "\n".join(ledger)))
    return out / "index.html"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnlens.workbook.site", description=__doc__.split("\n\n")[0])
    ap.add_argument("--reports", type=Path, default=None, help="the reports folder to render (default: reports/)")
    ap.add_argument("--out", type=Path, default=None, help="where the site goes (default: <reports>/site)")
    args = ap.parse_args(argv)
    try:
        index = build(args.reports, args.out)
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    print(f"site: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
