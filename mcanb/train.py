"""Training engine shared by every model (CNN family, BERT variants): the loop of ``fit``.

Its settings are :class:`~mcanb.train_config.TrainConfig` (with seeding and the accelerator, ``mcanb.train_config``),
its checkpoints and resumption ``mcanb.train_checkpoints``, its scoring of dev and test ``mcanb.inference``.

``fit`` trains any model that follows the ``mcanb.models`` contract
``model(input_ids (B, T), attention_mask (B, T), labels (B, C) | None) -> out`` with ``out.loss`` (mean BCE
with logits, computed by the model when labels are given) and ``out.logits`` (B, C). Datasets follow
``mcanb.batching.CodingDataset`` (``lengths``, ``num_codes``, ``hadm_ids``, ``labels_matrix()``, ``collate``).

What one run does: seed; Adam/AdamW with an optional linear warmup/decay schedule, gradient clipping and
gradient accumulation over length-bucketed batches; after every epoch evaluate on dev, keep the best model
(``checkpoints/best.pt``) and stop after ``patience`` epochs without improvement; checkpoint everything needed
to resume bit-exactly (``checkpoints/last.pt``, every epoch and every ``checkpoint_every_steps`` optimizer
steps); finally reload the best model and write, under ``out_dir``::

    history.csv  metrics.json (dev/<metric>, test/<metric>)  params.yaml  predictions_{dev,test}.parquet

``metrics.json`` holds every metric at threshold 0.5 and, beside it, F1 at one threshold tuned on dev labels
only (``dev_threshold``, ``test/micro_f1@dev_threshold``, ...: ``mcanb.metrics.dev_threshold_scores``). A run
of several epochs whose best epoch is its first is flagged (``stop_reason`` ``no_improvement``, a printed
warning and ``fit/warning``).

The predictions format is `mcanb.predictions`; the early-stopping metric and its direction, `mcanb.metrics.stopping`.

Multi-GPU / multi-node runs go through Hugging Face Accelerate (launched with ``accelerate launch``): every
global batch is split across processes, so results do not depend on the number of processes except through
floating-point order and per-process dropout streams. Only the main process writes files.

Explained in notebooks/04_cnn_retraining.ipynb (training) and the README section "Training on several GPUs".
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import functools
import json
import logging
import math
import os
import platform
import resource
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import batching, cost, identity
from .inference import metrics_with_loss, predict
from .metrics.stopping import MetricFn, check_metric_name, default_stopping_metric, higher_is_better
from .predictions import save_predictions
from .reporting import metric_key, save_metrics
from .train_checkpoints import Checkpointing, Progress
from .train_config import TrainConfig, determinism, make_accelerator, validate

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What ``fit`` returns; ``metrics`` is exactly what ``metrics.json`` holds."""
    metric: str                      # the early-stopping metric
    best_metric: float | None
    best_epoch: int | None           # 0-based
    epochs_run: int
    steps: int                       # optimizer steps
    stop_reason: str                 # "early_stopping" | "num_epochs" | "max_steps" | "no_improvement" (best epoch 0)
    history: list[dict]
    metrics: dict[str, float | None]
    out_dir: Path


