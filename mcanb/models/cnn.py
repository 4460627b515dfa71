"""The plain text CNN (Kim 2014), the paper's retrained CNN baseline.

Kim, "Convolutional Neural Networks for Sentence Classification", EMNLP 2014: word vectors -> one 1-D convolution
-> tanh -> max-pool over time -> dropout -> linear. Settings of the paper's retrained CNN (Ji, Hölttä & Marttinen
2021, §4.4): width 4, 500 filters, dropout 0.2, static word2vec, Adam lr 0.003. CAML's code (Mullenbach et al.
2018, ``VanillaConv``) applies the dropout to the embeddings, Kim 2014 to the pooled features: ``dropout_position``.

The convolution, max-pool and embedding building blocks it shares with CAML, DR-CAML, MultiResCNN and LAAT
are in :mod:`mcanb.models.layers`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .embedding import resolve_mask
from .layers import SameConv1d, build_embedding, check_dropout, check_positive, conv_max_pool, embed_conv_max_pool
from .outputs import CodingOutput, coding_loss


@dataclass
class CnnConfig:
    """Settings of the Kim (2014) CNN; defaults are the paper's retrained CNN (Ji et al. 2021, §4.4)."""

    vocab_size: int  # PAD (0) and UNK (last) included; docs/reference.md §Preprocessing: 51,917 terms + 2 on MIMIC-III
    num_codes: int  # 50 (top-50) or 8,921 (full, CAML label space)
    embed_dim: int = 100  # word2vec CBOW 100-d (CAML; docs/reference.md §Preprocessing)
    kernel_size: int = 4  # "the filter size is 4" (Ji et al. 2021, §4.4)
    num_filters: int = 500  # "the number of filters is 500" (ibid.)
    dropout: float = 0.2  # "the dropout probability is 0.2" (ibid.)
    dropout_position: str = "embedding"  # "embedding" (CAML code, VanillaConv) | "pooled" (Kim 2014)
    freeze_embeddings: bool = True  # "word2vec embeddings are static" (ibid.)

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "num_codes", "embed_dim", "kernel_size", "num_filters")
        check_dropout(self.dropout)
        if self.dropout_position not in ("embedding", "pooled"):
            raise ValueError(f"dropout_position must be 'embedding' or 'pooled', got {self.dropout_position!r}")


class CnnModel(nn.Module):
    """Kim (2014) CNN: embed -> conv(k) -> max over time -> tanh -> linear, one logit per code.

    Args:
        config: :class:`CnnConfig`.
        embeddings: optional ``(vocab_size, embed_dim)`` word2vec vectors.
    """

    def __init__(self, config: CnnConfig, embeddings: Tensor | None = None):
        super().__init__()
        self.config = config
        emb_dropout = config.dropout if config.dropout_position == "embedding" else 0.0
        self.embed = build_embedding(config, embeddings, dropout=emb_dropout)
        self.conv = SameConv1d(config.embed_dim, config.num_filters, config.kernel_size)
        self.dropout = nn.Dropout(config.dropout if config.dropout_position == "pooled" else 0.0)
        self.output = nn.Linear(config.num_filters, config.num_codes)
        nn.init.xavier_uniform_(self.output.weight)  # CAML code initialises its CNN's output layer this way

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> CodingOutput:
        """Score every code for every document.

        Args:
            input_ids: ``(batch_size, seq_len)`` long, 0 = PAD.
            attention_mask: ``(batch_size, seq_len)`` bool/int, nonzero on real tokens; default ``input_ids != 0``.
            labels: ``(batch_size, num_codes)`` multi-hot, optional.

        Returns:
            :class:`CodingOutput` with ``logits`` ``(batch_size, num_codes)`` and ``loss`` when labels are given.
        """
        mask = resolve_mask(input_ids, attention_mask)
        # max_t tanh(z_t + b) == tanh(max_t z_t + b): pool first, then one tanh per filter
        if self._fused_inference(input_ids):
            pooled = embed_conv_max_pool(self.embed.weight, input_ids, mask, self.conv.weight)  # (B, F)
        else:
            x = self.embed(input_ids).masked_fill(~mask[:, :, None], 0.0)  # (B, T, E)
            pooled = conv_max_pool(x, self.conv.weight, mask)  # (B, F)
        h = torch.tanh(pooled + self.conv.bias.to(pooled.dtype))
        logits = self.output(self.dropout(h))
        return CodingOutput(loss=None if labels is None else coding_loss(logits, labels), logits=logits)

    def _fused_inference(self, input_ids: Tensor) -> bool:
        """Whether the fused CPU inference path applies: eval mode, no gradient, no autocast, on CPU."""
        dev = input_ids.device.type
        return (dev == "cpu" and not self.training and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled(dev))
