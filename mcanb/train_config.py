"""What one training run is asked to do: :class:`TrainConfig`, its checks, and the environment it sets up.

``mcanb.train.fit`` takes a ``TrainConfig``; :func:`validate` checks it before any work starts,
:func:`make_accelerator` builds the ``accelerate.Accelerator`` it asks for (precision, CPU/CUDA), :func:`determinism`
holds deterministic kernels and a thread count for the duration of a run, and :func:`seed_everything` is the one
seeding function of the package. Explained in notebooks/04_cnn_retraining.ipynb (training set-up).
"""
from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TrainConfig:
    """Every training option, named. Defaults: the paper's CNN retraining (Ji et al. 2021, §4 and Table 6) and CAML."""
    optimizer: str = "adam"          # "adam" (CNN family, paper §4) | "adamw" (BERT fine-tuning, paper §3.2)
    lr: float = 0.003                # Ji et al. 2021, Table 6 (retrained CNN); BERT runs use 1e-6 .. 1e-3
    weight_decay: float = 0.0        # CAML and the paper's CNN use none
    num_epochs: int = 200            # upper bound; early stopping normally ends the run first
    batch_size: int = 8              # documents per optimizer step and process group (paper §4: 8)
    eval_batch_size: int | None = None  # None -> batch_size
    grad_accum_steps: int = 1        # micro-batches per optimizer step (effective batch = batch_size * this)
    warmup: str = "none"             # "none" (constant lr, CNN) | "linear" (linear warmup, then linear decay to 0; BERT)
    warmup_ratio: float = 0.1        # fraction of all optimizer steps spent warming up (common BERT fine-tuning value)
    max_grad_norm: float | None = None  # clip the global gradient L2 norm; None = no clipping (CAML clips nothing)
    early_stopping_metric: str | None = None  # dev metric; None -> default_stopping_metric: "map"; "loss" = dev BCE
    patience: int | None = 3         # epochs without improvement before stopping (CAML default 3); None = never
    seed: int = 13                   # seeds Python, NumPy, torch (plus the process index) and the batch order
    eval_k: tuple[int, ...] | None = None  # P@k/R@k cut-offs; None -> metrics.default_k: (5,) up to 50 codes, (8, 15) above
    amp: str = "off"                 # "off" | "bf16" | "fp16" (autocast; fp16 adds a GradScaler); CUDA only
    compile: bool = False            # torch.compile the model (CUDA only)
    deterministic: bool = True       # torch.use_deterministic_algorithms(True, warn_only=True) during fit
    num_threads: int | None = None   # torch CPU threads during fit; None = leave as is
    num_workers: int = 0             # DataLoader worker processes (collate is deterministic, so any number is)
    shuffle: bool = True             # shuffle training documents each epoch (False only for tests/debugging)
    bucket_size_multiplier: int = 100  # length-sorted chunks of batch_size * this documents; 1 = no bucketing
    log_every: int = 20              # optimizer steps between progress-bar loss updates
    progress: bool = True            # tqdm progress bars (main process only)
    max_steps: int | None = None     # stop after this many optimizer steps in total (smoke runs); None = no limit
    checkpoint_every_epoch: bool = True  # write checkpoints/last.pt after every epoch
    checkpoint_every_steps: int | None = None  # also write last.pt every n optimizer steps (mid-epoch resume)
    keep_last_checkpoint: bool = False  # keep last.pt once the run has finished (a BERT-base one holds 1.3 GB of
                                        # optimizer state); a finished run is reused from its metrics, not from it


def validate(cfg: TrainConfig) -> None:
    """Raise ``ValueError`` naming the first field of ``cfg`` out of its range."""
    checks = [(cfg.optimizer in ("adam", "adamw"), f"optimizer must be 'adam' or 'adamw', got {cfg.optimizer!r}"),
              (cfg.warmup in ("none", "linear"), f"warmup must be 'none' or 'linear', got {cfg.warmup!r}"),
              (0 <= cfg.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {cfg.warmup_ratio}"),
              (min(cfg.batch_size, cfg.grad_accum_steps, cfg.num_epochs, cfg.log_every) >= 1,
               "batch_size, grad_accum_steps, num_epochs and log_every must be >= 1"),
              (all(v is None or v >= 1 for v in (cfg.patience, cfg.max_steps, cfg.checkpoint_every_steps)),
               "patience, max_steps and checkpoint_every_steps must be None or >= 1")]
    for ok, msg in checks:
        if not ok:
            raise ValueError(msg)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device): the one seeding function of the package, used
    by ``fit`` (per process and per resumed step) and by every notebook's ``mcanb.notebook.setup``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_accelerator(config: TrainConfig):
    """An ``accelerate.Accelerator`` for ``config``; amp and compile need CUDA (an error on CPU, never a silent
    fallback: a run asked for bf16 must not quietly report fp32 numbers)."""
    if config.amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"amp must be 'off', 'bf16' or 'fp16', got {config.amp!r}")
    cuda = torch.cuda.is_available()
    if not cuda and (config.amp != "off" or config.compile):
        raise ValueError(f"amp={config.amp!r} / compile={config.compile} need a CUDA GPU and none is available; "
                         "set amp='off' and compile=False for CPU training (fp32)")
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    precision = {"off": "no"}.get(config.amp, config.amp)
    if AcceleratorState._shared_state.get("_mixed_precision", precision) != precision:
        # Accelerate keeps one process-wide state and refuses a new precision; a notebook kernel that runs an
        # fp32 fit after a bf16 one needs it reset (the distributed set-up, PartialState, is kept).
        AcceleratorState._reset_state()
    return Accelerator(cpu=not cuda, mixed_precision=precision)


@contextlib.contextmanager
def determinism(config: TrainConfig):
    """Deterministic kernels and a fixed thread count inside ``fit``; previous settings restored after."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_num_threads())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for deterministic GEMMs
    torch.use_deterministic_algorithms(config.deterministic, warn_only=True)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.set_num_threads(before[2])
