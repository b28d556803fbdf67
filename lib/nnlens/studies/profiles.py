"""The studies and their named scales: ``smoke``, ``default`` and ``paper``.

A study is a package ``studies/sNN_name/`` whose ``config.py`` holds one frozen dataclass
``StudyNN`` (the default profile, every field documented where it is declared) and
``PROFILES``, the other profiles as overrides of it; its notebook is ``notebooks/NN_*.ipynb``.
``studies()`` discovers the packages, so adding a study is one package and one notebook.

- ``load(study, profile, **overrides)``: the study's frozen config, after checking every
  name and type; anything unknown fails with a message that lists what is valid.
- ``start(profile, outputs)``: the first code cell of every notebook. It is the one place
  the environment is read: ``NNLENS_PROFILE`` and ``NNLENS_REPORTS`` (set by ``make test``,
  because nbval cannot inject parameters the way papermill does). It returns the profile
  and the ``report.Outputs`` the notebook passes down: the runner's staging folder, the
  tests' scratch folder, or, for a notebook run by hand, ``.scratch/interactive/<profile>/``.
  It also reads ``NNLENS_OVERRIDES`` (JSON ``{"02": {"lds_seed": 1}}``), which only the stability
  reruns set (``workbook.stability``): the config fields a rerun varies; ``load`` applies them
  last, over the profile and the notebook's own arguments, and the config shows them.

- ``smoke``: tiny slices, for nbval in ``make test`` (each notebook well under a minute).
- ``default``: data that ships with the dependencies; the whole reproduce in minutes on 2 CPU cores.
- ``paper``: the papers' data and model sizes (CIFAR-10, full-width ResNet-18), for a GPU.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import pkgutil
import typing
from pathlib import Path

from .. import paths
from ..report import Outputs

PROFILES = ("smoke", "default", "paper")
OVERRIDES_ENV = "NNLENS_OVERRIDES"
_RUN_OVERRIDES: dict[str, dict] = {}     # set by start() from NNLENS_OVERRIDES (stability reruns only)


class ProfileError(ValueError):
    """An unknown profile or study, or a bad parameter value."""


@functools.lru_cache(maxsize=None)
def studies() -> dict[str, str]:
    """{"01": "s01_pca", ...}: every study package ``sNN_name`` under ``nnlens.studies``."""
    here = Path(__file__).parent
    found = {m.name[1:3]: m.name for m in pkgutil.iter_modules([str(here)])
             if m.ispkg and len(m.name) > 4 and m.name[0] == "s" and m.name[1:3].isdigit() and m.name[3] == "_"}
    return dict(sorted(found.items()))


def package(study: str):
    """The study's package (its facade ``__init__``), imported."""
    return importlib.import_module(f"{__package__}.{studies()[_known(study)]}")


def config_class(study: str) -> type:
    """The frozen dataclass ``StudyNN`` of ``studies/sNN_name/config.py``."""
    study = _known(study)
    mod = importlib.import_module(f"{__package__}.{studies()[study]}.config")
    return getattr(mod, f"Study{study}")


def overrides(study: str, profile: str) -> dict:
    """The fields ``profile`` changes in the study's defaults ({} for ``default``)."""
    study = _known(study)
    mod = importlib.import_module(f"{__package__}.{studies()[study]}.config")
    return dict(mod.PROFILES.get(profile, {}))


def notebook(study: str) -> Path:
    """``notebooks/NN_*.ipynb`` of the study."""
    study = _known(study)
    found = sorted(paths.NOTEBOOKS.glob(f"{study}_*.ipynb"))
    if len(found) != 1:
        raise ProfileError(f"study {study}: expected one notebook {paths.show(paths.NOTEBOOKS)}/{study}_*.ipynb, "
                           f"found {len(found)}")
    return found[0]


def _known(study) -> str:
    study = str(study).strip().zfill(2)
    if study not in studies():
        raise ProfileError(f"unknown study {study!r}; valid studies: {', '.join(studies())}")
    return study


def _is(value, kind: type) -> bool:
    """isinstance, except that a bool is not an int and an int is a fine float."""
    if isinstance(value, bool) and kind in (int, float):
        return False
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


def _check_type(study: str, name: str, value, expected, default=None) -> None:
    """``value`` must have the field's type; a tuple's items must have the type of the default's items."""
    origin = typing.get_origin(expected) or expected
    if isinstance(origin, type) and not _is(value, origin):
        raise ProfileError(
            f"study {study}: parameter {name!r} must be {getattr(expected, '__name__', expected)}, "
            f"got {type(value).__name__} {value!r}"
        )
    kinds = {type(d) for d in default} if isinstance(default, tuple) and default else set()
    if isinstance(value, tuple) and len(kinds) == 1 and (kind := kinds.pop()) is not tuple:
        wrong = [v for v in value if not _is(v, kind)]
        if wrong:
            raise ProfileError(
                f"study {study}: parameter {name!r} must be a tuple of {kind.__name__}, "
                f"got {type(wrong[0]).__name__} {wrong[0]!r} in {value!r}"
            )


def validate_profile(profile: str) -> str:
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ProfileError(f"unknown profile {profile!r}; valid profiles: {', '.join(PROFILES)}")
    return profile


def start(profile: str = "default", outputs: str = "") -> tuple[str, Outputs]:
    """The profile and outputs of a notebook run: the first code cell calls this after its parameters.

    ``outputs`` is the papermill parameter the runner sets (its staging folder). Under nbval
    (``make test``) ``NNLENS_PROFILE`` and ``NNLENS_REPORTS`` stand in for the parameters. A
    notebook run by hand writes to ``.scratch/interactive/<profile>/`` and says so: only
    ``make reproduce`` publishes into ``reports/``.
    """
    resolved = validate_profile(os.environ.get("NNLENS_PROFILE") or profile)
    _RUN_OVERRIDES.clear()
    _RUN_OVERRIDES.update(parse_overrides(os.environ.get(OVERRIDES_ENV, "")))
    root = outputs or os.environ.get("NNLENS_REPORTS", "")
    return resolved, (Outputs(root) if root else Outputs.interactive(resolved))


def parse_overrides(text: str) -> dict[str, dict]:
    """``{"02": {"lds_seed": 1}}`` from the JSON of ``NNLENS_OVERRIDES`` (lists become tuples); {} when empty."""
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
        return {str(k).zfill(2): {f: tuple(v) if isinstance(v, list) else v for f, v in dict(fs).items()}
                for k, fs in doc.items()}
    except (ValueError, TypeError, AttributeError) as e:
        raise ProfileError(f"{OVERRIDES_ENV} must be JSON like {{\"02\": {{\"lds_seed\": 1}}}}, "
                           f"got {text!r} ({e})") from e


def load(study: str, profile: str = "default", **overrides_):
    """The frozen config of ``study`` ("01", "02", ...) at ``profile``, with ``overrides_`` applied."""
    study = _known(study)
    validate_profile(profile)
    cls = config_class(study)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {**overrides(study, profile), **overrides_, **_RUN_OVERRIDES.get(study, {})}
    for name, value in values.items():
        if name not in fields:
            raise ProfileError(
                f"study {study}: unknown parameter {name!r}; valid parameters: {', '.join(fields)}"
            )
        _check_type(study, name, value, hints[name], fields[name].default)
    return cls(**values)
