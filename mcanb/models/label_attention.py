"""Label-wise attention with a per-label output layer: the one implementation CAML, DR-CAML, MultiResCNN and LAAT share.

CAML (Mullenbach et al. 2018, eq. 2–4): ``A = softmax_t(U·Hᵀ)``, ``V = A·H``, ``logit_l = β_l·V_l + b_l``.
LAAT (Vu et al. 2020, eq. 3–5) first projects the hidden states, ``Z = tanh(W·H)``, and attends with ``U·Zᵀ``.

Numerics: the scores, softmax and output layer always run in float32 (autocast is switched off inside), because
bf16 scores lose the precision a softmax over 2,500 positions needs and fp16 scores overflow at 65,504 — the
"NaN, collapse to predicting everything" trap (docs/reference.md §Known traps). Padding gets exactly 0 weight;
a document with no real token gets an all-zero attention row and a zero context vector (its logits are the biases).

Two implementations give the same numbers (tests check both against a plain reference to 1e-5):

* ``dense``: the textbook one: a ``(batch, num_codes, seq_len)`` score tensor, autograd through it;
* ``blocked``: a loop over documents and blocks of labels whose ``(block, seq_len)`` scores stay in cache; its
  backward recomputes them block by block (the flash-attention idea), so no ``(batch, num_codes, seq_len)``
  tensor is ever stored (1.4 GB at batch 16 × 8,921 codes × 2,500 tokens). Padding positions are dropped before
  the matmuls, so short documents cost only their length.

``auto`` (default) picks ``blocked`` on CPU and ``dense`` elsewhere (on a GPU one big batched matmul beats many
small ones).

On the alternative ``logit_l = Σ_t A_lt (β_l·H_t)``: it needs the same ``num_codes × seq_len × d`` matmul as
``V = A·H`` plus an extra elementwise pass over ``(num_codes, seq_len)``, so it is never cheaper here; see
``benchmarks/bench_models.py`` for the measurement. Nor is replacing ``torch.softmax`` by ``exp`` + a sum with the
normalisation moved onto the small ``(block, d)`` product: torch's softmax kernel uses a faster vectorised ``exp``
than ``torch.exp``, so its three passes beat the two (measured 116 vs 104 GFLOP/s for the attention loop).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .embedding import document_rows

IMPLEMENTATIONS = ("auto", "dense", "blocked")


def check_impl(impl: str) -> None:
    """Raise a clear error unless ``impl`` names a :class:`LabelAttention` implementation."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"attention_impl must be one of {IMPLEMENTATIONS}, got {impl!r}")
_BLOCK_BYTES = 2 * 1024 * 1024  # score block size: about one core's L2 on the benchmark machine


