"""A training run's checkpoints: start afresh or resume, and save ``checkpoints/last.pt`` and ``best.pt``.

``last.pt`` holds everything needed to continue a run bit-exactly (model, optimizer, scheduler, scaler, the
:class:`Progress` of the loop and every process's random state), ``best.pt`` the best model so far; the file format
is :mod:`mcanb.checkpoint`. A run resumes only with the same configuration (up to :data:`RESUMABLE` options), the same
training documents and, when given, the same identity (:mod:`mcanb.identity`). :class:`Checkpointing` holds these
steps of the training loop ``mcanb.train.fit``; its trainer provides the model, optimizer and run state they save.
"""
from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from tqdm.auto import tqdm

from . import checkpoint as ckpt
from . import identity
from .train_config import seed_everything

log = logging.getLogger("mcanb.train")   # the engine's logger: every message of a fit under one name


# The files a finished run leaves (with predictions_test.parquet when it has a test set); a run is reused only
# when all are there and its identity.json matches. OTHER_FILES: removed with them when a run starts afresh.
FINISHED_FILES = ("metrics.json", "history.csv", "predictions_dev.parquet", "checkpoints/best.pt")
OTHER_FILES = ("predictions_test.parquet", "cost.json", "progress.json", "params.yaml", identity.IDENTITY_FILE)
# Options that may change between a run and its resumption (they do not change the trajectory).
RESUMABLE = {"eval_batch_size", "num_workers", "num_threads", "log_every", "progress", "patience",
             "checkpoint_every_epoch", "checkpoint_every_steps", "compile", "keep_last_checkpoint"}


@dataclass
class Progress:
    """Where a run stands; stored in every checkpoint as a plain dict."""
    epoch: int = 0                   # current epoch, 0-based
    batch_in_epoch: int = 0          # global batches of this epoch already trained on
    step: int = 0                    # optimizer steps done
    loss_sum: float = 0.0            # this process: sum over documents of the training loss in this epoch
    loss_docs: int = 0
    epoch_seconds: float = 0.0       # training time of this epoch before the checkpoint
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0              # epochs since the last improvement
    stop_reason: str | None = None
    history: list = field(default_factory=list)


