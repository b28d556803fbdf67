"""The generic figure check (``nnlens.report.figcheck``): it catches the recurring defects, and study 05's figures pass.

Study owners: ``figcheck.assert_clean(fig, seeds=len(cfg.seeds))`` on each figure a study draws.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from nnlens import paths  # noqa: E402
from nnlens.report import figcheck, use_style  # noqa: E402


@pytest.fixture(autouse=True)
def _style():
    use_style()
    yield
    plt.close("all")


def _clean():
    fig, ax = plt.subplots()
    for seed in range(3):
        ax.plot(range(10), [i + seed for i in range(10)], alpha=0.4, color="C0")
    ax.plot(range(10), [i + 1 for i in range(10)], color="C0", label="mean of 3 seeds")
    ax.set(xlabel="epoch", ylabel="loss", title="training")
    ax.legend(loc="upper left")
    return fig, ax


def test_a_clean_figure_passes():
    fig, _ = _clean()
    assert figcheck.problems(fig, seeds=3) == []


def test_a_legend_over_the_data_is_caught():
    fig, ax = _clean()
    ax.legend(loc="center")
    assert any("legend" in p and "covers" in p for p in figcheck.problems(fig))
    fig, ax = plt.subplots()
    ax.bar(["a", "b", "c"], [3, 3, 3], label="bars")
    ax.set(ylabel="count")
    ax.legend(loc="lower center")                       # on the bars
    assert any("covers" in p for p in figcheck.problems(fig))


def test_an_unlabelled_axis_is_caught_but_shared_and_categorical_axes_are_not():
    fig, ax = _clean()
    ax.set_ylabel("")
    assert figcheck.problems(fig) == ["the y axis of 'training' has no label"]
    fig, axes = plt.subplots(1, 2, sharey=True)
    for a in axes:
        a.plot([0, 1], [0, 1])
        a.set_xlabel("x")
    axes[0].set_ylabel("y")                             # shared: one label serves both
    assert figcheck.problems(fig) == []
    fig, ax = plt.subplots()
    ax.bar(["trNTK", "pNTK"], [0.5, 0.4])
    ax.set_ylabel("τ")
    assert figcheck.problems(fig) == []                 # the tick labels name the categories


def test_one_seed_where_several_ran_is_caught():
    fig, ax = plt.subplots()
    ax.plot(range(5), range(5))
    ax.set(xlabel="x", ylabel="y")
    assert figcheck.problems(fig, seeds=1) == []
    assert figcheck.problems(fig, seeds=3) == [
        "3 seeds ran, but no axes shows their spread (error bars, a band or per-seed lines)"]
    figcheck.declare(fig, seeds=3)
    assert len(figcheck.problems(fig)) == 1
    ax.errorbar(range(5), range(5), yerr=0.2)
    assert figcheck.problems(fig) == []
    with pytest.raises(AssertionError, match="figure defects"):
        figcheck.assert_clean(_bare())


def _bare():
    fig, ax = plt.subplots()
    ax.plot(range(5), range(5))
    return fig


BENCH = paths.REPORTS / "bench" / "ntk.csv"


@pytest.mark.skipif(not BENCH.is_file(), reason="needs the published study-05 benchmark table (make bench)")
def test_study05_figures_pass_the_check():
    from nnlens.studies.s05_ntk import figures

    df = pd.read_csv(BENCH)
    for plot in (figures.plot_scaling, figures.plot_projection):
        figcheck.assert_clean(plot(df))                 # seeds as each figure declares them
