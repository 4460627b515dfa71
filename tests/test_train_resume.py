"""Resume after SIGKILL: a run killed mid-epoch and resumed ends bit-identical to an uninterrupted run.

Both runs happen in subprocesses (tests/scripts/train_tiny.py) under identical settings (one torch thread).
The killed run SIGKILLs itself at its 20th training forward pass: epoch 1, in the middle of an accumulation
group and two micro-batches after its last step checkpoint (step 8), so the work done after that checkpoint
is lost and must be replayed with the same batches, dropout masks and optimizer state. Run for the tiny
mean-pool model and for a tiny BERT-hier + LAN (encoder dropout, segment transformer, AdamW).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcanb import checkpoint as ckpt
from mcanb import cost

SCRIPT = Path(__file__).parent / "scripts" / "train_tiny.py"


def _train(out_dir: Path, *args: str, kill_at: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TINY_KILL_AT_FORWARD", None)
    if kill_at:
        env["TINY_KILL_AT_FORWARD"] = str(kill_at)
    return subprocess.run([sys.executable, str(SCRIPT), str(out_dir), *args], env=env, capture_output=True,
                          text=True, timeout=300)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())["metrics"]


@pytest.mark.slow   # two training subprocesses per model, one killed
@pytest.mark.parametrize("model", ["tiny", "bert_hier"])
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, model):
    full, killed = tmp_path / "nb" / "full", tmp_path / "nb" / "killed"
    done = _train(full, "--model", model)
    assert done.returncode == 0, done.stderr

    dead = _train(killed, "--model", model, kill_at=20)
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    assert not (killed / "metrics.json").exists()
    progress = ckpt.load(killed / "checkpoints" / "last.pt")["progress"]
    # 12 batches/epoch, 2 per step, checkpoint every 4 steps: the last one was step 8 = epoch 1, batch 4
    assert (progress["epoch"], progress["batch_in_epoch"], progress["step"]) == (1, 4, 8)

    resumed = _train(killed, "--model", model, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout + resumed.stderr

    assert _metrics(killed) == _metrics(full)                       # every digit
    for name in ("best.pt", "last.pt"):
        a, b = (ckpt.load(run / "checkpoints" / name)["model"] for run in (full, killed))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = (ckpt.load(run / "checkpoints" / "last.pt") for run in (full, killed))
    hist = lambda c: [{k: v for k, v in row.items() if k not in ("train_s", "eval_s", "docs_per_s", "peak_mem_mb", *cost.COLUMNS)}
                      for row in c["progress"]["history"]]  # noqa: E731  (timings differ, everything else must not)
    assert hist(a) == hist(b)
    assert a["progress"]["best_epoch"] == 3 and a["progress"]["step"] == 24
    opt_a, opt_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])
