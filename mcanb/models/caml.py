"""CAML and DR-CAML: convolution + label-wise attention (Mullenbach et al., "Explainable Prediction of Medical
Codes from Clinical Text", NAACL 2018).

CAML: embed (dropout 0.2) -> conv width 10, 50 filters -> tanh -> label-wise attention ``softmax_t(U·Hᵀ)`` ->
per-label output ``β_l·V_l + b_l``. Adam lr 1e-4 (docs/reference.md §Models and hyperparameters).
DR-CAML adds a description regulariser: each code's ICD-9 description goes through its own embedding + conv +
max-pool + tanh + linear encoder, and the loss gains ``λ·dist(β_l, desc_l)`` over the gold codes (λ = 0.01).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .embedding import PAD_ID, padding_mask, resolve_mask
from .label_attention import LabelAttention, check_impl
from .layers import SameConv1d, build_embedding, check_dropout, check_positive, conv_max_pool
from .outputs import CodingOutput, coding_loss


@dataclass
class CamlConfig:
    """Settings of CAML; defaults from Mullenbach et al. 2018 (docs/reference.md §Models and hyperparameters)."""

    vocab_size: int  # PAD (0) and UNK (last) included
    num_codes: int  # 50 (top-50) or 8,921 (full)
    embed_dim: int = 100  # word2vec CBOW 100-d (CAML)
    kernel_size: int = 10  # CAML: conv width 10
    num_filters: int = 50  # CAML: 50 filter maps
    dropout: float = 0.2  # CAML: dropout 0.2 on the embeddings
    freeze_embeddings: bool = False  # CAML fine-tunes; the paper's retraining used static vectors (§3): set True
    attention_impl: str = "auto"  # LabelAttention implementation: "auto" | "dense" | "blocked" (same numbers)
    return_attention: bool = False  # put the (batch, codes, seq_len) weights in CodingOutput.attention

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "num_codes", "embed_dim", "kernel_size", "num_filters")
        check_dropout(self.dropout)
        check_impl(self.attention_impl)


class CamlModel(nn.Module):
    """CAML: conv + tanh + label-wise attention + per-label output.

    Args:
        config: :class:`CamlConfig`.
        embeddings: optional ``(vocab_size, embed_dim)`` word2vec vectors.
    """

    def __init__(self, config: CamlConfig, embeddings: Tensor | None = None):
        super().__init__()
        self.config = config
        self.embed = build_embedding(config, embeddings)
        self.conv = SameConv1d(config.embed_dim, config.num_filters, config.kernel_size)
        self.attention = LabelAttention(config.num_filters, config.num_codes, impl=config.attention_impl)

    def encode(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """``(batch_size, seq_len)`` ids -> ``(batch_size, seq_len, num_filters)`` hidden states H."""
        return torch.tanh(self.conv(self.embed(input_ids), padding_mask(mask)))

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> CodingOutput:
        """Score every code for every document.

        Args:
            input_ids: ``(batch_size, seq_len)`` long, 0 = PAD.
            attention_mask: ``(batch_size, seq_len)`` bool/int, nonzero on real tokens; default ``input_ids != 0``.
            labels: ``(batch_size, num_codes)`` multi-hot, optional.

        Returns:
            :class:`CodingOutput`: ``logits`` ``(batch_size, num_codes)``, ``loss`` with labels, ``attention``
            ``(batch_size, num_codes, seq_len)`` when ``config.return_attention``.
        """
        mask = resolve_mask(input_ids, attention_mask)
        logits, attention = self.attention(self.encode(input_ids, mask), mask, self.config.return_attention)
        loss = None if labels is None else coding_loss(logits, labels) + self.regulariser(labels)
        return CodingOutput(loss=loss, logits=logits, attention=attention)

    def regulariser(self, labels: Tensor) -> Tensor | float:
        """Extra loss term given ``(batch_size, num_codes)`` labels; none for CAML."""
        return 0.0


@dataclass
class DrCamlConfig(CamlConfig):
    """DR-CAML = CAML + description regulariser (Mullenbach et al. 2018, §2.3)."""

    # (num_codes, desc_len) long token ids of each code's ICD-9 description, 0-padded, built by the caller
    description_ids: Tensor | None = field(default=None, repr=False)
    description_lambda: float = 0.01  # λ (the brief's CAML value; tune on dev)
    description_reduction: str = "caml"  # "caml": mean over docs of Σ_gold mean_dims (β_l - z_l)² (CAML code);
    # "mean": mean over (doc, gold code) pairs of ||β_l - z_l||²

    def __post_init__(self) -> None:
        super().__post_init__()
        ids = self.description_ids
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError("DrCamlConfig.description_ids must be a (num_codes, desc_len) long tensor")
        if ids.shape[0] != self.num_codes:
            raise ValueError(f"description_ids has {ids.shape[0]} rows, num_codes is {self.num_codes}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size):
            raise ValueError("description_ids must be token ids in [0, vocab_size)")
        if self.description_lambda < 0:
            raise ValueError(f"description_lambda must be >= 0, got {self.description_lambda!r}")
        if self.description_reduction not in ("caml", "mean"):
            raise ValueError(f"description_reduction must be 'caml' or 'mean', got {self.description_reduction!r}")


class DrCamlModel(CamlModel):
    """DR-CAML: CAML whose per-label output vectors β_l are pulled towards an encoding of code l's description.

    Args:
        config: :class:`DrCamlConfig` (``description_ids`` required).
        embeddings: optional ``(vocab_size, embed_dim)`` word2vec vectors (also initialise the description
            embedding, a separate copy as in CAML's code).
    """

    def __init__(self, config: DrCamlConfig, embeddings: Tensor | None = None):
        super().__init__(config, embeddings)
        self.register_buffer("description_ids", config.description_ids.clone(), persistent=False)
        self.desc_embed = build_embedding(config, embeddings, dropout=0.0)
        self.desc_conv = SameConv1d(config.embed_dim, config.num_filters, config.kernel_size)
        self.desc_output = nn.Linear(config.num_filters, config.num_filters)

    def describe(self, codes: Tensor) -> Tensor:
        """``(n,)`` code indices -> ``(n, num_filters)`` description vectors z (conv, max-pool, tanh, linear)."""
        ids = self.description_ids[codes]  # (n, L)
        mask = ids.ne(PAD_ID)
        x = self.desc_embed(ids).masked_fill(~mask[:, :, None], 0.0)
        pooled = conv_max_pool(x, self.desc_conv.weight, mask) + self.desc_conv.bias
        return self.desc_output(torch.tanh(pooled))

    def regulariser(self, labels: Tensor) -> Tensor | float:
        """``λ · dist(β_l, z_l)`` over the gold codes of the batch (0 when there are none).

        Args:
            labels: ``(batch_size, num_codes)`` multi-hot.
        """
        gold = labels > 0.5
        if self.config.description_lambda == 0 or not bool(gold.any()):
            return 0.0
        codes = gold.any(dim=0).nonzero().squeeze(1)  # codes present in the batch, each encoded once
        sq = (self.attention.output_weight[codes].float() - self.describe(codes).float()).pow(2)  # (n, F)
        per_code = sq.mean(dim=1) if self.config.description_reduction == "caml" else sq.sum(dim=1)
        pairs = gold[:, codes].float()  # (B, n)
        if self.config.description_reduction == "caml":
            term = (pairs @ per_code).mean()  # Σ over each doc's gold codes, mean over docs
        else:
            term = (pairs @ per_code).sum() / pairs.sum()
        return self.config.description_lambda * term
