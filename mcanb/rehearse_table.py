"""The cost table of a rehearsal (``mcanb study PROFILE --rehearse``) and the README's run-time table made from it.

Per training run (one seed of one model): seconds per optimizer step (micro-batch), word pieces (BERT) or tokens
(CNNs) per second, peak memory, FLOPs per step and MFU on this machine, all read from the run's ``cost.json`` and
``history.csv`` (``mcanb.cost``), and the projected time of the real run:

* **this machine**: the full epoch's FLOPs (``cost.json``'s ``epoch_flops``, every training document) at the FLOP/s
  measured in the rehearsal's steps, plus evaluations at the measured seconds per document, for ``num_epochs``
  epochs (an upper bound: early stopping usually ends runs sooner) and every seed of the profile;
* **an H100**: the same FLOPs (an evaluation: a third of a training step per document) at
  :data:`mcanb.cost.ASSUMED_MFU` of the bf16 dense peak; labelled "projected from FLOPs" until a GPU measures it.

``python -m mcanb.rehearse PROFILE`` prints the table again from what ``outputs/rehearsal/`` holds (after an
interrupted rehearsal, too); ``python -m mcanb.rehearse --readme`` copies the tables of the rehearsals into
the README between its ``rehearsal`` markers.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from . import cost, identity
from .reporting import load_history

README_MARKERS = ("<!-- rehearsal:start -->", "<!-- rehearsal:end -->")


def _fits(root: Path) -> list[Path]:
    """Finished training run folders under the rehearsal's outputs (a ``cost.json`` and a ``metrics.json``: a run
    stopped before its end has no parameters or evaluation to project from), sorted."""
    return sorted(p.parent for p in root.rglob(cost.COST_FILE)
                  if "standins" not in p.parts and (p.parent / "metrics.json").exists())


def _name(root: Path, run_dir: Path) -> str:
    """``runs/bert_base/hier_lan`` for the run store's ``runs/bert_base/hier_lan/1a2b3c4d/seed13`` (the table adds
    the label space)."""
    parts = run_dir.relative_to(root).parts
    return "/".join(p for p in parts if not re.fullmatch(r"seed\d+|[0-9a-f]{8}", p))


def _yaml(path: Path) -> dict:
    import yaml
    try:
        return yaml.safe_load(path.read_text()) or {}
    except OSError:
        return {}


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _num(v: Any) -> float | None:
    try:
        return None if v in (None, "") else float(v)
    except (TypeError, ValueError):
        return None


def fit_row(root: Path, run_dir: Path, seeds: int, split_sizes: dict[str, int]) -> dict[str, Any]:
    """One training run's measured cost and its projections (seconds) for ``seeds`` seeds; ``split_sizes``: the
    fixture's documents per split and label space (``dev_50``, ...), which the real run evaluates."""
    c, params = _json(run_dir / cost.COST_FILE), _yaml(run_dir / "params.yaml")
    hist = load_history(run_dir)
    epochs = int(params.get("num_epochs") or 1)
    train_docs = c.get("train_docs") or 1
    dev_used, test_used = c.get("dev_docs") or 1, c.get("test_docs") or 0
    space = str(params.get("label_space", "50"))
    dev_full, test_full = split_sizes.get(f"dev_{space}", dev_used), split_sizes.get(f"test_{space}", test_used)
    epoch_flops = c.get("epoch_flops") or 0.0
    eval_flops_doc = cost.FORWARD_SHARE * epoch_flops / train_docs
    eval_docs_total = epochs * dev_full + dev_full + test_full
    total_flops = epochs * epoch_flops + eval_flops_doc * eval_docs_total
    eval_s = _num(hist[-1].get("eval_s")) if hist else None
    rate = c.get("flops_per_s")
    here = (epochs * epoch_flops / rate if rate else None)
    if here is not None and eval_s is not None:
        here += eval_s / dev_used * eval_docs_total
    gpu_peak = cost.GPU_PEAK_FLOPS[cost.REFERENCE_GPU]
    disk = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file())
    label = "top-50" if space == "50" else f"{space} codes"
    return {"run": f"{_name(root, run_dir)} ({label})", "s_per_step": c.get("s_per_step"), "tokens_per_s": c.get("tokens_per_s"),
            "peak_mem_mb": c.get("peak_mem_mb"), "flops_per_step": c.get("flops_per_step"), "mfu": c.get("mfu"),
            "epochs": epochs, "seeds": seeds,
            "epoch_here_s": epoch_flops / rate if rate else None,
            "epoch_gpu_s": cost.projected_seconds(epoch_flops, gpu_peak),
            "run_here_s": None if here is None else here * seeds,
            "run_gpu_s": cost.projected_seconds(total_flops, gpu_peak) * seeds, "disk_bytes": disk * seeds}


def _seeds_by_folder(profile) -> dict[str, int]:
    """Run folder name (``mimic3_50``, ``mimic3_50_all``) -> the profile's number of seeds for it."""
    from .study import resolve

    out = {}
    for spec in profile.runs:
        seeds = resolve(spec).get("seeds")
        if isinstance(seeds, list):
            out[spec.run_name] = max(out.get(spec.run_name, 0), len(seeds))
    return out


def _h(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _g(v: float | None, fmt: str) -> str:
    return "n/a" if v is None else format(v, fmt)


def machine() -> str:
    """``Linux x86_64, 2 CPUs, load 1.23 1.10 0.98, torch 2.x, 2 threads`` (load from /proc/loadavg)."""
    import torch

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs{gpu}, load {load}, torch "
            f"{torch.__version__}, {torch.get_num_threads()} threads")