def fit(model: torch.nn.Module, train_ds, dev_ds, config: TrainConfig, out_dir: str | Path, *, test_ds=None,
        metric_fn: MetricFn | None = None, resume: bool = False, accelerator=None,
        param_groups: Sequence[dict] | None = None, extra_params: Mapping[str, Any] | None = None,
        notebook: str | None = None, run: str | None = None,
        run_identity: Mapping[str, Any] | None = None) -> FitResult:
    """Train ``model`` on ``train_ds``, early-stop on ``dev_ds``, write outputs under ``out_dir`` (see module doc).

    Args:
        metric_fn: ``(y_true (n, C) 0/1, y_score (n, C)) -> {name: value}``; default ``mcanb.metrics.evaluate``
            with ``k=config.eval_k``. The engine adds ``loss`` (dev BCE).
        resume: reuse a finished run in ``out_dir`` (its metrics.json and history.csv, nothing recomputed), or
            continue from ``out_dir/checkpoints/last.pt``; the resumed run ends with the same weights and
            metrics as an uninterrupted one. Both only when ``out_dir/identity.json`` holds the same identity
            (``run_identity``, or without it the resolved config and the training documents): otherwise the run
            starts afresh and says why (a finished run is never reused for other inputs). A finished run keeps
            ``best.pt`` and drops ``last.pt`` unless ``config.keep_last_checkpoint``.
        accelerator: an ``accelerate.Accelerator``; default one made by ``make_accelerator(config)``.
        param_groups: optimizer parameter groups (e.g. layer-wise learning rates for BERT); default one group
            with every trainable parameter.
        extra_params: written to ``params.yaml`` with the resolved ``TrainConfig`` (e.g. model settings).
        notebook, run: names for ``metrics.json``; default the two last parts of ``out_dir``.
        run_identity: the run's identity parts (:func:`mcanb.identity.run_parts`), written to
            ``out_dir/identity.json`` when the run starts.
    """
    out_dir = Path(out_dir)
    from .rehearsal_env import apply_caps
    config, dev_ds, test_ds = apply_caps(config, dev_ds, test_ds, out_dir)   # `mcanb study --rehearse` only
    t = _Trainer(model, train_ds, dev_ds, config, out_dir, metric_fn, accelerator, param_groups,
                 has_test=test_ds is not None, caller=f"{notebook}/{run}" if notebook and run else None)
    with determinism(t.config):
        t.start(resume, run_identity)
        if t.reused is not None:
            return _reused_result(t, **t.reused)
        while t.prog.stop_reason is None:
            t.train_epoch()
            t.end_epoch()
        metrics = t.finish(test_ds)
    if t.main:
        params = {**t.config_dict(), "num_processes": t.world, "device": device_name(t.acc.device),
                  **dict(extra_params or {})}
        save_metrics(out_dir, metrics, notebook=notebook or out_dir.parent.name, run=run or out_dir.name,
                     params=params)
    t.drop_last()
    p = t.prog
    return FitResult(t.metric, p.best_metric, p.best_epoch, len(p.history), p.step, p.stop_reason,
                     p.history, metrics, out_dir)


def _reused_result(t: "_Trainer", metrics: dict, history: list[dict]) -> FitResult:
    """The :class:`FitResult` of a finished run read back from its ``metrics.json`` and ``history.csv``."""
    best = metrics.get("fit/best_epoch")
    metric = metrics.get("fit/stopping_metric", t.metric)
    value = next((r.get(f"dev/{metric}") for r in history if r.get("epoch") == best), None)
    return FitResult(metric, value, best, int(metrics.get("fit/epochs", len(history))), int(metrics.get("fit/steps", 0)),
                     metrics["fit/stop_reason"], history, metrics, t.out_dir)


