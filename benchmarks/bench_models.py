"""Throughput and FLOP efficiency of the CNN-family models (run on demand; not a test).

    .venv/bin/python benchmarks/bench_models.py                       # full table (CPU: ~10 minutes)
    .venv/bin/python benchmarks/bench_models.py --models cnn --codes 8921 --no-train
    .venv/bin/python benchmarks/bench_models.py --profile caml --codes 8921

For each model and label-space size it times inference (``eval`` + ``torch.inference_mode``) and one training
step (forward, backward, Adam), at batch 16 × 2,500 tokens, vocabulary ~52K, 100-d embeddings, and reports
documents/s. Inference FLOPs are counted analytically (convolutions ``2·B·T·k·d_in·d_out``, the two attention
matmuls ``2·B·C·T·d`` each, the output layer) and divided by the time and by this machine's fp32 matmul peak,
measured here as the best of several large ``torch.mm`` runs (``2·n³ / t``). Element-wise work (embedding lookup,
tanh, softmax, masking) is real time but counts no FLOPs, so 100 % is out of reach.

"plain" rows are straightforward PyTorch versions of the same models (``nn.Conv1d`` on channels-first data, tanh,
``max_pool1d`` / a dense softmax over a ``(B, C, T)`` score tensor), written here for comparison only.
With CUDA the script also times the models on the GPU with and without bf16 autocast.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mcanb.models import build_model  # noqa: E402
from mcanb.models.label_attention import _block_size  # noqa: E402

VOCAB, EMBED = 51_919, 100  # docs/reference.md §Preprocessing: 51,917 terms + PAD + UNK; word2vec 100-d


# ------------------------------------------------------------------------------------------- FLOP counts

def forward_flops(name: str, B: int, T: int, C: int, model: nn.Module) -> float:
    """Multiply-add FLOPs (×2) of one forward pass over a (B, T) batch without padding."""
    cfg = model.config
    if name == "cnn":
        return 2 * B * T * cfg.kernel_size * EMBED * cfg.num_filters + 2 * B * cfg.num_filters * C
    if name == "caml":
        F_ = cfg.num_filters
        return 2 * B * T * cfg.kernel_size * EMBED * F_ + 2 * 2 * B * C * T * F_ + 2 * B * C * F_
    if name == "multirescnn":
        F_, d = cfg.num_filters, EMBED
        conv = sum(2 * B * T * k * (d * d + d * F_ + F_ * F_) + 2 * B * T * d * F_ for k in cfg.filter_sizes)
        hidden = F_ * len(cfg.filter_sizes)
        return conv + 2 * 2 * B * C * T * hidden + 2 * B * C * hidden
    raise ValueError(name)


# ------------------------------------------------------------------------------------------- plain versions

class PlainCnn(nn.Module):
    """Textbook Kim CNN: Conv1d over channels-first embeddings, tanh, max_pool1d, linear."""

    def __init__(self, C: int, k: int = 4, F_: int = 500):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.conv = nn.Conv1d(EMBED, F_, k, padding=k // 2)
        self.out = nn.Linear(F_, C)

    def forward(self, ids):
        h = torch.tanh(self.conv(self.embed(ids).transpose(1, 2)))
        return self.out(F.max_pool1d(h, h.shape[2]).squeeze(2))


def plain_attention(h: torch.Tensor, U: torch.Tensor, beta: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """CAML's dense attention on (B, T, d) states: softmax(U·Hᵀ) over T, V = A·H, Σ_d β ⊙ V."""
    alpha = torch.softmax(U.matmul(h.transpose(1, 2)), dim=2)
    return beta.mul(alpha.matmul(h)).sum(dim=2) + bias


