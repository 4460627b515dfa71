"""LAAT: BiLSTM + label attention (Vu, Nguyen & Nguyen, "A Label Attention Model for ICD Coding from Clinical
Text", IJCAI 2020). Beyond the paper we reproduce; included as the strongest non-PLM baseline in
docs/reference.md §Published numbers.

embed (dropout) -> BiLSTM (u units per direction) -> H ``(T, 2u)`` -> ``Z = tanh(W·H)`` ``(T, d_a)`` ->
``A = softmax_t(U·Zᵀ)`` -> ``V = A·H`` -> per-label output.

Padding never enters the recurrence: the forward direction reads right-padded rows as they are (padding comes
after the last real token), and the backward direction reads each row reversed *within its own length*, so it
starts at the document's last real token. This is exact, like packed sequences, but runs torch's fused LSTM
kernel on plain tensors; on CPU the packed-sequence backward spends most of its time zero-filling (about 5× slower).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .embedding import resolve_mask
from .label_attention import LabelAttention, check_impl
from .layers import build_embedding, check_dropout, check_positive
from .outputs import CodingOutput, coding_loss


@dataclass
class LaatConfig:
    """Settings of LAAT; defaults as the brief reads Vu et al. 2020 (check §4.3 before quoting them)."""

    vocab_size: int  # PAD (0) and UNK (last) included
    num_codes: int  # 50 (top-50) or 8,921 (full)
    embed_dim: int = 100  # word2vec CBOW 100-d (CAML preprocessing, reused by LAAT)
    hidden_size: int = 256  # u: LSTM units per direction (Vu et al. 2020)
    projection_dim: int = 512  # d_a: size of Z = tanh(W·H) (Vu et al. 2020)
    num_layers: int = 1  # one BiLSTM layer (Vu et al. 2020)
    dropout: float = 0.3  # embedding dropout (Vu et al. 2020)
    freeze_embeddings: bool = False  # LAAT fine-tunes its word2vec vectors
    attention_impl: str = "auto"  # LabelAttention implementation: "auto" | "dense" | "blocked" (same numbers)
    return_attention: bool = False  # put the (batch, codes, seq_len) weights in CodingOutput.attention

    def __post_init__(self) -> None:
        check_positive(
            self, "vocab_size", "num_codes", "embed_dim", "hidden_size", "projection_dim", "num_layers"
        )
        check_dropout(self.dropout)
        check_impl(self.attention_impl)


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``out[b, t] = x[b, index[b, t]]`` for ``x`` ``(B, T, d)`` and ``index`` ``(B, T)``."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


class LaatModel(nn.Module):
    """LAAT: BiLSTM encoder + label attention with a tanh projection + per-label output.

    Args:
        config: :class:`LaatConfig`.
        embeddings: optional ``(vocab_size, embed_dim)`` word2vec vectors.
    """

    def __init__(self, config: LaatConfig, embeddings: Tensor | None = None):
        super().__init__()
        self.config = config
        self.embed = build_embedding(config, embeddings)
        u = config.hidden_size
        self.lstm_forward = nn.ModuleList(
            nn.LSTM(config.embed_dim if i == 0 else 2 * u, u, batch_first=True) for i in range(config.num_layers)
        )
        self.lstm_backward = nn.ModuleList(
            nn.LSTM(config.embed_dim if i == 0 else 2 * u, u, batch_first=True) for i in range(config.num_layers)
        )
        self.attention = LabelAttention(
            2 * config.hidden_size, config.num_codes, projection_dim=config.projection_dim,
            impl=config.attention_impl,
        )

    def encode(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """``(B, T)`` ids -> ``(B, T, 2·hidden_size)`` BiLSTM states (zero at padding).

        Real tokens must come first in each row (right padding): the backward direction relies on it.
        """
        lengths = mask.sum(dim=1)
        if not bool((mask == (torch.arange(mask.shape[1], device=mask.device) < lengths[:, None])).all()):
            raise ValueError("LAAT needs right-padded inputs: each attention_mask row must be ones then zeros")
        T = input_ids.shape[1]
        t = torch.arange(T, device=mask.device)
        reverse = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, T), its own inverse
        x = self.embed(input_ids)
        for fwd, bwd in zip(self.lstm_forward, self.lstm_backward):
            h_fwd = fwd(x)[0]
            h_bwd = _gather_time(bwd(_gather_time(x, reverse))[0], reverse)
            x = torch.cat([h_fwd, h_bwd], dim=2)
        return x.masked_fill(~mask[:, :, None], 0.0)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> CodingOutput:
        """Score every code for every document.

        Args:
            input_ids: ``(batch_size, seq_len)`` long, 0 = PAD, right-padded.
            attention_mask: ``(batch_size, seq_len)`` bool/int, nonzero on real tokens; default ``input_ids != 0``.
            labels: ``(batch_size, num_codes)`` multi-hot, optional.

        Returns:
            :class:`CodingOutput` (``attention`` only when ``config.return_attention``).
        """
        mask = resolve_mask(input_ids, attention_mask)
        logits, attention = self.attention(self.encode(input_ids, mask), mask, self.config.return_attention)
        loss = None if labels is None else coding_loss(logits, labels)
        return CodingOutput(loss=loss, logits=logits, attention=attention)