class _Trainer(Checkpointing):
    """The state of one ``fit`` call; its methods are the steps of the loop."""

    def __init__(self, model, train_ds, dev_ds, config, out_dir, metric_fn, accelerator, param_groups, *,
                 has_test: bool, caller: str | None):
        self.has_test = has_test          # a test split is evaluated at the end (its predictions are a result file)
        self.caller = caller              # "<notebook>/<run>" in progress.json: whose run (mcanb.progress)
        num_codes = train_ds.num_codes
        if dev_ds.num_codes != num_codes:
            raise ValueError(f"train has {num_codes} codes but dev has {dev_ds.num_codes}")
        from .metrics import default_k

        eval_k = tuple(config.eval_k or default_k(num_codes))  # (5,) up to 50 codes, (8, 15) above; capped
        if metric_fn is None:
            from .metrics import evaluate
            metric_fn = functools.partial(evaluate, k=eval_k)
        self.metric_fn = metric_fn
        self.metric = config.early_stopping_metric or default_stopping_metric(
            num_codes, check_metric_name(metric_fn, "loss", num_codes))
        self.config = cfg = dataclasses.replace(config, early_stopping_metric=self.metric, eval_k=eval_k)
        validate(cfg)
        check_metric_name(metric_fn, self.metric, num_codes)  # fail now, not after the last epoch
        self.acc = acc = accelerator or make_accelerator(cfg)
        if acc.mixed_precision != {"off": "no"}.get(cfg.amp, cfg.amp) or acc.gradient_accumulation_steps != 1:
            raise ValueError(f"the accelerator (mixed_precision={acc.mixed_precision!r}, gradient_accumulation_steps="
                             f"{acc.gradient_accumulation_steps}) disagrees with the config (amp={cfg.amp!r}); set "
                             "amp and grad_accum_steps in TrainConfig only")
        self.main, self.rank, self.world = acc.is_main_process, acc.process_index, acc.num_processes
        self.train_ds, self.dev_ds, self.out_dir = train_ds, dev_ds, out_dir
        self.ckdir = out_dir / "checkpoints"
        self.data_fp = {"num_codes": num_codes, "train_docs": len(train_ds), "dev_docs": len(dev_ds),
                        "train_hadm_sha": identity.digest(np.asarray(train_ds.hadm_ids, np.int64).tobytes())}
        if cfg.compile:
            model.compile()  # in place: parameter names (and checkpoints) stay those of the plain model
        groups = param_groups or [{"params": [p for p in model.parameters() if p.requires_grad]}]
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
        optimizer = opt_cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.model, self.optimizer = acc.prepare(model, optimizer)
        self.raw = acc.unwrap_model(self.model)
        self.sampler = batching.BucketBatchSampler(train_ds.lengths, cfg.batch_size, cfg.shuffle, cfg.seed,
                                          cfg.bucket_size_multiplier, num_shards=self.world, shard_index=self.rank)
        total = math.ceil(self.sampler.num_batches() / cfg.grad_accum_steps) * cfg.num_epochs
        total = min(total, cfg.max_steps or total)
        factor = (_linear_warmup(total, round(cfg.warmup_ratio * total)) if cfg.warmup == "linear"
                  else (lambda step: 1.0))
        # On the inner optimizer: Accelerate's scheduler wrapper would step once per process.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        self.prog = Progress()
        self.meter = cost.Meter(self.raw, acc.device, train_ds.lengths, self.world)  # cost columns of history.csv

    # -- the loop ----------------------------------------------------------------------------------------
    def train_epoch(self) -> None:
        """Train until the end of the epoch (or ``max_steps``), starting where ``self.prog`` says."""
        cfg, acc, p, accum = self.config, self.acc, self.prog, self.config.grad_accum_steps
        batches = self.sampler.batches(p.epoch)        # global batches, identical on every process
        self.sampler.set_epoch(p.epoch, start_batch=p.batch_in_epoch)
        loader = batching.loader(self.train_ds, self.sampler, cfg.num_workers, acc.device, seed=cfg.seed + p.epoch)
        if acc.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(acc.device)
        t0 = time.perf_counter() - p.epoch_seconds
        bar = tqdm(total=len(batches), initial=p.batch_in_epoch, desc=f"epoch {p.epoch}", unit="batch",
                   leave=False, disable=not (self.main and cfg.progress))
        self.model.train()
        self.meter.start()
        step0 = p.step
        for i, batch in enumerate(loader, start=p.batch_in_epoch):
            group = batches[i - i % accum: i - i % accum + accum]      # the micro-batches of this optimizer step
            is_last = i == i - i % accum + len(group) - 1
            n_local = self.sampler.shard_sizes(batches[i])[self.rank]   # 0: padded shard, weight 0
            with contextlib.nullcontext() if is_last else acc.no_sync(self.model):
                out = self.model(*(batch[k].to(acc.device) for k in ("input_ids", "attention_mask", "labels")))
                # out.loss is a mean over this micro-batch. Weighting it by its share of the step's documents
                # (times the process count, which DDP divides by) makes the accumulated, process-averaged
                # gradient that of the mean loss over all documents of the step, whatever the shard sizes.
                acc.backward(out.loss * (n_local * self.world / sum(map(len, group))))
            p.loss_sum += out.loss.item() * n_local
            p.loss_docs += n_local
            self.meter.add(batch["attention_mask"])
            bar.update()
            if not is_last:
                continue
            self._optimizer_step()
            p.step, p.batch_in_epoch = p.step + 1, i + 1
            if p.step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{p.loss_sum / max(p.loss_docs, 1):.4f}",
                                docs_s=f"{p.loss_docs * self.world / (time.perf_counter() - t0):.0f}")
                self._write_progress(i + 1, len(batches), time.perf_counter() - t0)
            if cfg.max_steps and p.step >= cfg.max_steps:
                p.stop_reason = "max_steps"
                break
            if cfg.checkpoint_every_steps and p.step % cfg.checkpoint_every_steps == 0 and i + 1 < len(batches):
                p.epoch_seconds = time.perf_counter() - t0
                self.save_last()
        bar.close()
        self.meter.stop(p.step - step0)
        p.epoch_seconds = time.perf_counter() - t0

    def _optimizer_step(self) -> None:
        if self.config.max_grad_norm is not None:
            self.acc.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        if not self.acc.optimizer_step_was_skipped:   # fp16: an overflowing step is skipped, so is the schedule
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def end_epoch(self) -> None:
        """Evaluate on dev, update best model and patience, log, checkpoint; move to the next epoch."""
        cfg, p, t0 = self.config, self.prog, time.perf_counter()
        loss_sum, docs = self._sum_over_processes(p.loss_sum, p.loss_docs)
        dev = self.evaluate(self.dev_ds)
        if self.metric not in dev:
            raise ValueError(f"metric_fn returned no {self.metric!r} on dev; it returned {sorted(dev)}")
        value = dev[self.metric]
        if p.best_epoch is None or _better(value, p.best_metric, higher_is_better(self.metric)):
            p.best_metric, p.best_epoch, p.bad_epochs = value, p.epoch, 0
            self.save_best()
        else:
            p.bad_epochs += 1
        p.history.append({"epoch": p.epoch, "step": p.step, "train_loss": loss_sum / max(docs, 1),
                          "lr": self.scheduler.get_last_lr()[0],
                          **{metric_key("dev", k): v for k, v in dev.items()},
                          "train_s": p.epoch_seconds, "eval_s": time.perf_counter() - t0,
                          "docs_per_s": docs / max(p.epoch_seconds, 1e-9),
                          "peak_mem_mb": _peak_memory_mb(self.acc.device), **self.meter.row()})
        if p.stop_reason is None and cfg.patience is not None and p.bad_epochs >= cfg.patience:
            p.stop_reason = "early_stopping"
        elif p.stop_reason is None and p.epoch + 1 >= cfg.num_epochs:
            p.stop_reason = "num_epochs"
        self._log_epoch()
        self._write_progress(None, None, p.epoch_seconds)
        p.epoch, p.batch_in_epoch, p.loss_sum, p.loss_docs, p.epoch_seconds = p.epoch + 1, 0, 0.0, 0, 0.0
        if cfg.checkpoint_every_epoch:
            self.save_last()

    def evaluate(self, ds) -> dict[str, float | None]:
        _, y_score = predict(self.model, ds, self.config.eval_batch_size or self.config.batch_size,
                             accelerator=self.acc, num_workers=self.config.num_workers)
        return metrics_with_loss(ds, y_score, self.metric_fn)

    def finish(self, test_ds) -> dict[str, float | None]:
        """Reload the best model, predict dev (and test), write the predictions; the flat metrics dict."""
        self.acc.wait_for_everyone()
        self.load_best()
        p = self.prog
        warning = self._no_improvement()
        metrics = {"fit/best_epoch": p.best_epoch, "fit/epochs": len(p.history), "fit/steps": p.step,
                   "fit/stop_reason": p.stop_reason, "fit/stopping_metric": self.metric,
                   **({"fit/warning": warning} if warning else {})}
        if self.main:
            cost.write(self.out_dir, p.history, train_docs=len(self.train_ds), dev_docs=len(self.dev_ds),
                       test_docs=None if test_ds is None else len(test_ds))
        scored = {}
        for split, ds in (("dev", self.dev_ds), ("test", test_ds)):
            if ds is None:
                continue
            hadm_ids, y_score = predict(self.model, ds, self.config.eval_batch_size or self.config.batch_size,
                                        accelerator=self.acc, num_workers=self.config.num_workers)
            metrics.update({metric_key(split, k): v for k, v in metrics_with_loss(ds, y_score, self.metric_fn).items()})
            scored[split] = (ds.labels_matrix(), y_score)
            if self.main:
                save_predictions(self.out_dir / f"predictions_{split}.parquet", hadm_ids, y_score)
        from .metrics import dev_threshold_scores   # F1 at 0.5 above; here at the threshold tuned on dev
        metrics.update(dev_threshold_scores(*scored.pop("dev"), scored))
        return metrics

    def _no_improvement(self) -> str | None:
        """A warning (also printed, and ``stop_reason`` becomes ``"no_improvement"``) when a run of several
        epochs never beat its first epoch's dev metric: it ends no better than where it started."""
        p = self.prog
        if len(p.history) < 2 or p.best_epoch != 0:
            return None
        msg = (f"dev {self.metric} never rose above its first-epoch value {_fmt(p.best_metric)} in "
               f"{len(p.history)} epochs (stopped by {p.stop_reason}): the model kept its first epoch's "
               "weights. Check the learning rate, the stopping metric (early_stopping_metric) and patience.")
        p.stop_reason = "no_improvement"
        warnings.warn(f"{self.out_dir}: {msg}", stacklevel=3)
        self._say(f"WARNING: {msg}")
        return msg

    # -- checkpoints and logs ----------------------------------------------------------------------------
    def _sum_over_processes(self, loss_sum: float, docs: int) -> tuple[float, int]:
        if self.world == 1:
            return loss_sum, docs
        t = self.acc.reduce(torch.tensor([loss_sum, docs], dtype=torch.float64, device=self.acc.device), "sum")
        return float(t[0]), int(t[1])

    def _log_epoch(self) -> None:
        if not self.main:
            return
        p, r = self.prog, self.prog.history[-1]
        keys = list(dict.fromkeys(k for row in p.history for k in row))
        with open(self.out_dir / "history.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(p.history)
        self._say(f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} | dev {self.metric} "
                  f"{_fmt(r['dev/' + self.metric])} (best {_fmt(p.best_metric)} @ epoch {p.best_epoch}) | "
                  f"{r['train_s']:.1f} s, {r['docs_per_s']:.0f} docs/s, peak {r['peak_mem_mb']:.0f} MB"
                  + (f" | stop: {p.stop_reason}" if p.stop_reason else ""))

    def _write_progress(self, batch: int | None, batches: int | None, epoch_s: float) -> None:
        """``progress.json`` in the run folder (``mcanb.progress`` shows it on the terminal): epoch, batch, loss,
        seconds; ``batch`` None means the epoch has just been evaluated. Atomic, main process only."""
        if not self.main:
            return
        p = self.prog
        doc = {"epoch": p.epoch, "num_epochs": self.config.num_epochs, "batch": batch, "batches": batches,
               "step": p.step, "max_steps": self.config.max_steps, "epoch_s": round(epoch_s, 2),
               "train_loss": p.loss_sum / max(p.loss_docs, 1), "metric": self.metric, "best": p.best_metric,
               "best_epoch": p.best_epoch, "epochs_done": len(p.history), "stop_reason": p.stop_reason,
               "caller": self.caller, "updated": time.time()}
        tmp = self.out_dir / ".progress.json.tmp"
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.out_dir / "progress.json")

    def _say(self, msg: str) -> None:
        if self.main:
            tqdm.write(msg) if self.config.progress else log.info(msg)


def _better(new: float | None, best: float | None, higher: bool) -> bool:
    """Strict improvement; a missing or NaN value never improves, and anything beats a NaN best."""
    if new is None or math.isnan(new):
        return False
    if best is None or math.isnan(best):
        return True
    return new > best if higher else new < best


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _linear_warmup(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """lr factor: 0 -> 1 over ``warmup_steps``, then 1 -> 0 at ``total_steps`` (the usual BERT schedule)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


def device_name(device: torch.device) -> str:
    """Where a run trained, as its ``params.yaml`` records it (``cpu (x86_64)``, ``cuda: NVIDIA H100 80GB HBM3``).
    Not part of the run's identity (docs/runs.md, "What a run's identity leaves out")."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"{device.type} ({platform.machine() or 'unknown machine'})"


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB (process peak RSS)
