"""The report site: the published reports as a small static publication, readable offline.

``python -m nnlens.workbook.site`` (``make site``; ``make reproduce`` builds it at the end) reads the
published reports (``notebooks/*.ipynb`` executed by the runner, ``claims/*.csv``, ``figures/``,
``tables/``, ``manifests/``, ``timings.json``) and writes ``<reports>/site/``:

- ``index.html``: a paper-style summary: rows per kind and verdict, per study two or three
  sentences of findings generated from its ledger rows and its key figure with a caption, the
  "paper vs here" table of ``paper number`` rows, and a glossary;
- ``claims.html``: the whole ledger, one section per study ("Study 01 · PCA surrogates ..."), the
  thresholds as their ``Threshold`` objects render them, each with its reason, and the glossary;
- ``<notebook>.html``: each executed notebook through nbconvert (the ``nnlens_site`` template, which
  extends JupyterLab's): code and papermill's injected parameters hidden, a table of contents,
  previous/next links, every figure with alt text and a caption from the Markdown cell that follows
  it, linked to its full-size PNG and its PDF, each table's CSV linked, arXiv ids as links.

Every page carries the provenance (commit, run date, profile, threads, machine, environment lock) and
a visible warning when studies come from different commits or the checkout is at another commit.
Nothing is loaded from the network: no script at all, maths written as Unicode (a ``$…$`` in a
Markdown cell is rendered at build time by ``_math``). Same reports and checkout, same bytes.
"""
from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

import nbformat

from .. import _io, paths
from ..report.ledger import load_claims
from ..studies import profiles
from .sitetext import (
    claims_table,
    counts_table,
    esc,
    findings,
    glossary_html,
    paper_numbers,
    provenance,
    provenance_html,
)

# The figure shown for each study on the front page: the one that answers the study's question at a
# glance. A study missing here (or whose figure is missing) shows its first figure in name order.
KEY_FIGURES = {"01": "01_accuracy_vs_k", "02": "02_tau_tad", "03": "03_twolayer_esd", "04": "04_interaction",
               "05": "05_bench_scaling"}
TEMPLATES = Path(__file__).parent / "templates"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; line-height: 1.5; }
body.site, main { max-width: 68rem; margin: 0 auto; padding: 0 1rem; }
nav.nnlens { font-family: system-ui, sans-serif; padding: .5rem 1rem; border-bottom: 1px solid #d0d7de;
             margin: 0 auto 1rem; max-width: 68rem; display: flex; flex-wrap: wrap; gap: .3rem 1.2rem; }
