"""Throughput, memory and FLOP utilisation of BERT-hier + LAN (run on demand; not a test).

    .venv/bin/python benchmarks/bench_bert.py                          # CPU: small encoder; CUDA: BERT-base too
    .venv/bin/python benchmarks/bench_bert.py --device cpu --tokens 1000 --steps 2 --minilm
    .venv/bin/python benchmarks/bench_bert.py --device cuda --batch 8 --steps 10 --peak-tflops 989.4

What it measures, per set-up: word pieces per second for a training step (forward, backward, AdamW) and for
inference (``eval`` + ``torch.inference_mode``), the peak memory (CPU: the process's peak RSS so far; CUDA:
``torch.cuda.max_memory_allocated``) and the achieved FLOP/s. Notes are ``--tokens`` random word pieces each
(2,500 as in Ji et al. 2021 §3.4), cut into segments of ``--segment-length`` (512: ``[CLS]`` + 510 + ``[SEP]``,
so 2,500 pieces are 5 segments), ``--codes`` labels (50 = MIMIC-III top-50).

* CPU: a small random BERT (``--layers`` 2, ``--hidden`` 128, the size of ``mcanb.encoders.MlmConfig``), and with
  ``--minilm`` the packaged all-MiniLM-L6-v2 (``local:minilm``; 6 layers, hidden 384).
* CUDA: a BERT-base-sized encoder (``BertConfig()`` defaults: 12 layers, hidden 768, random weights), bf16
  autocast, with and without gradient checkpointing. Model FLOP utilisation (MFU) = achieved FLOP/s divided by
  the card's dense bf16 peak (``--peak-tflops``, default 989.4 = H100/H200 SXM). Targets printed beside the
  figures: >= 40 % MFU in training; batch 8 at 2,500 pieces in <= 16 GB with gradient checkpointing.

FLOPs (per encoded token, a token being a segment position incl. ``[CLS]``/``[SEP]``/padding, since the encoder
computes all of them): ``2·N`` forward and ``6·N`` for training, N = non-embedding encoder parameters, plus the
attention score and value matmuls, ``4·layers·seq·hidden`` forward (``12·…`` training; Kaplan et al. 2020,
PaLM appendix B; BERT attends both ways, so nothing is halved for causality), plus the segment transformer
(``2·params`` per segment) and the LAN head (``4·codes·hidden`` per token for ``H·U`` and ``Aᵀ·H``). Gradient
checkpointing's recomputed forward is *not* counted (MFU, not hardware utilisation), so it lowers the MFU.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import resource
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mcanb.models import build_model  # noqa: E402

MFU_TARGET, MEMORY_TARGET_GB = 0.40, 16.0


def small_bert(layers: int, hidden: int) -> nn.Module:
    """A random BERT with ``hidden // 64`` heads (at least 2) and a 4x feed-forward, vocabulary 8,000."""
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=8000, hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=max(2, hidden // 64), intermediate_size=4 * hidden)
    return BertModel(cfg, add_pooling_layer=False)


def bert_base() -> nn.Module:
    """BERT-base-uncased's shape (12 layers, hidden 768, 12 heads, vocabulary 30,522) with random weights."""
    from transformers import BertConfig, BertModel
    return BertModel(BertConfig(), add_pooling_layer=False)


def make_model(encoder: nn.Module, args, checkpointing: bool = False) -> nn.Module:
    """BERT-hier + LAN over ``encoder`` with just enough segments for ``args.tokens`` pieces."""
    max_segments = math.ceil(args.tokens / (args.segment_length - 2))
    return build_model("bert_hier", {"num_codes": args.codes, "cls_token_id": 101, "sep_token_id": 102,
                                     "pad_token_id": 0, "segment_length": args.segment_length,
                                     "max_segments": max_segments, "head": "lan",
                                     "gradient_checkpointing": checkpointing}, encoder=encoder)


def flops(model: nn.Module, batch: int, tokens: int, train: bool) -> float:
    """Model FLOPs of one batch of ``batch`` full notes of ``tokens`` pieces (see the module docstring)."""
    cfg, enc = model.config, model.encoder
    segments = math.ceil(tokens / (cfg.segment_length - 2))
    encoded = batch * segments * cfg.segment_length                     # positions the encoder computes
    embedding = sum(p.numel() for p in enc.embeddings.parameters())
    n_enc = sum(p.numel() for p in enc.parameters()) - embedding
    h, layers = enc.config.hidden_size, enc.config.num_hidden_layers
    seg = sum(p.numel() for p in model.segment_encoder.parameters()) if model.segment_encoder is not None else 0
    forward = (2 * n_enc * encoded + 4 * layers * cfg.segment_length * h * encoded + 2 * seg * batch * segments
               + 4 * cfg.num_codes * h * encoded)
    return 3 * forward if train else forward


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def batch_of(model: nn.Module, args, device: str):
    vocab = model.encoder.config.vocab_size
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000 if vocab > 2000 else 5, vocab, (args.batch, args.tokens), generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    labels = (torch.rand(args.batch, args.codes, generator=g) < 0.1).float()
    return ids.to(device), mask.to(device), labels.to(device)


def _autocast(amp: bool):
    """A factory of bf16 CUDA autocast contexts, or of no-op contexts."""
    return (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext


def time_train(model, ids, mask, labels, steps: int, device: str, amp: bool) -> float:
    """Seconds per optimizer step (best of ``steps`` after one warm-up step)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, **({"fused": True} if device == "cuda" else {}))
    ctx = _autocast(amp)
    times = []
    for i in range(steps + 1):
        sync(device)
        t0 = time.perf_counter()
        with ctx():
            loss = model(ids, mask, labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"non-finite training loss {loss.item()}")
    return min(times)


@torch.inference_mode()
def time_infer(model, ids, mask, steps: int, device: str, amp: bool) -> float:
    model.eval()
    ctx = _autocast(amp)
    times = []
    for i in range(steps + 1):
        sync(device)
        t0 = time.perf_counter()
        with ctx():
            model(ids, mask)
        sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return min(times)


def peak_memory_gb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux


def report(label: str, what: str, seconds: float, model, args, device: str, peak_tflops: float | None,
           train: bool, memory_target: bool = False) -> float:
    """Print one row: pieces/s, ms per batch, TFLOP/s, MFU, peak memory, and on CUDA the targets."""
    rate = args.batch * args.tokens / seconds
    achieved = flops(model, args.batch, args.tokens, train) / seconds
    mem = peak_memory_gb(device)
    mfu = f"{100 * achieved / (peak_tflops * 1e12):5.1f} %" if peak_tflops else "    -  "
    target = ""
    if device == "cuda" and train:
        met = achieved / (peak_tflops * 1e12) >= MFU_TARGET
        target = f"  [MFU target >= {100 * MFU_TARGET:.0f} %: {'met' if met else 'NOT met'}]"
        if memory_target:
            target += f" [<= {MEMORY_TARGET_GB:.0f} GB: {'met' if mem <= MEMORY_TARGET_GB else 'NOT met'}]"
    unit = 1e12 if device == "cuda" else 1e9
    print(f"{label:<34} {what:<9} {rate:>10,.0f} {1e3 * seconds:>10.1f} {achieved / unit:>9.2f} {mfu:>8} "
          f"{mem:>8.2f}{target}", flush=True)
    return rate


def header(device: str) -> None:
    mem, rate = ("peak GB", "TFLOP/s") if device == "cuda" else ("RSS GB", "GFLOP/s")
    print(f"{'set-up':<34} {'phase':<9} {'pieces/s':>10} {'ms/batch':>10} {rate:>9} {'MFU':>8} {mem:>8}")


def run(label: str, model, args, device: str, amp: bool, peak_tflops: float | None,
        memory_target: bool = False) -> None:
    """Time inference then one training step of ``model`` on a batch of full-length random notes."""
    model.to(device)
    ids, mask, labels = batch_of(model, args, device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if not args.no_infer:
        report(label, "inference", time_infer(model, ids, mask, args.steps, device, amp), model, args, device,
               peak_tflops, False)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    report(label, "train", time_train(model, ids, mask, labels, args.steps, device, amp), model, args, device,
           peak_tflops, True, memory_target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per phase (best of; one warm-up step more)")
    ap.add_argument("--batch", type=int, default=None, help="notes per batch (default: CPU 2, CUDA 8)")
    ap.add_argument("--codes", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=2500, help="word pieces per note")
    ap.add_argument("--segment-length", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2, help="CPU small encoder")
    ap.add_argument("--hidden", type=int, default=128, help="CPU small encoder")
    ap.add_argument("--minilm", action="store_true", help="also local:minilm (CPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--no-infer", action="store_true")
    ap.add_argument("--cpu-peak-gflops", type=float, default=None, help="for an MFU column on CPU")
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="GPU dense bf16 peak (H100/H200 SXM: 989.4)")
    args = ap.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    args.batch = args.batch or (8 if device == "cuda" else 2)
    segments = math.ceil(args.tokens / (args.segment_length - 2))
    print(f"batch {args.batch} x {args.tokens} pieces = {segments} segments of {args.segment_length}, "
          f"{args.codes} codes, BERT-hier + LAN; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    torch.manual_seed(0)
    if device == "cpu":
        cpu_peak = args.cpu_peak_gflops / 1e3 if args.cpu_peak_gflops else None   # in TFLOP/s, as on CUDA
        header("cpu")
        run(f"small BERT {args.layers}x{args.hidden} fp32", make_model(small_bert(args.layers, args.hidden), args),
            args, "cpu", False, cpu_peak)
        if args.minilm:
            from mcanb.encoders import load_encoder
            run("all-MiniLM-L6-v2 (6x384) fp32", make_model(load_encoder("local:minilm"), args), args, "cpu", False,
                cpu_peak)
        return
    print(f"GPU: {torch.cuda.get_device_name()}, bf16 peak {args.peak_tflops} TFLOP/s (--peak-tflops)")
    torch.backends.cuda.matmul.allow_tf32 = True
    header("cuda")
    for checkpointing in (False, True):
        model = make_model(bert_base(), args, checkpointing)
        label = f"BERT-base bf16, {'' if checkpointing else 'no '}grad checkpointing"
        run(label, model, args, "cuda", True, args.peak_tflops, memory_target=checkpointing)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
