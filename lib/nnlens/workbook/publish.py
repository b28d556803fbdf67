"""Moving a study's staged reports into place, safely (used by ``nnlens.workbook.runner``).

- ``scrub(notebook)``: drop papermill's timestamps and durations so reruns give identical bytes.
- ``publish(staging, final, study)``: every staged file into the reports folder, and the study's
  figures and tables that the run no longer writes out of it, all or nothing.
- ``stderr_to(log)``: the kernel's stderr into a log file instead of the terminal.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from .. import _io

VOLATILE_KEYS = ("start_time", "end_time", "duration", "exception")


def scrub(nb_path: Path) -> None:
    """Remove papermill's timestamps and durations and the kernel's execution metadata."""
    nb = json.loads(nb_path.read_text())
    pm = nb.get("metadata", {}).get("papermill", {})
    for k in VOLATILE_KEYS:
        pm.pop(k, None)
    pm.pop("input_path", None)
    pm.pop("output_path", None)
    for cell in nb.get("cells", []):
        md = cell.get("metadata", {})
        if "injected-parameters" in md.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill draws a random id for this cell
        md.pop("execution", None)
        for k in VOLATILE_KEYS:
            md.get("papermill", {}).pop(k, None)
    _io.write_text(nb_path, json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


STUDY_FOLDERS = ("figures", "tables")   # files named "<study>_*" here belong to one study's run


def stale_files(staging: Path, final: Path, study: str) -> list[Path]:
    """Published figures and tables of ``study`` that its new run did not write (left by older code)."""
    return sorted(p for sub in STUDY_FOLDERS for p in (final / sub).glob(f"{study}_*")
                  if p.is_file() and not (staging / sub / p.name).exists())


def publish(staging: Path, final: Path, study: str | None = None) -> list[Path]:
    """Move every file of ``staging`` into ``final``, all or nothing; ``claims.md`` last.

    With ``study`` ("03"), that study's published figures and tables that the new run did
    not write are removed too, so ``reports/`` never mixes results of old and new code.
    Each published file that existed (or is removed) is first hard-linked (or copied)
    into a backup folder; if any move fails, or Ctrl-C arrives, the moved files are put
    back (or removed when they are new) before the error goes on. Same file system: renames.
    """
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: (p.name == "claims.md", str(p)))
    stale = stale_files(staging, final, study) if study else []
    backup = staging.parent / f".backup-{staging.name}"
    shutil.rmtree(backup, ignore_errors=True)
    moved: list[tuple[Path, Path | None]] = []
    try:
        for dst in stale:
            kept = backup / dst.relative_to(final)
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dst, kept)
            moved.append((dst, kept))
        for src in files:
            rel = src.relative_to(staging)
            dst = final / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            kept = None
            if dst.exists():
                kept = backup / rel
                kept.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(dst, kept)
                except OSError:
                    shutil.copy2(dst, kept)
            os.replace(src, dst)
            moved.append((dst, kept))
    except BaseException:
        for dst, kept in reversed(moved):
            with contextlib.suppress(OSError):
                os.replace(kept, dst) if kept is not None else dst.unlink()
        raise
    finally:
        shutil.rmtree(backup, ignore_errors=True)
    return [dst for dst, _ in moved[len(stale):]]


@contextlib.contextmanager
def stderr_to(log: Path):
    """Send file descriptor 2 to ``log`` for the block: the kernel inherits it, so its warnings and
    its dying words on Ctrl-C land in the log instead of the terminal. Yields a text stream on the
    terminal's stderr (for the cell progress bar)."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stderr.flush()
        terminal.close()
        os.dup2(saved, 2)
        os.close(saved)