nav.nnlens a.here { font-weight: 700; color: #1f2328; text-decoration: none; }
aside.provenance, nav.toc { max-width: 68rem; margin: 0 auto 1rem; padding: 0 1rem; font-size: .85rem; }
aside.provenance p.warning { background: #fff8c5; border: 1px solid #d4a72c; padding: .4rem .6rem; margin: .3rem 0; }
table.claims, table.counts, table.prov { border-collapse: collapse; margin: .5rem 0 1.2rem; font-size: .88rem; }
table.claims { width: 100%; }
table.claims th, table.claims td, table.counts th, table.counts td, table.prov th, table.prov td {
    border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: left; vertical-align: top; }
table.claims th, table.counts th, table.prov th { background: #f6f8fa; }
td.v.holds { color: #1a7f37; } td.v.does-not-hold { color: #cf222e; font-weight: 600; }
td.v.inconclusive, td.v.untestable { color: #9a6700; font-weight: 600; }
figure.nnlens-figure, figure.key { margin: 1rem 0; }
figure.nnlens-figure img, figure.key img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { font-size: .88rem; color: #424a53; margin-top: .3rem; }
p.findings { font-size: 1rem; } dl.glossary dt { font-weight: 700; margin-top: .4rem; }
dl.glossary dd { margin-left: 1.5rem; }
nav.pager { display: flex; justify-content: space-between; margin: 1rem auto; max-width: 68rem; padding: 0 1rem; }
nav.nnlens a, nav.pager a, nav.toc a, aside a, figcaption a, main a { color: #0969da; }
figure.nnlens-figure figcaption p { margin: .2rem 0; }
"""


# ------------------------------------------------------------------ reading the notebooks
def _title(nb) -> str:
    """The notebook's first Markdown heading (``# 04 · Optimizer variance``)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return ""


_SAVED = re.compile(r"savefig\(\s*\w+\s*,\s*[\"']([\w.-]+)[\"']")
_TABLE = re.compile(r"save_table\([^\n]*?,\s*[\"']([\w.-]+)[\"']")
_MATH = {r"\tau": "τ", r"\lambda": "λ", r"\sigma": "σ", r"\mu": "μ", r"\alpha": "α", r"\beta": "β",
         r"\eta": "η", r"\approx": "≈", r"\le": "≤", r"\ge": "≥", r"\times": "×", r"\sqrt": "√", r"\cdot": "·",
         r"\infty": "∞", r"\pm": "±", "^2": "²", "^{-1/2}": "^−½", r"\ell": "ℓ"}


def _math(text: str) -> str:
    """``$\\tau \\ge 0.5$`` as ``<i>τ ≥ 0.5</i>``: maths rendered at build time, no MathJax."""
    def one(m):
        s = m.group(1)
        for k, v in _MATH.items():
            s = s.replace(k, v)
        return "<i>" + re.sub(r"[{}\\]", "", s) + "</i>"
    return re.sub(r"(?<![\\$\w])\$([^$\n]+?)\$(?!\w)", one, text)


def _first_sentences(text: str, n: int = 2, limit: int = 320) -> str:
    text = re.sub(r"\s+", " ", re.sub(r"[*`#]", "", text)).strip()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    out = " ".join(re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text)[:n])
    return out if len(out) <= limit else out[:limit - 1].rsplit(" ", 1)[0] + "…"


def _caption_source(nb, i: int) -> str:
    """The figure's own description: the Markdown cell right after cell ``i``."""
    nxt = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
    return nxt.source if nxt is not None and nxt.cell_type == "markdown" else ""


def _markdown(src: str) -> str:
    """A Markdown cell's text as the site shows it: no tracker references, arXiv ids linked, maths rendered."""
    # our tracker, not the reader's
    src = re.sub(r"\s*\(issues? \d+(, \d+)*\)|[,;] issues? \d+(, \d+)*(?=\))", "", src)
    src = re.sub(r"(?<!\[)arXiv[:\s](\d{4}\.\d{4,5})", r"[arXiv \1](https://arxiv.org/abs/\1)", src)
    return _math(src)


def _figure_meta(n: int, name: str, stem: str, description: str) -> dict:
    """Id, alt text and caption of figure ``n``: the caption is the figure's own description (the Markdown
    cell after it), the alt text its first sentences; the caption links the full-size PNG and the PDF."""
    from nbconvert.filters.markdown import markdown2html_mistune

    text = _first_sentences(description) or name or f"figure {n}"
    links = f' <a href="../figures/{name}.png">PNG</a> · <a href="../figures/{name}.pdf">PDF</a>' if name else ""
    body = markdown2html_mistune(_markdown(description)) if description else f"<p>{html.escape(text)}</p>"
    label = f"<b>Figure {n}</b>" + (f" ({html.escape(name)})" if name else "") + f".{links}"
    return {"id": f"fig-{n}", "png": f"../figures/{name}.png" if name else "",
            "alt": f"Figure {n} ({name or stem}): {text}", "caption": f"<p>{label}</p>{body}"}


def prepare(nb, stem: str) -> tuple[object, list[tuple[str, str]]]:
    """The notebook as the site shows it, and its table of contents [(anchor, label)].

    Drops the parameters cells (papermill's injected one too); links arXiv ids; renders ``$…$``;
    gives each figure output an id, alt text and a caption (the Markdown cell after it, which then
    moves into the caption), links to its PNG and PDF, and adds a link to each saved table's CSV."""
    cells, toc, n_fig, consumed = [], [], 0, set()
    for i, cell in enumerate(nb.cells):
        if i in consumed or set(cell.metadata.get("tags", [])) & {"parameters", "injected-parameters"}:
            continue
        if cell.cell_type == "markdown":
            src = _markdown(cell.source)
            for h in re.findall(r"^#{2,3} (.+)$", src, flags=re.M):
                toc.append((f"sec-{len(toc) + 1}", h))
                src = src.replace(f"## {h}", f'<a id="{toc[-1][0]}"></a>\n\n## {h}', 1)
            cell.source = src
        elif cell.cell_type == "code":
            names = _SAVED.findall(cell.source)
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}):
                    n_fig += 1
                    name = names.pop(0) if names else ""
                    description = _caption_source(nb, i)
                    consumed.add(i + 1) if description else None
                    out.setdefault("metadata", {})["nnlens"] = _figure_meta(n_fig, name, stem, description)
                    short = _first_sentences(description, 1, 80)
                    toc.append((f"fig-{n_fig}", f"Figure {n_fig}: {short or name or stem}"))
            cells.append(cell)
            tables = _TABLE.findall(cell.source)
            if tables:
                csvs = ", ".join(f"[{t}.csv](../tables/{t}.csv)" for t in tables)
                data = nbformat.v4.new_markdown_cell("Data: " + csvs)
                data["id"] = f"data-{i}"                   # not a random id: the page stays byte-stable
                cells.append(data)
            continue
        cells.append(cell)
    nb.cells = cells
    return nb, toc


# ------------------------------------------------------------------ the page furniture
def _nav(pages: list[tuple[str, str]], here: str) -> str:
    links = [("index.html", "Summary"), ("claims.html", "Claims ledger")] + [(f"{s}.html", t) for s, t in pages]
    return '<nav class="nnlens">' + "".join(
        f'<a href="{h}"' + (' class="here"' if h == here else "") + f">{html.escape(t)}</a>"
        for h, t in links) + "</nav>"


def _pager(pages: list[tuple[str, str]], i: int) -> str:
    prev = f'<a href="{pages[i - 1][0]}.html">← {html.escape(pages[i - 1][1])}</a>' if i > 0 else "<span></span>"
    nxt = (f'<a href="{pages[i + 1][0]}.html">{html.escape(pages[i + 1][1])} →</a>' if i + 1 < len(pages)
           else '<a href="claims.html">Claims ledger →</a>')
    return f'<nav class="pager">{prev}{nxt}</nav>'


def _page(title: str, body: str, nav: str, prov: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body class=\"site\">\n"
            f"{nav}\n{prov}\n<main>\n{body}\n</main>\n</body>\n</html>\n")


def render_notebook(nb, stem: str, out: Path, pages: list[tuple[str, str]], prov: dict) -> Path:
    """One executed notebook as a page: the ``nnlens_site`` template, the site's header and footer."""
    from nbconvert import HTMLExporter

    i = [s for s, _ in pages].index(stem)
    nb, toc = prepare(nb, stem)
    contents = "".join(f'<li><a href="#{a}">{esc(label)}</a></li>' for a, label in toc)
    header = (_nav(pages, f"{stem}.html") + provenance_html(prov, stem[:2]) + _pager(pages, i)
              + f'<nav class="toc"><details open><summary>Contents</summary><ul>{contents}'
              f'<li><a href="claims.html#study-{stem[:2]}">this study\'s rows in the claims ledger</a></li>'
              f"</ul></details><p>Code is hidden here; it is in <a href=\"../notebooks/{stem}.ipynb\">the executed "
              "notebook</a>.</p></nav>")
    exporter = HTMLExporter(template_name="nnlens_site", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={
        "metadata": {"name": _title(nb) or stem},
        "nnlens": {"css": CSS, "header": header, "footer": _pager(pages, i)}})
    return _io.write_text(out / f"{stem}.html", body)


# ------------------------------------------------------------------ the pages
def _key_figure(nb, study: str, figures: Path, stem: str) -> str:
    key = figures / f"{KEY_FIGURES.get(study, '')}.png"
    if not key.is_file():
        found = sorted(figures.glob(f"{study}_*.png"))
        if not found:
            return ""
        key = found[0]
    text = ""
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and key.stem in _SAVED.findall(cell.source):
            text = _first_sentences(_caption_source(nb, i))
    alt = html.escape(f"{key.stem}: {text}" if text else key.stem)
    return (f'<figure class="key"><a href="../figures/{key.name}"><img src="../figures/{key.name}" alt="{alt}"></a>'
            f"<figcaption><b>{html.escape(key.stem)}</b>. {esc(text)} <a href=\"../figures/{key.stem}.pdf\">PDF</a>"
            f' · <a href="{stem}.html">all figures of this study</a></figcaption></figure>')


def _front(claims, studies: list[tuple[str, str, object]], figures: Path, profile: str) -> str:
    parts = ["<h1>nnlens: five papers' claims re-tested at small scale</h1>",
             "<p>Each study re-runs a paper's experiments at a size a laptop affords, checks each claim against a "
             "threshold fixed before the run (calibrated on the noise at that size), and reports the verdict as "
             "measured: <em>holds</em>, <em>does not hold</em>, <em>inconclusive</em> (the design cannot detect the "
             "effect) or <em>untestable</em> (a precondition is unmet). Rows are counted by kind, never mixed: a "
             f"paper's claim is not an engineering target. Profile: {html.escape(profile)}.</p>",
             '<h2 id="counts">What the ledger found</h2>', counts_table(claims),
             f"<p>{esc(load_summary(claims))} Every row: <a href=\"claims.html\">the claims ledger</a>.</p>"]
    for stem, title, nb in studies:
        s = stem[:2]
        rows = claims[claims["id"].str.startswith(s + ".")] if len(claims) else claims
        parts += [f'<h2 id="study-{s}"><a href="{stem}.html">Study {html.escape(title)}</a></h2>',
                  f'<p class="findings">{findings(rows)}</p>', _key_figure(nb, s, figures, stem)]
    parts += ['<h2 id="paper-vs-here">Paper vs here</h2>', paper_numbers(claims), glossary_html()]
    return "\n".join(parts)


def load_summary(claims) -> str:
    from ..report.ledger import summary_line

    return summary_line(claims) if len(claims) else ""


def _claims_page(claims, studies: list[tuple[str, str, object]]) -> str:
    titles = {stem[:2]: (stem, title) for stem, title, _ in studies}
    parts = ["<h1>Claims ledger</h1>",
             "<p>Every row a study checks: its kind, what was measured, the threshold it was compared with (open "
             "<em>why this threshold</em> for the noise it was calibrated on) and the verdict. Terms: "
             '<a href="#glossary">glossary</a>.</p>', counts_table(claims)]
    for s in sorted(set(claims["id"].str.split(".").str[0])) if len(claims) else []:
        rows = claims[claims["id"].str.startswith(s + ".")]
        stem, title = titles.get(s, ("", s))
        name = f"Study {html.escape(title)}"
        parts += [f'<h2 id="study-{s}">' + (f'<a href="{stem}.html">{name}</a>' if stem else name) + "</h2>",
                  counts_table(rows), claims_table(rows)]
    parts.append(glossary_html())
    return "\n".join(parts)


def build(reports_root: Path | None = None, out: Path | None = None) -> Path:
    """Render the site from ``reports_root`` (default ``reports/``) into ``out`` (default ``<reports_root>/site``)."""
    root = Path(reports_root) if reports_root is not None else paths.REPORTS
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    if not notebooks:
        raise SystemExit(f"error: no executed notebooks in {paths.show(root / 'notebooks')}/: "
                         "`make reproduce` runs them and builds the site")
    out = Path(out) if out is not None else root / "site"
    out.mkdir(parents=True, exist_ok=True)
    claims, prov = load_claims(root / "claims"), provenance(root)
    studies = []
    for p in notebooks:
        nb = nbformat.read(p, as_version=4)
        studies.append((p.stem, _title(nb) or p.stem, nb))
    pages = [(stem, title) for stem, title, _ in studies]
    profile = ", ".join(sorted(set(claims["profile"]))) if len(claims) else "-"
    everyone = provenance_html(prov)
    _io.write_text(out / "index.html", _page("nnlens reports", _front(claims, studies, root / "figures", profile),
                                             _nav(pages, "index.html"), everyone))
    _io.write_text(out / "claims.html", _page("nnlens claims ledger", _claims_page(claims, studies),
                                              _nav(pages, "claims.html"), everyone))
    for stem, _, nb in studies:
        render_notebook(nbformat.from_dict(nb), stem, out, pages, prov)
    return out / "index.html"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nnlens.workbook.site", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default", help="whose published reports (default: default, reports/)")
    ap.add_argument("--reports", type=Path, default=None, help="the reports folder to render (default: the profile's)")
    ap.add_argument("--out", type=Path, default=None, help="where the site goes (default: <reports>/site)")
    args = ap.parse_args(argv)
    try:
        profiles.validate_profile(args.profile)
        index = build(args.reports or paths.published_dir(args.profile), args.out)
    except profiles.ProfileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:
        print(e, file=sys.stderr)
        return 1
    print(f"site: {paths.show(index)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
