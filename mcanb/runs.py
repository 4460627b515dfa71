"""The run store: every training run under ``outputs/runs/``, what it was made from, its status, which results use it.

Every training run of both model families lives in ``outputs/runs/<row key>/<identity>/seed<k>/``
(:mod:`mcanb.grid`; the row key is a CNN-family model, ``caml``, or ``<encoder>/<architecture>``). Each holds
``identity.json`` (:mod:`mcanb.identity`: data, [encoder,] model, train, seed, code). A notebook run folder lists the
training runs its results come from in ``training_runs.json``; a training run that no notebook result (a folder
with ``metrics.json`` or ``.mcanb-run.json``) lists is *unused*, and ``mcanb runs --prune`` removes it. Explained
in docs/runs.md and the README section "The whole study".
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import identity
from .paths import OUTPUTS, ROOT, RUNS

RESULT_FILES = ("metrics.json", ".mcanb-run.json")   # what makes a notebook run folder a result
BUSY_SECONDS = 600                                    # a run that wrote a file this recently may be training now


@dataclass
class TrainingRun:
    path: Path
    status: str                                   # "done" | "running" | "interrupted" | "started"
    identity: dict | None
    used_by: list[str] = field(default_factory=list)


def _status(d: Path) -> str:
    newest = max((f.stat().st_mtime for f in d.rglob("*") if f.is_file()), default=0.0)
    if (d / "metrics.json").exists() and (d / "predictions_test.parquet").exists():
        return "done"
    if time.time() - newest < BUSY_SECONDS:
        return "running"
    return "interrupted" if (d / "checkpoints" / "last.pt").exists() else "started"


def _training_dirs(store: Path) -> list[Path]:
    found = [d.parent for d in store.rglob(identity.IDENTITY_FILE)] if store.is_dir() else []
    return sorted(d for d in found if d.name.startswith("seed") and d.name[4:].isdigit())


def _uses(outputs: Path, store: Path) -> dict[str, list[str]]:
    """``{training run path: [notebook/run, ...]}`` from every result folder's ``training_runs.json``."""
    used: dict[str, list[str]] = {}
    for folder in sorted(p for p in outputs.glob("*/*") if p.is_dir() and p.parent != store):
        if not any((folder / f).exists() for f in RESULT_FILES):
            continue
        try:
            entries = json.loads((folder / identity.USES_FILE).read_text())
        except (OSError, ValueError):
            continue                         # a result that trains nothing (notebooks 01 and 05)
        for entry in entries:
            used.setdefault(entry, []).append(f"{folder.parent.name}/{folder.name}")
    return used


def find(outputs: Path | None = None) -> list[TrainingRun]:
    """Every training run in the store under ``outputs``, with its status, identity and the notebook runs that
    use it."""
    outputs = Path(outputs or OUTPUTS)
    store = outputs / RUNS.relative_to(OUTPUTS)
    used = _uses(outputs, store)
    return [TrainingRun(d, _status(d), identity.read(d), list(used.get(str(d.resolve()), [])))
            for d in _training_dirs(store)]


def used_run(path: Path) -> Path | None:
    """The training run that ``<notebook run folder>/<row key>/seed<k>`` names: the entry of that folder's
    ``training_runs.json`` in the store folder of that row and seed (``outputs/04_cnn_retraining/toy/caml/seed13``
    -> ``outputs/runs/caml/<identity>/seed13``); None when ``path`` is not of that form or nothing matches."""
    for folder in path.parents:
        try:
            entries = json.loads((folder / identity.USES_FILE).read_text())
        except (OSError, ValueError):
            continue
        want = path.relative_to(folder)
        for entry in map(Path, entries):
            if entry.name == want.name and entry.parent.parent.as_posix().endswith("/" + want.parent.as_posix()):
                return entry
        return None
    return None


def _shown(p: Path) -> str:
    return str(p.relative_to(ROOT)) if ROOT in p.parents else str(p)


def describe(run: TrainingRun) -> str:
    """Two lines: the folder, its status and users; then what it was made from (the identity parts)."""
    head = f"{_shown(run.path)}  {run.status}  " + (f"used by {', '.join(run.used_by)}" if run.used_by else "unused")
    if run.identity is None:
        return head + "\n    made from: unknown (no identity.json: written before runs had one)"
    p = run.identity.get("parts", {})
    bits = []
    if "data" in p:
        d = p["data"]
        bits.append(f"data {d.get('sha')} ({Path(str(d.get('data_dir', '?'))).name}/{d.get('label_space', '?')})")
    if "encoder" in p:
        e = p["encoder"]
        bits.append(f"encoder {e.get('sha')} ({e.get('name')}, {e.get('init')})")
    if "model" in p:
        bits.append(f"model {p['model'].get('sha')} ({(p['model'].get('values') or {}).get('model', '?')})")
    if "train" in p:
        bits.append(f"train {p['train'].get('sha')}")
    if "seed" in p:
        bits.append(f"seed {p['seed'].get('value')}")
    if "code" in p:
        bits.append(f"code {p['code'].get('sha')}")
    return head + f"\n    identity {run.identity.get('identity')}: " + " · ".join(bits)


def prune(runs: list[TrainingRun], dry_run: bool = False) -> list[TrainingRun]:
    """Remove the unused runs that are not running now (and folders left empty); returns what was (or would be)
    removed."""
    gone = [r for r in runs if not r.used_by and r.status != "running"]
    if not dry_run:
        for r in gone:
            shutil.rmtree(r.path)
            parent = r.path.parent
            while parent.name != RUNS.name and parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
    return gone


def main(prune_unused: bool = False, dry_run: bool = False, outputs: Path | None = None, echo=print) -> None:
    """``mcanb runs [--prune] [--dry-run]``: list the run store; remove what no result uses."""
    runs = find(outputs)
    for r in runs:
        echo(describe(r))
    n_unused = sum(not r.used_by for r in runs)
    store = Path(outputs or OUTPUTS) / RUNS.relative_to(OUTPUTS)
    echo(f"{len(runs)} training runs in the run store {_shown(store)}, {n_unused} unused")
    if prune_unused or dry_run:
        gone = prune(runs, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for r in gone:
            echo(f"{verb} {_shown(r.path)}")
        echo(f"{verb} {len(gone)} unused runs" + ("" if len(gone) == n_unused else
                                                  f" ({n_unused - len(gone)} running now: kept)"))
