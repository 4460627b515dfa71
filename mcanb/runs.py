"""The run store: every training run under ``outputs/runs/``, what it was made from, its status, which results use it.

Every training run of both model families lives in ``outputs/runs/<row key>/<identity>/seed<k>/``
(:mod:`mcanb.grid`; the row key is a CNN-family model, ``caml``, or ``<encoder>/<architecture>``). Each holds
``identity.json`` (:mod:`mcanb.identity`: data, [encoder,] model, train, seed, code). A notebook run folder lists the
training runs its results come from in ``training_runs.json``; a training run that no notebook result (a folder
with ``metrics.json`` or ``.mcanb-run.json``) lists is *unused*, and ``mcanb runs --prune`` removes it, with the
stored paired tests (:mod:`mcanb.paired`) whose prediction files are then gone. Explained
in docs/runs.md and the README section "The whole study".
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import identity, paired
from .errors import DamagedOutput, UserError
from .paths import OUTPUTS, RUNS, resolve, shown

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
        for entry in identity.uses(folder) or []:     # none: a result that trains nothing (notebooks 01 and 05)
            used.setdefault(str(entry), []).append(f"{folder.parent.name}/{folder.name}")
    return used


def find(outputs: Path | None = None, used: dict[str, list[str]] | None = None) -> list[TrainingRun]:
    """Every training run in the store under ``outputs``, with its status, identity and the notebook runs that
    use it (``used``: :func:`_uses`' answer, when the caller has it)."""
    outputs = Path(outputs or OUTPUTS)
    store = outputs / RUNS.relative_to(OUTPUTS)
    used = _uses(outputs, store) if used is None else used
    return [TrainingRun(d, _status(d), identity.read(d), list(used.get(str(d.resolve()), [])))
            for d in _training_dirs(store)]


def used_run(path: Path) -> Path | None:
    """The training run that ``<notebook run folder>/<row key>/seed<k>`` names: the entry of that folder's
    ``training_runs.json`` in the store folder of that row and seed (``outputs/04_cnn_retraining/toy/caml/seed13``
    -> ``outputs/runs/caml/<identity>/seed13``); None when ``path`` is not of that form or nothing matches."""
    for folder in path.parents:
        entries = identity.uses(folder)
        if entries is None:
            continue
        want = path.relative_to(folder)
        found = [e for e in entries
                 if e.name == want.name and e.parent.parent.as_posix().endswith("/" + want.parent.as_posix())]
        rows = sorted({e.parent.parent for e in found})
        if len(rows) > 1:          # "hier_lan/seed13" of BERT runs: one per encoder; say each with one more part
            depth = len(want.parent.parts) + 1
            named = [shown(folder.joinpath(*r.parts[-depth:], want.name)) for r in rows]
            raise UserError(f"--model {shown(path)} names {len(rows)} training runs: {', '.join(named)}; name one "
                            "of them")
        return found[0] if found else None
    return None


# ------------------------------------------------------------------ what `mcanb predict --model` was given instead
MODEL_FOLDER = ("a trained model's folder, which holds params.yaml (naming model, data_dir and label_space) and "
                "checkpoints/best.pt: a training run outputs/runs/<row>/<identity>/seed<k>, or the same named through "
                "the notebook run that trained it, outputs/<notebook>/<run>/<row>/seed<k>")
_NOTEBOOK = re.compile(r"\d\d_\w+")


def notebook_run(path: Path) -> tuple[str, str, tuple[str, ...]] | None:
    """``(notebook, run, rest)`` of ``outputs/<notebook>/<run>/<rest...>`` (a numbered notebook), else None."""
    for outputs in dict.fromkeys((OUTPUTS, OUTPUTS.resolve())):
        try:
            parts = Path(path).relative_to(outputs).parts
        except ValueError:
            continue
        if len(parts) >= 2 and _NOTEBOOK.fullmatch(parts[0]):
            return parts[0], parts[1], parts[2:]
    return None


def rerun_command(notebook: str, run: str) -> str:
    """The command that runs notebook run ``<notebook>/<run>`` (its parameter file has the run's name, or is
    named by the user)."""
    from .paths import PARAMETERS

    if run == "toy" or (PARAMETERS / notebook / f"{run}.yaml").exists():
        return f"mcanb run {notebook} {run}"
    return f"mcanb run {notebook} <parameter file> -p run_name {run}"


def used_names(folder: Path) -> list[str]:
    """The training runs a notebook run folder lists, named through it: ``<folder>/<row>/seed<k>``."""
    entries = identity.uses(folder) or []
    rows = [e.parent.parent.relative_to(RUNS) if RUNS in e.parents else Path(e.parent.parent.name) for e in entries]
    return [shown(folder / row / e.name) for row, e in zip(rows, entries)]


def missing_model(model: str, path: Path, cwd: str | Path) -> str:
    """Why ``--model MODEL`` (looked for at ``path``) names no folder: the notebook run it goes through has not
    run, not finished, or has no such row and seed; else what ``--model`` expects (never ``path`` as the example)."""
    found = notebook_run(path) or (notebook_run(resolve(model)) if Path(model).parts[:1] == ("outputs",) else None)
    if found is None or not found[2]:
        return (f"--model {model}: {path} is not a folder (relative paths are taken from your working directory, "
                f"{cwd}); expected {MODEL_FOLDER}")
    notebook, run, rest = found
    folder, command = OUTPUTS / notebook / run, rerun_command(notebook, run)
    if not folder.is_dir():
        return (f"--model {model}: the notebook run {notebook}/{run} has not been run yet (no folder {shown(folder)});"
                f" run it first with `{command}`, then call again")
    if not any((folder / f).exists() for f in RESULT_FILES):
        return (f"--model {model}: the notebook run {notebook}/{run} has not finished (no metrics.json in "
                f"{shown(folder)}); run it with `{command}`, then call again")
    names = used_names(folder)
    return (f"--model {model}: the notebook run {notebook}/{run} trained no model {'/'.join(rest)}; "
            + (f"its trained models: {', '.join(names[:12])}" if names else
               f"it trains no model (expected {MODEL_FOLDER})"))


def not_a_model(run_dir: Path) -> str:
    """What ``run_dir`` (a folder without a model's ``params.yaml``) is, and what a model folder looks like."""
    found = notebook_run(run_dir)
    if (run_dir / "report.json").exists():
        what = "the output of notebook 01_preprocess (the preprocessed notes)"
    elif found and not found[2]:
        what = f"the output folder of notebook run {found[0]}/{found[1]}"
    else:
        what = "a folder"
    names = used_names(run_dir)
    return (f"{run_dir} is {what}, not {MODEL_FOLDER}"
            + (f". This notebook run's trained models: {', '.join(names[:12])}" if names else ""))


def trained_by(run_dir: Path) -> str | None:
    """``<notebook>/<run>`` of the notebook run that trained ``run_dir`` (its ``progress.json``), or one that
    uses it."""
    try:
        caller = json.loads((run_dir / "progress.json").read_text()).get("caller")
    except (OSError, ValueError, AttributeError):
        caller = None
    if caller:
        return str(caller)
    try:
        users = _uses(OUTPUTS, RUNS).get(str(run_dir.resolve())) if OUTPUTS.is_dir() else None
    except DamagedOutput:                 # another result's damaged list: not this run's problem to report
        users = None
    return users[0] if users else None


def retrain_advice(run_dir: Path) -> str:
    """How to train ``run_dir`` again: remove it, then rerun the notebook run that trained it."""
    label = trained_by(run_dir)
    command = rerun_command(*label.split("/", 1)) if label and "/" in label else "mcanb run <notebook> <run>"
    return (f"retrain it: `rm -r {run_dir}`, then `{command}`"
            + ("" if label else " (the notebook run that trained it)"))


def describe(run: TrainingRun) -> str:
    """The folder, its status and users; then what it was made from (the identity parts) and, once it has finished,
    the device it trained on."""
    head = f"{shown(run.path)}  {run.status}  " + (f"used by {', '.join(run.used_by)}" if run.used_by else "unused")
    if run.identity is None:
        why = ("identity.json is not the record mcanb writes: edited by hand?" if (run.path / identity.IDENTITY_FILE).exists()
               else "no identity.json: written before runs had one")
        return head + f"\n    made from: unknown ({why})"
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
        libs = p["code"].get("libraries") or {}
        bits.append(f"code {p['code'].get('sha')}" + (f" (torch {libs['torch']})" if "torch" in libs else ""))
    device = _trained_on(run.path)
    return (head + f"\n    identity {run.identity.get('identity')}: " + " · ".join(bits)
            + (f"\n    trained on {device} (not part of the identity)" if device else ""))


def _trained_on(run_dir: Path) -> str | None:
    """The device a finished run's ``params.yaml`` records (:func:`mcanb.train.device_name`), or None."""
    import yaml

    try:
        device = (yaml.safe_load((run_dir / "params.yaml").read_text()) or {}).get("device")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    return str(device) if device else None


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
    outputs = Path(outputs or OUTPUTS)
    store = outputs / RUNS.relative_to(OUTPUTS)
    used = _uses(outputs, store)                   # every result's training_runs.json, read once
    runs = find(outputs, used)
    for r in runs:
        echo(describe(r))
    n_unused = sum(not r.used_by for r in runs)
    echo(f"{len(runs)} training runs in the run store {shown(store)}, {n_unused} unused")
    if prune_unused or dry_run:
        elsewhere = sorted(e for e in used if not Path(e).exists())
        if elsewhere and n_unused:       # an outputs folder moved or copied under the results' absolute entries
            raise UserError(f"{len(elsewhere)} training run(s) that notebook results list are not where they say "
                            f"(e.g. {elsewhere[0]}): was the outputs folder moved or copied? Pruning now could remove "
                            "runs those results use. Run the notebooks again (`mcanb study PROFILE` reuses every "
                            "finished run) so they record where their runs are, then prune.")
        gone = prune(runs, dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for r in gone:
            echo(f"{verb} {shown(r.path)}")
        echo(f"{verb} {len(gone)} unused runs" + ("" if len(gone) == n_unused else
                                                  f" ({n_unused - len(gone)} running now: kept)"))
        answers = outputs / paired.STORE.relative_to(OUTPUTS)
        stale = paired.prune(answers, dry_run=dry_run, removed=[r.path for r in gone])
        echo(f"{verb} {len(stale)} stored paired tests whose prediction files are gone ({shown(answers)})")
