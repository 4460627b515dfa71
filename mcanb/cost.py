"""What a training run costs: FLOPs counted from the model, word pieces (or tokens) per second, MFU.

Peak memory (RSS on CPU, peak allocated on CUDA) is the engine's own ``peak_mem_mb`` column (``mcanb.train``).

FLOPs are *model* FLOPs of one training step (forward + backward = 3 × forward; the recomputation of gradient
checkpointing is not counted, as is usual for model FLOP utilisation). A multiply-add is 2 FLOPs.

* **BERT family** (:class:`mcanb.models.bert.BertCodingModel`), per document of ``S`` encoded segments of
  ``s = segment_length`` positions (every real segment is encoded at its full length, padding included, which is
  what the hardware computes), an encoder of ``n_layers`` layers of width ``d`` and ``N`` non-embedding
  parameters, ``C`` codes::

      encoder      6 · N · S·s  +  12 · n_layers · s² · d · S     (PaLM's 6N + 12·L·H·Q per token)
      second level 6 · N_seg · S + 12 · layers_seg · S² · d        (the transformer over the segments' [CLS])
      FCN head     6 · d · C
      LAN head     3 · (2·d·p + 2·a·C + 2·d·C) · S·s + 6 · d · C  (projection d→p if any, a = p or d;
                                                                   scores U·H, context A·H, output β·V)

  ``N`` and ``N_seg`` are the weight matrices counted from the model's parameters (embedding, position and
  segment tables excluded; biases and LayerNorm weights, 0.1 % of BERT-base, too).
* **CNN family** (CNN, CAML, MultiResCNN, LAAT, ...): counted from the modules by ``torch.utils.flop_counter``
  on one forward of a dummy document at two lengths (convolutions, linear layers, label attention: every matmul
  the model runs), which is affine in the length; training is 3 × forward.

Peak FLOP/s: a CUDA device is looked up in :data:`GPU_PEAK_FLOPS` (bf16 dense, the vendor's figure); on CPU the
peak is *measured* (a float32 matmul at the current thread count, :func:`cpu_peak_flops`), so CPU MFU says how far
the model is from this machine's own matmul speed. Used by ``mcanb.train`` (a row of cost per epoch in
``history.csv``) and ``mcanb.rehearse`` (projections of the real study).
"""
from __future__ import annotations

import functools
import math
import time
from typing import Callable, Sequence

import numpy as np
import torch

# bf16 dense peak FLOP/s (no sparsity) by a substring of torch.cuda.get_device_name; first match wins.
GPU_PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "L4": 121e12,
                  "V100": 125e12, "T4": 65e12}
REFERENCE_GPU = "H100"      # the GPU of the projections (SXM, bf16 dense: 989 TFLOP/s)
ASSUMED_MFU = 0.40          # model FLOP utilisation assumed for projections: the target of issue 17 for BERT-hier
FORWARD_SHARE = 1 / 3       # an evaluation (forward only) costs a third of a training step per document


def gpu_peak_flops(name: str) -> float | None:
    """bf16 dense peak of a CUDA device name (``"NVIDIA H100 80GB HBM3"`` -> 989e12), None when unknown."""
    return next((v for k, v in GPU_PEAK_FLOPS.items() if k in name), None)


@functools.lru_cache(maxsize=None)
def cpu_peak_flops(threads: int | None = None, n: int = 1024, repeats: int = 3) -> float:
    """Measured float32 matmul FLOP/s of this CPU at ``threads`` torch threads (default: the current setting).

    The best of ``repeats`` timings of an ``n × n`` matmul; cached per thread count (a fraction of a second)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / best


def device_peak_flops(device: torch.device) -> float | None:
    """Peak FLOP/s for MFU: the table's bf16 figure on CUDA (None for an unknown GPU), the measured one on CPU."""
    if device.type == "cuda":
        return gpu_peak_flops(torch.cuda.get_device_name(device))
    return cpu_peak_flops(torch.get_num_threads())


# ---------------------------------------------------------------------------------------------- FLOPs

def _params(module: torch.nn.Module | None, skip: Sequence[str] = ()) -> int:
    """Weight-matrix parameters of ``module`` (biases and LayerNorm weights, 0.1 % of BERT-base, are left out)."""
    if module is None:
        return 0
    return sum(p.numel() for n, p in module.named_parameters() if p.ndim >= 2 and not any(s in n for s in skip))


def transformer_train_flops(non_embedding_params: int, layers: int, hidden: int, seq_len: int) -> float:
    """Training FLOPs of one sequence of ``seq_len`` positions: ``6·N·s + 12·layers·s²·d``."""
    return 6.0 * non_embedding_params * seq_len + 12.0 * layers * seq_len ** 2 * hidden


def bert_doc_flops(model) -> Callable[[np.ndarray], np.ndarray]:
    """Training FLOPs per document of a :class:`~mcanb.models.bert.BertCodingModel` as a function of its number of
    word pieces (vectorised); the formula is in the module docstring."""
    cfg, enc = model.config, model.encoder.config
    d, s, body = enc.hidden_size, cfg.segment_length, cfg.segment_length - 2
    n_enc = _params(model.encoder, skip=("embeddings",))
    per_segment = transformer_train_flops(n_enc, enc.num_hidden_layers, d, s)
    seg_encoder = getattr(model, "segment_encoder", None)
    n_seg = _params(seg_encoder)
    seg_layers = len(getattr(seg_encoder, "layers", [])) if seg_encoder is not None else 0
    C = cfg.num_codes
    head_doc = 6.0 * d * C                                   # FCN, or LAN's output layer β·V
    head_tok = 0.0
    lan = getattr(model, "label_attention", None)
    if lan is not None:
        proj = getattr(lan, "projection", None)
        p = proj.out_features if proj is not None else 0
        a = p or d
        head_tok = 3.0 * (2 * d * p + 2 * a * C + 2 * d * C)

    def flops(pieces: np.ndarray) -> np.ndarray:
        n = np.asarray(pieces, dtype=np.float64)
        S = np.clip(np.ceil(n / body), 1, cfg.max_segments)
        second = 6.0 * n_seg * S + 12.0 * seg_layers * S ** 2 * d
        return per_segment * S + second + head_tok * S * s + head_doc
    return flops