def _block_size(num_codes: int, seq_len: int) -> int:
    """Labels per block so that a ``(block, seq_len)`` float32 score tile is about ``_BLOCK_BYTES``."""
    return max(32, min(num_codes, _BLOCK_BYTES // (4 * max(seq_len, 1))))


class _BlockedLabelAttention(torch.autograd.Function):
    """Cache-blocked label attention; backward recomputes each score block instead of storing them."""

    @staticmethod
    def forward(ctx, keys, values, mask, query, weight, bias, want_attention: bool):
        # keys (B,T,a), values (B,T,d), mask (B,T) bool | None, query (C,a), weight (C,d), bias (C,)
        B, T, _ = keys.shape
        C, d = weight.shape
        blk = _block_size(C, T)
        context = keys.new_zeros(B, C, d)
        attention = keys.new_zeros(B, C, T) if want_attention else None
        for b in range(B):
            rows = document_rows(mask, b)
            if rows is None:
                continue  # empty document: zero context, zero attention
            k_b, v_b = keys[b, rows], values[b, rows]  # (T_b, a), (T_b, d): real tokens only
            k_bt = k_b.t()
            for c0 in range(0, C, blk):
                c1 = min(C, c0 + blk)
                a = torch.softmax(torch.mm(query[c0:c1], k_bt), dim=1)  # (blk, T_b)
                torch.mm(a, v_b, out=context[b, c0:c1])
                if attention is not None:
                    attention[b, c0:c1, rows] = a
        logits = torch.einsum("bcd,cd->bc", context, weight) + bias
        ctx.save_for_backward(keys, values, query, weight, context)
        ctx.mask = mask
        ctx.mark_non_differentiable(*(t for t in (attention,) if t is not None))
        return logits, attention

    @staticmethod
    def backward(ctx, grad_logits, _grad_attention):
        keys, values, query, weight, context = ctx.saved_tensors
        mask = ctx.mask
        B, T, _ = keys.shape
        C, _ = weight.shape
        blk = _block_size(C, T)
        g = grad_logits.to(context.dtype)  # (B, C)
        grad_weight = torch.einsum("bc,bcd->cd", g, context)
        grad_bias = g.sum(0)
        grad_keys = torch.zeros_like(keys)
        grad_values = torch.zeros_like(values)
        grad_query = torch.zeros_like(query)
        for b in range(B):
            rows = document_rows(mask, b)
            if rows is None:
                continue
            k_b, v_b = keys[b, rows], values[b, rows]
            gk_b = torch.zeros_like(k_b)
            gv_b = torch.zeros_like(v_b)
            k_bt, v_bt = k_b.t(), v_b.t()
            for c0 in range(0, C, blk):
                c1 = min(C, c0 + blk)
                a = torch.softmax(torch.mm(query[c0:c1], k_bt), dim=1)  # recomputed (blk, T_b)
                d_ctx = g[b, c0:c1, None] * weight[c0:c1]  # (blk, d)
                # softmax backward: dS = A ⊙ (dA − Σ_t A_t dA_t), dA = d_ctx·Vᵀ, Σ_t A_t dA_t = d_ctx·context
                dot = (d_ctx * context[b, c0:c1]).sum(1, keepdim=True)
                d_s = torch.mm(d_ctx, v_bt).sub_(dot).mul_(a)  # (blk, T_b)
                gv_b.addmm_(a.t(), d_ctx)
                gk_b.addmm_(d_s.t(), query[c0:c1])
                grad_query[c0:c1].addmm_(d_s, k_b)
            grad_keys[b, rows] = gk_b
            grad_values[b, rows] = gv_b
        return grad_keys, grad_values, None, grad_query, grad_weight, grad_bias, None


def label_attention_dense(
    keys: Tensor, values: Tensor, mask: Tensor | None, query: Tensor, weight: Tensor, bias: Tensor
) -> tuple[Tensor, Tensor]:
    """Textbook label attention: returns ``(logits (B, C), attention (B, C, T))``.

    Args:
        keys: ``(batch_size, seq_len, query_dim)`` what the label queries score against.
        values: ``(batch_size, seq_len, hidden_dim)`` what the attention averages.
        mask: ``(batch_size, seq_len)`` bool, True on real tokens, or ``None``.
        query: ``(num_codes, query_dim)`` U.  weight: ``(num_codes, hidden_dim)`` β.  bias: ``(num_codes,)``.
    """
    scores = torch.matmul(query, keys.transpose(1, 2))  # (B, C, T)
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
    attention = torch.softmax(scores, dim=-1)
    if mask is not None:  # all-padding documents: softmax of all -inf is NaN -> define as 0
        attention = attention.masked_fill(~mask.any(dim=1)[:, None, None], 0.0)
    context = torch.matmul(attention, values)  # (B, C, d)
    logits = torch.einsum("bcd,cd->bc", context, weight) + bias
    return logits, attention


class LabelAttention(nn.Module):
    """Label-wise attention + per-label output layer (CAML; LAAT with ``projection_dim``).

    Args:
        input_dim: size d of the hidden states H.
        num_codes: number of labels C.
        projection_dim: ``None`` for CAML (scores ``U·H``); an int ``d_a`` for LAAT (scores ``U·tanh(W·H)``).
        impl: ``"auto"``, ``"dense"`` or ``"blocked"`` (same numbers; see the module docstring).
    """

    def __init__(self, input_dim: int, num_codes: int, projection_dim: int | None = None, impl: str = "auto"):
        super().__init__()
        check_impl(impl)
        self.impl = impl
        self.projection = None if projection_dim is None else nn.Linear(input_dim, projection_dim, bias=False)
        query_dim = input_dim if projection_dim is None else projection_dim
        self.query = nn.Parameter(torch.empty(num_codes, query_dim))  # U
        self.output_weight = nn.Parameter(torch.empty(num_codes, input_dim))  # β
        self.output_bias = nn.Parameter(torch.zeros(num_codes))
        # CAML initialises U and β with Xavier-uniform (Mullenbach et al. 2018, code); LAAT does the same for W.
        nn.init.xavier_uniform_(self.query)
        nn.init.xavier_uniform_(self.output_weight)
        if self.projection is not None:
            nn.init.xavier_uniform_(self.projection.weight)

    def forward(
        self, hidden: Tensor, mask: Tensor | None = None, return_attention: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Score every label against every position and read out one logit per label.

        Args:
            hidden: ``(batch_size, seq_len, input_dim)`` hidden states H (any float dtype).
            mask: ``(batch_size, seq_len)`` bool/int, nonzero on real tokens; ``None`` = all real.
            return_attention: also return the (detached) attention weights.

        Returns:
            ``logits`` ``(batch_size, num_codes)`` float32, and ``attention`` ``(batch_size, num_codes, seq_len)``
            float32 or ``None``.
        """
        mask = None if mask is None else mask.bool()
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            values = hidden.float()
            keys = values if self.projection is None else torch.tanh(
                F.linear(values, self.projection.weight.float())
            )
            impl = self.impl
            if impl == "auto":
                impl = "blocked" if hidden.device.type == "cpu" else "dense"
            params = (self.query.float(), self.output_weight.float(), self.output_bias.float())
            if impl == "dense":
                logits, attention = label_attention_dense(keys, values, mask, *params)
                attention = attention.detach() if return_attention else None
            else:
                logits, attention = _BlockedLabelAttention.apply(
                    keys.contiguous(), values.contiguous(), mask, *params, return_attention
                )
        return logits, attention