def render(profile, runs: list[dict], root: Path, record: dict, seconds: float) -> str:
    """The markdown of a rehearsal: notebook runs (status, seconds), then one row per training run."""
    batch = record.get("batch_docs") or "the parameter files' batch of"
    lines = [f"Rehearsal of `mcanb study {profile.name}` (`mcanb study {profile.name} --rehearse`), "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
             + (f", {seconds / 60:.1f} min in all" if seconds == seconds else "") + f"; machine at the start: {record.get('machine', '?')}; load at the end "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. Fixture `{Path(record['fixture']).name}`; stand-in encoders with random weights; one seed "
             f"per run; at most {record['max_steps']} optimizer step(s) of one micro-batch "
             f"of at most {batch} note(s) per training run "
             "(every note at its real length); "
             f"{record['eval_docs']} dev and test document(s) per label space (projections use the full splits and "
             "every training note).", "",
             "| notebook run | status | seconds (data steps, capped training) |", "|---|---|---|"]
    for e in runs:
        name = e["params"].get("run_name", e["run"])
        rec = _json(root / e["notebook"] / str(name) / ".mcanb-run.json")
        lines.append(f"| {e['notebook']}/{name} | {rec.get('status', 'not run')} | {_g(rec.get('seconds'), '.0f')} |")
    seeds = _seeds_by_folder(profile)
    users: dict[str, str] = {}       # store run -> the notebook run (folder name) whose results list it
    for e in runs:
        name = str(e["params"].get("run_name", e["run"]))
        for entry in map(str, identity.uses(root / e["notebook"] / name) or []):
            users[entry] = max(users.get(entry, name), name, key=lambda n: seeds.get(n, 1))
    rows = []   # the runs this profile's notebook runs use: the store may hold another profile's runs too
    for d in _fits(root):
        folder = users.get(str(d.resolve()))
        if folder is not None:
            rows.append(fit_row(root, d, seeds.get(folder, 1), record.get("split_sizes", {})))
    peak = cost.GPU_PEAK_FLOPS[cost.REFERENCE_GPU]
    mfu = f"{cost.ASSUMED_MFU:.0%}"
    lines += ["", f"| training run | s/step | pieces or tokens/s | peak MB | GFLOP/step | MFU here | epoch here | "
              f"epoch {cost.REFERENCE_GPU}* | all seeds × epochs here | all seeds × epochs {cost.REFERENCE_GPU}* | "
              "disk, all seeds |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {_g(r['s_per_step'], '.1f')} | {_g(r['tokens_per_s'], ',.0f')} | "
                     f"{_g(r['peak_mem_mb'], ',.0f')} | {_g((r['flops_per_step'] or 0) / 1e9, ',.0f')} | "
                     f"{_g(None if r['mfu'] is None else 100 * r['mfu'], '.0f')} % | {_h(r['epoch_here_s'])} | "
                     f"{_h(r['epoch_gpu_s'])} | {_h(r['run_here_s'])} ({r['seeds']} × {r['epochs']}) | "
                     f"{_h(r['run_gpu_s'])} | {r['disk_bytes'] / 2**30:.1f} GiB |")
    if rows:
        here = sum(r["run_here_s"] or 0 for r in rows)
        gpu = sum(r["run_gpu_s"] for r in rows)
        disk = sum(r["disk_bytes"] for r in rows)
        lines.append(f"| **all training runs** | | | | | | | | {_h(here)} | {_h(gpu)} | {disk / 2**30:.1f} GiB |")
        free = shutil.disk_usage(root).free
        if disk > free:
            lines += ["", f"**The training runs' folders (checkpoints) need {disk / 2**30:.0f} GiB; this disk has "
                      f"{free / 2**30:.0f} GiB free.**"]
    lines += ["", f"\\* projected from FLOPs at {mfu} MFU of an {cost.REFERENCE_GPU}'s {peak / 1e12:.0f} TFLOP/s "
              "(bf16 dense), not measured; small models (the CNNs) rarely reach that utilisation, so their GPU "
              "times are lower bounds. \"Here\": the FLOP/s measured in the rehearsal's steps, for every training "
              "document of an epoch; epochs are the parameter files' `num_epochs`, an upper bound (early stopping "
              "usually ends runs sooner). MFU here is against this CPU's measured float32 matmul speed."]
    return "\n".join(lines) + "\n"


def write_table(profile, runs: list[dict], root: Path, record: dict, *, seconds: float,
                echo: Callable[[str], None] = print) -> Path:
    """Render, print and write ``<root>/rehearsal_<profile>.md``; return its path."""
    text = render(profile, runs, root, record, seconds)
    path = root / f"rehearsal_{profile.path.stem}.md"
    path.write_text(text)
    echo(text)
    return path


def update_readme(readme: Path, tables: list[Path]) -> bool:
    """Put ``tables`` between the README's rehearsal markers; True when the README changed."""
    text = readme.read_text()
    start, end = README_MARKERS
    if start not in text or end not in text:
        raise ValueError(f"{readme}: no {start} ... {end} markers")
    body = "\n".join(t.read_text() for t in tables)
    new = text[: text.index(start) + len(start)] + "\n" + body + text[text.index(end):]
    if new != text:
        readme.write_text(new)
    return new != text
