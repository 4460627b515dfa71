"""Layers shared by the CNN family (CNN, CAML, DR-CAML, MultiResCNN, LAAT): the same-padded channels-last
convolution, the fused convolution + max-pool over time, the word-embedding builder and the config checks.

Convolutions here are "same"-aligned and channels-last: output t sees tokens ``t - (k-1)//2 … t + k//2``, so every
layer keeps length T and position t stays token t. Padded inputs are zeroed before each convolution and outputs at
padded positions are masked, so a document gives the same numbers alone or padded inside a batch. (CAML's code
pads ``k//2`` on both sides, giving T+1 outputs for even k, and its CNN uses no padding; both differ from ours
only in the ≤ k-1 edge windows of a 2,500-token document.)

Speed (``benchmarks/bench_models.py``): convolutions are channels-last ``conv2d`` calls (oneDNN / cuDNN) on the
``(B, T, d)`` layout. The CNN's convolution + max-pool is one GEMM per document over the ``(T, k·d_in)`` windows
of the padded input (an overlapping view that BLAS needs copied, which happens in cache), max-reduced while the
output is still in cache; max-pooling happens before the tanh (tanh is monotonic), and its backward only touches
the k winning windows per filter. In inference the embedding lookup writes straight into the padded
per-document buffer. Measured on 2 Zen 4 cores, batch 16 × 2,500 tokens, 8,921 codes: CNN inference at 85 % of
the fp32 matmul peak (plain PyTorch: 35 %).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embedding import WordEmbedding, document_rows


def _pad_same(x: Tensor, k: int) -> Tensor:
    """``(B, T, d)`` -> ``(B, T + k - 1, d)`` zero-padded ``(k-1)//2`` before and ``k//2`` after, contiguous."""
    return F.pad(x, (0, 0, (k - 1) // 2, k // 2)).contiguous()


def _windows(xp_b: Tensor, length: int, k: int) -> Tensor:
    """Overlapping view ``(length, k·d)`` of a contiguous ``(length + k - 1, d)`` matrix: row t = rows t…t+k-1."""
    d = xp_b.shape[-1]
    return xp_b.as_strided((length, k * d), (d, 1))


def _cast_for_autocast(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Cast to the autocast dtype when autocast is on (custom autograd functions bypass its casting)."""
    dev = tensors[0].device.type
    if not torch.is_autocast_enabled(dev):
        return tensors
    dtype = torch.get_autocast_dtype(dev)
    return tuple(t.to(dtype) for t in tensors)


class _ConvMaxPool(torch.autograd.Function):
    """``max_t conv(x)[b, t, c]`` over real positions (0 for an empty document) without storing the conv output."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, mask: Tensor | None) -> Tensor:
        k, d_in, d_out = weight.shape
        B, T, _ = x.shape
        xp = _pad_same(x, k)
        w2 = weight.reshape(k * d_in, d_out)
        pooled = x.new_zeros(B, d_out)
        argmax = torch.zeros(B, d_out, dtype=torch.long, device=x.device)
        y_buf = x.new_empty(T, d_out)  # reused: a fresh 5 MB tensor per document costs page faults
        for b in range(B):
            rows = document_rows(mask, b)
            if rows is None:
                continue
            windows = _windows(xp[b], T, k)[rows]
            y = torch.mm(windows, w2, out=y_buf[: windows.shape[0]])  # (T_b, d_out), only real positions
            torch.max(y, dim=0, out=(pooled[b], argmax[b]))
            if isinstance(rows, Tensor):
                argmax[b] = rows[argmax[b]]
            elif rows.start:
                argmax[b] += rows.start
        empty = mask is not None and not bool(mask.any(dim=1).all())
        ctx.save_for_backward(xp, weight, argmax, mask.any(dim=1) if empty else None)
        return pooled

    @staticmethod
    def backward(ctx, grad_pooled: Tensor):
        xp, weight, argmax, nonempty = ctx.saved_tensors
        k, d_in, d_out = weight.shape
        B, Tp, _ = xp.shape
        g = grad_pooled if nonempty is None else grad_pooled * nonempty[:, None]
        pos = argmax[:, :, None] + torch.arange(k, device=xp.device)  # (B, d_out, k) rows of xp that won
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            won = xp[torch.arange(B, device=xp.device)[:, None, None], pos]  # (B, d_out, k, d_in)
            grad_w = torch.einsum("bc,bcjd->jdc", g, won)
        if ctx.needs_input_grad[0]:
            contrib = g[:, :, None, None] * weight.permute(2, 0, 1)  # (B, d_out, k, d_in)
            flat = (pos + Tp * torch.arange(B, device=xp.device)[:, None, None]).reshape(-1)
            gxp = g.new_zeros(B * Tp, d_in).index_add_(0, flat, contrib.reshape(-1, d_in))
            left = (k - 1) // 2
            grad_x = gxp.view(B, Tp, d_in)[:, left : left + Tp - k + 1]
        return grad_x, grad_w, None


def _conv_max_pool_nograd(x: Tensor, weight: Tensor, mask: Tensor | None) -> Tensor:
    """Forward of :class:`_ConvMaxPool` without the argmax bookkeeping (inference)."""
    k, d_in, d_out = weight.shape
    B, T, _ = x.shape
    left = (k - 1) // 2
    w2 = weight.reshape(k * d_in, d_out)
    buf = x.new_zeros(T + k - 1, d_in)  # one padded document, reused
    y_buf = x.new_empty(T, d_out)
    pooled = x.new_zeros(B, d_out)
    for b in range(B):
        rows = document_rows(mask, b)
        if rows is None:
            continue
        buf[left : left + T] = x[b]
        windows = _windows(buf, T, k)[rows]
        torch.amax(torch.mm(windows, w2, out=y_buf[: windows.shape[0]]), dim=0, out=pooled[b])
    return pooled


def embed_conv_max_pool(table: Tensor, input_ids: Tensor, mask: Tensor, weight: Tensor) -> Tensor:
    """Inference-only fusion of embedding lookup, :func:`conv_max_pool` and padding, one document at a time.

    Each document's real tokens are looked up straight into a reused zero-padded buffer, so no
    ``(batch, seq_len, embed_dim)`` tensor, padding copy or masking pass is made. Falls back to the unfused path
    for masks that are not right padding.

    Args:
        table: ``(vocab_size, in_dim)`` embedding matrix (PAD row zero).
        input_ids: ``(batch_size, seq_len)`` long.
        mask: ``(batch_size, seq_len)`` bool, True on real tokens.
        weight: ``(kernel_size, in_dim, out_dim)``.

    Returns:
        ``(batch_size, out_dim)``, equal to ``conv_max_pool(table[input_ids] * mask, weight, mask)``.
    """
    k, d_in, d_out = weight.shape
    B, T = input_ids.shape
    rows = [document_rows(mask, b) for b in range(B)]
    if any(isinstance(r, Tensor) for r in rows):
        return _conv_max_pool_nograd(table[input_ids].masked_fill(~mask[:, :, None], 0.0), weight, mask)
    left, right = (k - 1) // 2, k // 2
    w2 = weight.reshape(k * d_in, d_out)
    buf = table.new_zeros(T + k - 1, d_in)
    y_buf = table.new_empty(T, d_out)
    pooled = table.new_zeros(B, d_out)
    for b, r in enumerate(rows):
        if r is None:
            continue
        n = T if r.stop is None else r.stop
        torch.index_select(table, 0, input_ids[b, :n], out=buf[left : left + n])
        buf[left + n : left + n + right].zero_()  # the right padding this document's windows reach
        torch.amax(torch.mm(_windows(buf, n, k), w2, out=y_buf[:n]), dim=0, out=pooled[b])
    return pooled


def same_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Length-preserving 1-D convolution.

    Runs as a channels-last ``conv2d`` of height 1: our ``(B, T, d)`` layout *is* NHWC memory, so oneDNN (CPU) and
    cuDNN convolve it directly, with no transpose and no im2col copy (on the benchmark CPU 1.1-1.5× faster than
    one GEMM of an overlapping view, forward and backward).

    Args:
        x: ``(batch_size, seq_len, in_dim)`` channels-last input.
        weight: ``(kernel_size, in_dim, out_dim)``.
        bias: ``(out_dim,)`` or ``None``.

    Returns:
        ``(batch_size, seq_len, out_dim)`` (a channels-last view).
    """
    k = weight.shape[0]
    x4 = x.contiguous().transpose(1, 2).unsqueeze(2)  # (B, d_in, 1, T) with NHWC strides
    w4 = weight.permute(2, 1, 0).unsqueeze(2)  # (d_out, d_in, 1, k)
    y = F.conv2d(x4, w4, bias, padding=(0, k // 2)).squeeze(2).transpose(1, 2)  # (B, T + 1 - k % 2, d_out)
    return y[:, 1:] if k % 2 == 0 else y  # even k: symmetric padding gives one extra, earlier window


def conv_max_pool(x: Tensor, weight: Tensor, mask: Tensor | None) -> Tensor:
    """Max over real positions of ``same_conv(x, weight)`` (bias-free; add the bias after, tanh after that).

    Args:
        x: ``(batch_size, seq_len, in_dim)``, zero at padded positions.
        weight: ``(kernel_size, in_dim, out_dim)``.
        mask: ``(batch_size, seq_len)`` bool, True on real tokens, or ``None``.

    Returns:
        ``(batch_size, out_dim)``; rows of documents without a real token are 0.
    """
    if x.device.type != "cpu":  # one big cuDNN convolution beats per-document GEMMs on a GPU
        return conv_max_pool_dense(x, weight, mask)
    x, weight = _cast_for_autocast(x, weight)
    if not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return _conv_max_pool_nograd(x, weight, mask)
    return _ConvMaxPool.apply(x.contiguous(), weight, mask)


def conv_max_pool_dense(x: Tensor, weight: Tensor, mask: Tensor | None) -> Tensor:
    """:func:`conv_max_pool` the textbook way (the full convolution output, masked, then max); used on GPUs."""
    y = same_conv(x, weight)
    if mask is None:
        return y.amax(dim=1)
    pooled = y.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)
    return pooled.masked_fill(~mask.any(dim=1)[:, None], 0.0)


class SameConv1d(nn.Module):
    """Channels-last, length-preserving, padding-aware 1-D convolution (weight ``(kernel_size, in_dim, out_dim)``).

    Args:
        in_dim: input channels.  out_dim: output channels (filter maps).  kernel_size: window width k.
        bias: learn an additive bias.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, bias: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(kernel_size, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        # CAML and MultiResCNN use Xavier-uniform conv weights; bias as torch's Conv1d default.
        fan_in, fan_out = in_dim * kernel_size, out_dim * kernel_size
        nn.init.uniform_(self.weight, -math.sqrt(6 / (fan_in + fan_out)), math.sqrt(6 / (fan_in + fan_out)))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(batch_size, seq_len, in_dim)`` -> ``(batch_size, seq_len, out_dim)``; padded inputs are zeroed first.

        Pass ``mask=None`` when there is no padding (see :func:`~mcanb.models.embedding.padding_mask`).
        """
        if mask is not None:
            x = x.masked_fill(~mask[:, :, None], 0.0)
        return same_conv(x, self.weight, self.bias)


def check_positive(config: object, *names: str) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` in ``names`` that is not a positive int."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got {value!r}")


def check_dropout(p: float) -> None:
    """Raise ``ValueError`` unless ``0 <= p < 1``."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")


def build_embedding(config: Any, embeddings: Tensor | None, dropout: float | None = None) -> WordEmbedding:
    """The word embedding of a CNN-family model from its config (``vocab_size``, ``embed_dim``,
    ``freeze_embeddings``, ``dropout``), warning when asked to freeze randomly initialised vectors.

    Args:
        config: a model config with the four fields above.
        embeddings: optional ``(vocab_size, embed_dim)`` word2vec vectors.
        dropout: dropout on the embeddings; ``None`` takes ``config.dropout``.
    """
    if config.freeze_embeddings and embeddings is None:
        warnings.warn("freeze_embeddings=True without pretrained embeddings: the random vectors stay fixed")
    return WordEmbedding(config.vocab_size, config.embed_dim, embeddings, freeze=config.freeze_embeddings,
                         dropout=config.dropout if dropout is None else dropout)
