"""Study 05 benchmark: NTK methods' time and peak memory against N, width and depth.

    .venv/bin/python benchmarks/ntk.py [--profile smoke|default|paper]

Writes reports/bench/ntk.csv (``NNLENS_REPORTS`` redirects it) and the figure
05_bench_scaling. What is measured and how: see ``nnlens.ntk.bench``. Baseline rows timed at
fewer inputs than their N and scaled by block pairs have ``extrapolated=True``; the
``extrap_check`` rows validate that scaling against a direct measurement, and the ``wall`` row
is the run's own wall-clock time. The default profile takes about 5 minutes on 2 quiet cores.
"""
import argparse
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from nnlens import _io, paths, plots, profiles  # noqa: E402
from nnlens.ntk import bench  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", choices=profiles.PROFILES)
    args = ap.parse_args(argv)
    cfg = profiles.load("05", args.profile)
    df = bench.run(cfg, log=lambda s: print(s, flush=True))
    out = paths.bench_dir() / "ntk.csv"
    _io.write_text(out, df.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    plots.use_style()
    plots.savefig(bench.plot(df), "05_bench_scaling", close=True)
    print(json.dumps(bench.summary(df), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
