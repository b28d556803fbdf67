"""A generic check of a matplotlib figure for the defects reviews keep finding (issue 25).

``problems(fig, seeds=None)`` draws the figure and returns one sentence per defect:

- **a legend over data**: a legend box (an axes' or the figure's) that covers a data point, a bar or
  an error bar of an axes it overlaps (reference lines drawn in axes coordinates, like ``axhline``,
  do not count);
- **an unlabelled axis**: an axes with data whose x or y axis has no label, neither its own nor a
  label on an axes it shares that axis with (a categorical axis whose tick labels name the
  categories needs none);
- **one seed where several ran**: ``seeds`` (or ``declare(fig, seeds=n)`` in the study's plotting
  function) says how many seeds went into the figure; with more than one, some axes must show the
  spread (error bars, a band, per-seed lines or box/violin marks).

``assert_clean(fig, seeds=None)`` raises ``AssertionError`` listing them: a study's figure test is
``figcheck.assert_clean(figures.plot_x(table), seeds=len(cfg.seeds))``.
"""
from __future__ import annotations

import numpy as np
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

SEEDS_ATTR = "_nnlens_seeds"


def declare(fig, seeds: int) -> None:
    """Record on ``fig`` how many seeds its data come from (what ``problems`` checks the spread against)."""
    setattr(fig, SEEDS_ATTR, int(seeds))


def _data_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.axison and not hasattr(ax, "_colorbar")
            and (ax.lines or ax.patches or ax.collections or ax.images)]


def _points(ax) -> np.ndarray:
    """Display coordinates of the data marks of ``ax``: points along lines, scatter and error-bar points."""
    pts = []
    for line in ax.lines:
        if line.get_visible() and line.get_transform() == ax.transData and len(line.get_xydata()):
            v = ax.transData.transform(line.get_xydata())
            # the segments, not only the vertices
            if line.get_linestyle() not in ("None", "", " ") and 1 < len(v) < 2000:
                t = np.linspace(0, 1, 12)[:-1, None, None]
                v = np.concatenate([(v[:-1] + t * (v[1:] - v[:-1])).reshape(-1, 2), v[-1:]])
            pts.append(v[np.isfinite(v).all(axis=1)])
    for c in ax.collections:
        if not c.get_visible():
            continue
        offsets = c.get_offsets()
        if len(offsets) and not isinstance(c, PolyCollection):
            pts.append(c.get_offset_transform().transform(offsets))
        if isinstance(c, LineCollection):
            for path in c.get_paths():
                v = c.get_transform().transform(path.vertices)
                if len(v) == 2:                         # an error bar: sample along it
                    v = v[0] + np.linspace(0, 1, 9)[:, None] * (v[1] - v[0])
                pts.append(v)
    pts = [p for p in pts if p.ndim == 2 and p.shape[1] == 2]
    return np.concatenate(pts) if pts else np.empty((0, 2))


def _bars(ax) -> list:
    """Display boxes of the bars of ``ax``."""
    return [p.get_window_extent() for p in ax.patches
            if isinstance(p, Rectangle) and p.get_visible() and p.get_height() and p.get_width()]


def _legend_over_data(fig) -> list[str]:
    out = []
    legends = ([(ax.get_legend(), ax) for ax in fig.axes if ax.get_legend() is not None]
               + [(lg, None) for lg in fig.legends])
    for legend, owner in legends:
        if not legend.get_visible():
            continue
        box = legend.get_window_extent()
        for ax in _data_axes(fig):
            if not box.overlaps(ax.get_window_extent()):
                continue
            pts = _points(ax)
            inside = ((pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1))
            n = int(inside.sum()) + sum(box.overlaps(b) for b in _bars(ax))
            if n:
                where = "the figure's legend" if owner is None else f"the legend of '{owner.get_title() or 'an axes'}'"
                out.append(f"{where} covers {n} data marks of the axes "
                           f"'{ax.get_title() or ax.get_ylabel() or '?'}'")
    return out


def _categorical(axis) -> bool:
    labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
    return bool(labels) and not all(_numeric(s) for s in labels)


def _numeric(s: str) -> bool:
    try:
        float(s.replace("−", "-").replace("$", "").replace("\\mathdefault{", "").replace("}", "")
              .replace("^", "e").replace("{", ""))
        return True
    except ValueError:
        return False


def _unlabelled(fig) -> list[str]:
    out = []
    for ax in _data_axes(fig):
        for name, axis, shared in (("x", ax.xaxis, ax.get_shared_x_axes()), ("y", ax.yaxis, ax.get_shared_y_axes())):
            siblings = shared.get_siblings(ax)
            if any(s.get_xlabel() if name == "x" else s.get_ylabel() for s in siblings):
                continue
            if _categorical(axis) or not any(t.get_visible() for t in axis.get_ticklabels()):
                continue
            out.append(f"the {name} axis of '{ax.get_title() or '?'}' has no label")
    return out


def _shows_spread(fig, seeds: int) -> bool:
    for ax in _data_axes(fig):
        if any(isinstance(c, ErrorbarContainer) for c in ax.containers):
            return True
        if any(isinstance(c, (PolyCollection, LineCollection)) for c in ax.collections):
            return True       # a band (fill_between, violin) or error bars / vlines
        faint = [ln for ln in ax.lines if isinstance(ln, Line2D) and (ln.get_alpha() or 1) < 1]
        if len(faint) >= seeds:
            return True       # one faint line per seed
    return False


def problems(fig, seeds: int | None = None) -> list[str]:
    """One sentence per defect of ``fig`` (see the module docstring); empty when none is found."""
    fig.canvas.draw()
    seeds = seeds if seeds is not None else getattr(fig, SEEDS_ATTR, None)
    out = _legend_over_data(fig) + _unlabelled(fig)
    if seeds is not None and seeds > 1 and not _shows_spread(fig, seeds):
        out.append(f"{seeds} seeds ran, but no axes shows their spread (error bars, a band or per-seed lines)")
    return out


def assert_clean(fig, seeds: int | None = None) -> None:
    """Raise ``AssertionError`` naming every defect ``problems`` finds."""
    found = problems(fig, seeds)
    assert not found, "figure defects:\n  " + "\n  ".join(found)