class Checkpointing:
    """The checkpoint steps of ``mcanb.train``'s trainer, which sets ``config``, ``prog``, ``out_dir``, ``ckdir``,
    ``main``/``rank``/``world``, ``acc``, ``raw`` (the unwrapped model), ``optimizer``, ``scheduler``, ``metric``,
    ``data_fp`` (the training documents' fingerprint) and ``_say``."""

    def start(self, resume: bool, parts: Mapping[str, Any] | None = None) -> None:
        """Reuse a finished run, or continue from ``last.pt``, when ``resume`` and the stored identity matches
        ``parts``; else start afresh: stale files removed, ``identity.json`` written, every process seeded.

        A finished run (:data:`FINISHED_FILES` present) is reused as it stands: ``self.reused`` holds its metrics
        and history and nothing is trained or evaluated again. Without ``parts`` (a plain ``fit`` call) the identity
        is the resolved configuration (up to :data:`RESUMABLE` options), the training documents and the model's
        architecture, and continuing from a ``last.pt`` made with other settings or documents raises
        :class:`~mcanb.checkpoint.CheckpointError` naming them."""
        given, parts = parts is not None, parts if parts is not None else self.own_parts()
        self.reused = self._finished(parts) if resume else None
        if self.reused is not None:
            self._say(f"{self.out_dir}: finished earlier from the same inputs: reused (metrics.json)")
            return
        last = self.ckdir / "last.pt"
        earlier = last.exists() or (self.out_dir / "metrics.json").exists()   # an interrupted or finished run
        if resume and earlier and given:   # without an identity, _restore names what differs
            why = identity.differences(identity.read(self.out_dir), parts)
            if why and self.main:
                (tqdm.write if self.config.progress else log.warning)(
                    f"{self.out_dir}: not resumed, its inputs differ ({'; '.join(why)}): starting afresh")
            resume = not why
        if resume and last.exists():
            self._restore(last)
            self._say(f"resumed from {last}: epoch {self.prog.epoch}, batch {self.prog.batch_in_epoch}, "
                      f"step {self.prog.step}")
            return
        if resume:
            self._say(f"resume=True but {last} does not exist: starting from scratch")
        if self.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for stale in (last, *(self.out_dir / f for f in (*FINISHED_FILES, *OTHER_FILES))):
                stale.unlink(missing_ok=True)
            identity.write(self.out_dir, parts)
        self.acc.wait_for_everyone()
        seed_everything(self.config.seed + self.rank)  # per process: dropout masks differ between processes

    def own_parts(self) -> dict[str, Any]:
        """The identity of a run started without one: resolved configuration, training documents and the model's
        architecture (class, parameter names and shapes)."""
        settings = {k: v for k, v in self.config_dict().items() if k not in RESUMABLE}
        shapes = {"class": type(self.raw).__name__,
                  **{name: list(p.shape) for name, p in self.raw.state_dict().items()}}
        return {"train": identity.settings_part(settings), "data": identity.settings_part(self.data_fp),
                "model": {"sha": identity.of_settings(shapes)}}

    def _finished(self, parts: Mapping[str, Any]) -> dict[str, Any] | None:
        """``{"metrics", "history"}`` of a finished run in ``out_dir`` with this identity, else None."""
        files = [*FINISHED_FILES, *(("predictions_test.parquet",) if self.has_test else ())]
        if not all((self.out_dir / f).exists() for f in files):
            return None
        if identity.differences(identity.read(self.out_dir), parts):
            return None
        from .reporting import load_history, load_metrics
        metrics = load_metrics(self.out_dir)
        if metrics.get("fit/stop_reason") is None:
            return None
        return {"metrics": metrics, "history": load_history(self.out_dir)}

    def drop_last(self) -> None:
        """Remove ``last.pt`` of a finished run unless ``keep_last_checkpoint`` (reuse reads metrics.json)."""
        if self.main and not self.config.keep_last_checkpoint:
            (self.ckdir / "last.pt").unlink(missing_ok=True)

    def _restore(self, path: Path) -> None:
        c = ckpt.load(path, "last")
        ckpt.check_matches(path, "configuration", c["config"], self.config_dict(), ignore=RESUMABLE)
        ckpt.check_matches(path, "dataset", c["data"], self.data_fp)
        ckpt.load_model_state(path, self.raw, c["model"])
        try:
            self.optimizer.load_state_dict(c["optimizer"])
            self.scheduler.load_state_dict(c["scheduler"])
            if self.acc.scaler is not None and c["scaler"] is not None:
                self.acc.scaler.load_state_dict(c["scaler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise ckpt.CheckpointError(f"{path}: optimizer/scheduler state does not fit this run: {e}") from e
        self.prog = p = Progress(**c["progress"])
        local = c["local"]
        if len(local) == self.world:
            ckpt.restore_rng(local[self.rank]["rng"])
            p.loss_sum, p.loss_docs = local[self.rank]["loss_sum"], local[self.rank]["loss_docs"]
        else:
            warnings.warn(f"{path} was written by {len(local)} processes and is resumed by {self.world}: random "
                          "streams are reseeded, so results will differ from an uninterrupted run")
            seed_everything(self.config.seed + 7919 * (p.step + 1) + self.rank)
            p.loss_sum = sum(x["loss_sum"] for x in local) if self.main else 0.0
            p.loss_docs = sum(x["loss_docs"] for x in local) if self.main else 0

    def save_last(self) -> None:
        """``checkpoints/last.pt``: everything needed to continue exactly from here (every process's RNG)."""
        local = [{"rng": ckpt.capture_rng(), "loss_sum": self.prog.loss_sum, "loss_docs": self.prog.loss_docs}]
        if self.world > 1:
            from accelerate.utils import gather_object
            local = gather_object(local)
        if self.main:
            ckpt.save({"kind": "last", "config": self.config_dict(), "data": self.data_fp,
                       "model": self.raw.state_dict(), "optimizer": self.optimizer.state_dict(),
                       "scheduler": self.scheduler.state_dict(),
                       "scaler": self.acc.scaler.state_dict() if self.acc.scaler is not None else None,
                       "progress": dataclasses.asdict(self.prog), "local": local}, self.ckdir / "last.pt")

    def save_best(self) -> None:
        if self.main:
            p = self.prog
            ckpt.save({"kind": "best", "config": self.config_dict(), "data": self.data_fp, "epoch": p.epoch,
                       "metric": self.metric, "value": p.best_metric, "model": self.raw.state_dict()},
                      self.ckdir / "best.pt")

    def load_best(self) -> None:
        """Put the weights of ``best.pt`` into the model."""
        best = self.ckdir / "best.pt"
        ckpt.load_model_state(best, self.raw, ckpt.load(best, "best")["model"])

    def config_dict(self) -> dict:
        """The resolved configuration as checkpoints and ``params.yaml`` store it."""
        return {**dataclasses.asdict(self.config), "eval_k": list(self.config.eval_k)}