def counted_forward_flops(model: torch.nn.Module, length: int) -> float:
    """Forward FLOPs of ``model`` on one dummy document of ``length`` real tokens, counted by torch's
    ``FlopCounterMode`` (every matmul, convolution and attention kernel the model runs)."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    ids = torch.ones(1, length, dtype=torch.long, device=device)
    was_training = model.training
    model.eval()      # no dropout; gradients stay on, so the model takes its training path (no fused inference)
    try:
        with FlopCounterMode(display=False) as counter:
            model(ids, torch.ones_like(ids, dtype=torch.bool), None)
    finally:
        model.train(was_training)
    return float(counter.get_total_flops())


def counted_doc_flops(model: torch.nn.Module, lengths: tuple[int, int] = (256, 512)
                      ) -> Callable[[np.ndarray], np.ndarray]:
    """Training FLOPs per document as a function of its length, for models whose cost is affine in the length
    (the CNN family): 3 × the counted forward FLOPs at two lengths, interpolated."""
    t1, t2 = lengths
    f1, f2 = counted_forward_flops(model, t1), counted_forward_flops(model, t2)
    slope = (f2 - f1) / (t2 - t1)
    return lambda n: 3.0 * (f1 + slope * (np.asarray(n, dtype=np.float64) - t1))


def doc_flops_fn(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """The training-FLOPs-per-document function of ``model`` (BERT family by formula, others counted)."""
    if hasattr(model, "encoder") and hasattr(getattr(model, "config", None), "segment_length"):
        return bert_doc_flops(model)
    return counted_doc_flops(model)


# ---------------------------------------------------------------------------------------------- the meter

class Meter:
    """Cost of the training batches of one epoch: word pieces/tokens, FLOPs, time, peak memory, MFU.

    ``start()`` at the start of an epoch's training, ``add(attention_mask)`` per micro-batch, ``stop(steps)`` at
    its end, then ``row()`` gives the ``history.csv`` columns. ``epoch_flops`` is the analytic FLOPs of one full
    epoch over ``train_lengths`` (what a projection needs, whatever ``max_steps`` cut)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, train_lengths: Sequence[int], world: int = 1):
        self.device, self.world = device, world
        self.flops_fn = doc_flops_fn(model)
        self.epoch_flops = float(self.flops_fn(np.asarray(train_lengths)).sum())
        self.peak = device_peak_flops(device)
        self.tokens = self.flops = 0.0
        self.steps, self.seconds, self._t0 = 0, 0.0, None

    def start(self) -> None:
        self.tokens = self.flops = 0.0
        self.steps, self._t0 = 0, time.perf_counter()

    def add(self, attention_mask: torch.Tensor) -> None:
        lengths = attention_mask.sum(1).cpu().numpy()
        self.tokens += float(lengths.sum()) * self.world
        self.flops += float(self.flops_fn(lengths).sum()) * self.world

    def stop(self, steps: int) -> None:
        self.steps = steps
        self.seconds = time.perf_counter() - self._t0 if self._t0 is not None else 0.0

    def row(self) -> dict[str, float | None]:
        s = max(self.seconds, 1e-9)
        return {"tokens_per_s": self.tokens / s, "flops_per_step": self.flops / max(self.steps, 1),
                "s_per_step": self.seconds / self.steps if self.steps else None,
                "flops_per_s": self.flops / s, "mfu": self.flops / s / self.peak if self.peak else None,
                "peak_flops": self.peak, "epoch_flops": self.epoch_flops}


# The history.csv columns a Meter adds (timings: they differ between two runs, like train_s and peak_mem_mb).
COLUMNS = ("tokens_per_s", "flops_per_step", "s_per_step", "flops_per_s", "mfu", "peak_flops", "epoch_flops")
COST_FILE = "cost.json"


def summary(history: Sequence[dict]) -> dict[str, float | None]:
    """One run's cost: the last epoch's columns, the mean MFU over epochs and the largest peak memory."""
    if not history:
        return {}
    last = history[-1]
    out: dict[str, float | None] = {k: last.get(k) for k in COLUMNS if k != "mfu"}
    mfus = [r["mfu"] for r in history if r.get("mfu") is not None]
    out["mfu"] = float(np.mean(mfus)) if mfus else None
    out["peak_mem_mb"] = max((r.get("peak_mem_mb") or 0.0) for r in history)
    out["epochs"] = len(history)
    return out


def write(out_dir, history: Sequence[dict], **extra) -> None:
    """``<out_dir>/cost.json``: :func:`summary` plus ``extra`` (kept out of ``metrics.json``, whose numbers must
    be the same in two runs of the same command)."""
    import json
    from pathlib import Path

    doc = {**summary(history), **extra}
    (Path(out_dir) / COST_FILE).write_text(json.dumps(doc, indent=2, default=float) + "\n")


def projected_seconds(flops: float, peak: float, mfu: float = ASSUMED_MFU) -> float:
    """Seconds for ``flops`` at ``mfu`` of ``peak`` FLOP/s."""
    return flops / (peak * mfu)
