"""Figures of study 05: time and memory of each NTK method against N, width and depth; projection error and cost."""
from __future__ import annotations

import pandas as pd

from ...report import figcheck
from .runs import projection_cost

# ------------------------------------------------------------------ figures
LABELS = {"structured": "structured (nnlens.ntk)", "autodiff": "autodiff (nnlens.ntk, torch.func)",
          "jac_contract": "Jacobian contraction (PyTorch tutorial)",
          "jac_layer": "layer-wise Jacobian contraction (torchNTK route)"}


PANELS = [("n", "n", "inputs N", "MLP pNTK (width {w}, {dn} hidden layers)"),
          ("width", "width", "hidden width", "MLP pNTK (N = {n}, {dw} hidden layers)"),
          ("depth", "depth", "hidden layers", "MLP pNTK (N = {n}, width {w})"),
          ("cnn_n", "n", "inputs N", "small CNN trNTK (width {c})")]


def plot_scaling(df):
    """Time (top) and extra peak memory (bottom) of each method against N, width and depth; one legend.

    Filled markers and solid lines are measured at the x value; open markers and dashed lines are
    baseline times extrapolated by block pairs from fewer inputs; crosses are baseline memory
    measured at the fewer inputs they actually ran on (``n_run``)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = dict(zip(LABELS, [cycle[0], cycle[4], cycle[2], cycle[3]]))   # no two oranges
    fig, axes = plt.subplots(2, 4, figsize=(15, 7.5), sharex="col")
    fmt = dict(w=int(df.loc[df.section == "n", "width"].max()), n=int(df.loc[df.section == "width", "n"].max()),
               c=int(df.loc[df.section == "cnn_n", "width"].max()), dn=int(df.loc[df.section == "n", "depth"].max()),
               dw=int(df.loc[df.section == "width", "depth"].max()))   # the grids' own depth, read from the data
    memory = df["peak_mb_run"].notna().any()
    for col, (sec, x, xlabel, title) in enumerate(PANELS):
        d = df[df.section == sec]
        top, bottom = axes[0, col], axes[1, col]
        for m, g in d.groupby("method", sort=False):
            g = g.sort_values(x)
            meas, ext = g[~g.extrapolated.astype(bool)], g[g.extrapolated.astype(bool)]
            top.plot(meas[x], meas.seconds, "o-", color=colors[m])
            if len(ext):                                      # dashed from the last measured point on
                link = pd.concat([meas.tail(1), ext])
                top.plot(link[x], link.seconds, "--", color=colors[m])
                top.plot(ext[x], ext.seconds, "o", mfc="white", color=colors[m])
            if memory:
                bottom.plot(meas[x], meas.peak_mb, "o-", color=colors[m])
                if sec in ("width", "depth") and len(ext):
                    bottom.plot(ext[x], ext.peak_mb_run, "x:", color=colors[m])
        top.set(yscale="log", title=title.format(**fmt), ylabel="time (s, best of repeats)")
        bottom.set(xlabel=xlabel, ylabel="extra peak memory (MB)")
        xs = sorted(d[x].unique())
        bottom.set_xticks(xs, [str(int(v)) for v in xs])                  # the grid's own values
        if memory:
            bottom.set_ylim(0, None)                          # from 0: a flat line stays flat
        else:
            bottom.set_yticks([])
            bottom.text(0.5, 0.5, "memory not measured\n(in-process run at this profile)", ha="center",
                        va="center", transform=bottom.transAxes, color="0.4")
    handles = [Line2D([], [], color=colors[m], marker="o", label=lab) for m, lab in LABELS.items()
               if m in set(df.method)]
    handles += [Line2D([], [], color="0.3", marker="o", label="measured at this x"),
                Line2D([], [], color="0.3", marker="o", mfc="white", ls="--",
                       label="time extrapolated by block pairs from fewer inputs")]
    ext = df.extrapolated.astype(bool) & df.section.isin(["width", "depth"])
    if memory and ext.any():
        handles.append(Line2D([], [], color="0.3", marker="x", ls=":",
                              label=f"memory measured at N = {int(df.loc[ext, 'n_run'].max())} (baselines)"))
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, 0))
    head = df[(df.section == "headline") & (df.model == "mlp")].dropna(subset=["depth", "width", "n"])
    note = (f"; the headline rows (05.3-05.6) time the 784-{int(head.depth.max())}x{int(head.width.max())}-10 MLP at "
            f"N = {int(head.n.max())}" if len(head) else "")
    fig.suptitle("Scaling grids: one network seed (seed 0); each time is the best of the benchmark's repeats "
                 f"(their spread is not recorded){note}", fontsize="small")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    figcheck.declare(fig, seeds=1)
    return fig


def _mlp(df, section: str) -> str:
    """``MLP 784-3x512-10``: the network a section of the benchmark timed, read from its rows."""
    r = df[df.section == section].dropna(subset=["depth", "width"])
    return f"MLP 784-{int(r.depth.max())}x{int(r.width.max())}-10" if len(r) else "MLP"


def plot_projection(df):
    """Left: projection error against K (mean +- sd over seeds, K^-1/2 guide). Right: what a projected
    kernel costs against the exact one, its GEMMs alone and TRAK's CPU projector."""
    import matplotlib.pyplot as plt
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    p = df[df.section == "projection"]
    for kind, g in p.groupby("kind"):
        st = g.groupby("proj_dim")["rel_err"].agg(["mean", "std"]).reset_index()
        ax.errorbar(st.proj_dim, st["mean"], yerr=st["std"], marker="o", capsize=3,
                    label=f"proj-{'pNTK' if kind == 'pntk' else 'trNTK'} ({g.seed.nunique()} seeds, mean ± sd)")
        k0, e0 = st.proj_dim.iloc[0], st["mean"].iloc[0]
        ax.plot(st.proj_dim, e0 * (st.proj_dim / k0) ** -0.5, ":", color="0.5")
    ax.plot([], [], ":", color="0.5", label="slope K^-1/2")
    ax.set(xscale="log", yscale="log", xlabel="projection dimension K", ylabel="relative Frobenius error",
           title=f"projected vs exact kernel (MLP, N = {int(p.n.iloc[0])}, float64)")
    ks = sorted(p.proj_dim.unique())
    ax.set_xticks(ks, [str(int(k)) for k in ks])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.legend()
    cost = projection_cost(df).set_index("kind")
    parts = [("structured", "exact kernel"), ("proj_gemm", "projection GEMMs alone"),
             ("projected", "projected kernel (all)"), ("trak_basic", "TRAK BasicProjector (projection only)")]
    parts = [(m, lab) for m, lab in parts if m in cost]
    width = 0.8 / len(parts)
    for i, (m, lab) in enumerate(parts):
        xs = [j + (i - (len(parts) - 1) / 2) * width for j in range(len(cost))]
        bars = bx.bar(xs, cost[m], width, label=lab)
        bx.bar_label(bars, fmt="%.2g", fontsize="x-small")
        for x, v in zip(xs, cost[m]):
            if pd.isna(v):                   # a bar that is not there says why
                bx.text(x, 0.03, "not timed:\nTRAK is run on\nthe pNTK only" if m == "trak_basic"
                        else "not timed", rotation=90, ha="center", va="bottom", fontsize="x-small", color="0.35",
                        transform=bx.get_xaxis_transform())
    bx.set_xlim(-0.5, len(cost) - 0.5)          # room for the slots of bars that are not there
    bx.set_xticks(range(len(cost)), [f"{'pNTK' if k == 'pntk' else 'trNTK'}" for k in cost.index])
    bx.set(yscale="log", ylabel="time (s, one thread)",
           title=f"cost at K = {int(cost.proj_dim.iloc[0])}, N = {int(cost.n.iloc[0])} ({_mlp(df, 'proj_cost')})")
    bx.legend(fontsize="x-small", ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    fig.tight_layout()
    figcheck.declare(fig, seeds=int(p.seed.nunique()))
    return fig