class PlainCaml(nn.Module):
    """Textbook CAML: Conv1d, tanh, dense label attention."""

    def __init__(self, C: int, k: int = 10, F_: int = 50):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED, padding_idx=0)
        self.conv = nn.Conv1d(EMBED, F_, k, padding=k // 2)
        self.U, self.beta = nn.Parameter(torch.randn(C, F_) * 0.01), nn.Parameter(torch.randn(C, F_) * 0.01)
        self.bias = nn.Parameter(torch.zeros(C))

    def forward(self, ids):
        h = torch.tanh(self.conv(self.embed(ids).transpose(1, 2))).transpose(1, 2)
        return plain_attention(h, self.U, self.beta, self.bias)


class PlainMultiResCnn(nn.Module):
    """Textbook MultiResCNN: Conv1d + BatchNorm1d residual blocks per filter size, dense attention."""

    def __init__(self, C: int, sizes=(3, 5, 9, 15, 19, 25), F_: int = 50):
        super().__init__()
        d = EMBED
        self.embed = nn.Embedding(VOCAB, d, padding_idx=0)
        self.first = nn.ModuleList(nn.Conv1d(d, d, k, padding=k // 2) for k in sizes)
        self.left = nn.ModuleList(nn.Sequential(
            nn.Conv1d(d, F_, k, padding=k // 2, bias=False), nn.BatchNorm1d(F_), nn.Tanh(),
            nn.Conv1d(F_, F_, k, padding=k // 2, bias=False), nn.BatchNorm1d(F_)) for k in sizes)
        self.short = nn.ModuleList(nn.Sequential(nn.Conv1d(d, F_, 1, bias=False), nn.BatchNorm1d(F_))
                                   for _ in sizes)
        H = F_ * len(sizes)
        self.U, self.beta = nn.Parameter(torch.randn(C, H) * 0.01), nn.Parameter(torch.randn(C, H) * 0.01)
        self.bias = nn.Parameter(torch.zeros(C))

    def forward(self, ids):
        x = self.embed(ids).transpose(1, 2)
        chans = []
        for first, left, short in zip(self.first, self.left, self.short):
            h = torch.tanh(first(x))
            chans.append(torch.tanh(left(h) + short(h)))
        return plain_attention(torch.cat(chans, 1).transpose(1, 2), self.U, self.beta, self.bias)


PLAIN = {"cnn": PlainCnn, "caml": PlainCaml, "multirescnn": PlainMultiResCnn}


# ------------------------------------------------------------------------------------------- timing

def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device: str = "cpu") -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(device: str = "cpu", dtype=torch.float32, repeats: int = 5) -> float:
    """Best FLOP/s of large square ``torch.mm`` runs (the machine's practical fp32 GEMM peak)."""
    best = 0.0
    for n in (2048, 4096) if device == "cpu" else (8192,):
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        c = torch.empty(n, n, device=device, dtype=dtype)
        best = max(best, 2 * n**3 / best_time(lambda: torch.mm(a, b, out=c), repeats, device))
    return best


def make_batch(B: int, T: int, C: int, device: str):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB - 1, (B, T), generator=g).to(device)
    labels = (torch.rand(B, C, generator=g) < 0.002).float().to(device)
    return ids, labels


def build(name: str, C: int, device: str, plain: bool = False) -> nn.Module:
    torch.manual_seed(0)
    if plain:
        return PLAIN[name](C).to(device)
    vectors = F.normalize(torch.randn(VOCAB, EMBED), dim=1)
    return build_model(name, {"num_codes": C}, embeddings=vectors).to(device)


def time_inference(model, ids, repeats, device, autocast=False) -> float:
    model.eval()
    plain = not hasattr(model, "config")

    def run():
        with torch.inference_mode(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            return model(ids) if plain else model(ids).logits

    return best_time(run, repeats, device)


def time_training(model, ids, labels, repeats, device, autocast=False) -> float:
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            out = model(ids, labels=labels)
        out.loss.backward()
        opt.step()

    return best_time(step, repeats, device)


def row(label, name, C, B, t, flops, peak):
    rate = flops / t if flops else 0.0
    pct = f"{100 * rate / peak:6.1f}" if flops else "     -"
    gf = f"{rate / 1e9:8.1f}" if flops else "       -"
    print(f"{label:<22} {name:<12} {C:>6} {B / t:>9.2f} {1000 * t:>10.1f} {gf} {pct}", flush=True)


# ------------------------------------------------------------------------------------------- attention variants

def compare_attention_readout(C: int, T: int, d: int, repeats: int) -> None:
    """One document: logits via V = A·H then Σ_d β⊙V, versus Σ_t A ⊙ (β·Hᵀ), both cache-blocked."""
    torch.manual_seed(0)
    H, U, beta = torch.randn(T, d), torch.randn(C, d) * 0.1, torch.randn(C, d)
    blk = _block_size(C, T)
    out = torch.empty(C)

    def via_context():
        for c0 in range(0, C, blk):
            a = torch.softmax(U[c0 : c0 + blk] @ H.t(), dim=1)
            out[c0 : c0 + blk] = ((a @ H) * beta[c0 : c0 + blk]).sum(1)

    def via_scores():
        for c0 in range(0, C, blk):
            a = torch.softmax(U[c0 : c0 + blk] @ H.t(), dim=1)
            out[c0 : c0 + blk] = (a * (beta[c0 : c0 + blk] @ H.t())).sum(1)

    with torch.inference_mode():
        t1, t2 = best_time(via_context, repeats), best_time(via_scores, repeats)
    print(f"label-attention readout, C={C}, T={T}, d={d}, one document: V=A·H then β·V {1000 * t1:.1f} ms; "
          f"Σ_t A⊙(β·Hᵀ) {1000 * t2:.1f} ms")


# ------------------------------------------------------------------------------------------- main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cnn", "caml", "multirescnn"], choices=list(PLAIN))
    p.add_argument("--codes", nargs="+", type=int, default=[50, 8921])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=2500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--no-train", action="store_true", help="inference only")
    p.add_argument("--no-plain", action="store_true", help="skip the plain PyTorch comparison rows")
    p.add_argument("--profile", choices=list(PLAIN), help="print a torch.profiler table for this model")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    B, T = args.batch, args.seq_len
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B} x {T} tokens, "
          f"vocab {VOCAB}, embed {EMBED}; load average {os.getloadavg()[0]:.2f} (other work skews timings)")
    peak = matmul_peak()
    print(f"CPU fp32 matmul peak (best large torch.mm): {peak / 1e9:.1f} GFLOP/s\n")

    if args.profile:
        profile(args.profile, args.codes[-1], B, T)
        return

    print(f"{'run':<22} {'model':<12} {'codes':>6} {'docs/s':>9} {'ms/batch':>10} {'GFLOP/s':>8} {'%peak':>6}")
    for C in args.codes:
        ids, labels = make_batch(B, T, C, "cpu")
        for name in args.models:
            model = build(name, C, "cpu")
            flops = forward_flops(name, B, T, C, model)
            row("mcanb inference", name, C, B, time_inference(model, ids, args.repeats, "cpu"), flops, peak)
            if not args.no_plain:
                plain = build(name, C, "cpu", plain=True)
                row("plain inference", name, C, B, time_inference(plain, ids, args.repeats, "cpu"), flops, peak)
                del plain
            if not args.no_train:
                row("mcanb train step", name, C, B, time_training(model, ids, labels, args.repeats, "cpu"), 0, peak)
            del model
    print()
    compare_attention_readout(8921, T, 50, args.repeats)

    if not torch.cuda.is_available():
        print("\nno CUDA device: skipping the GPU part")
        return
    gpu_peak = matmul_peak("cuda")
    print(f"\nGPU: {torch.cuda.get_device_name()}, fp32 matmul peak {gpu_peak / 1e12:.1f} TFLOP/s (TF32 off)")
    for C in args.codes:
        ids, labels = make_batch(B, T, C, "cuda")
        for name in args.models:
            model = build(name, C, "cuda")
            flops = forward_flops(name, B, T, C, model)
            for ac in (False, True):
                tag = " bf16" if ac else " fp32"
                row("gpu inference" + tag, name, C, B, time_inference(model, ids, args.repeats, "cuda", ac),
                    flops, gpu_peak)
                if not args.no_train:
                    row("gpu train step" + tag, name, C, B,
                        time_training(model, ids, labels, args.repeats, "cuda", ac), 0, gpu_peak)
            del model
            torch.cuda.empty_cache()


def profile(name: str, C: int, B: int, T: int) -> None:
    """torch.profiler table of one inference batch and one training step."""
    from torch.profiler import ProfilerActivity, profile as prof

    ids, labels = make_batch(B, T, C, "cpu")
    model = build(name, C, "cpu")
    for title, fn in (("inference", lambda: time_inference(model, ids, 1, "cpu")),
                      ("train step", lambda: time_training(model, ids, labels, 1, "cpu"))):
        with prof(activities=[ProfilerActivity.CPU]) as pr:
            fn()
        print(f"== {name}, {C} codes, {title} (two calls: warm-up + timed)")
        print(pr.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()
