"""MultiResCNN (Li & Yu, "ICD Coding from Clinical Text Using Multi-Filter Residual Convolutional Neural Network",
AAAI 2020).

embed (dropout 0.2) -> for each filter size k in (3, 5, 9, 15, 19, 25): conv k (d_emb -> d_emb) + tanh, then one
residual block ``tanh(BN(conv_k(tanh(BN(conv_k(x))))) + BN(conv_1(x)))`` -> dropout, 50 maps each; concatenate
(300 dims) -> CAML label-wise attention + per-label output. Adam lr 1e-4 (docs/reference.md §Models and
hyperparameters).

Batch norm statistics are taken over real tokens only (``MaskedBatchNorm``), so padding never changes a
document's representation, in training as in evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .embedding import padding_mask, resolve_mask
from .label_attention import LabelAttention, check_impl
from .layers import SameConv1d, build_embedding, check_dropout, check_positive, same_conv
from .outputs import CodingOutput, coding_loss


class MaskedBatchNorm(nn.Module):
    """BatchNorm over the channels of ``(batch_size, seq_len, channels)`` whose statistics skip padded positions.

    Args:
        num_features: channels.  eps, momentum: as ``torch.nn.BatchNorm1d``.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``(B, T, C)`` -> ``(B, T, C)`` float32; ``mask`` ``(B, T)`` bool marks the positions that count."""
        x = x.float()
        if self.training:
            m = torch.ones_like(x[:, :, :1]) if mask is None else mask[:, :, None].float()
            n = m.sum().clamp_min(1.0)
            mean = (x * m).sum(dim=(0, 1)) / n
            var = ((x - mean).pow(2) * m).sum(dim=(0, 1)) / n
            with torch.no_grad():
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return x * scale + (self.bias - mean * scale)


class MultiResResidualBlock(nn.Module):
    """One MultiResCNN residual block: ``tanh(left(x) + shortcut(x))`` then dropout.

    Args:
        in_dim: input channels.  out_dim: output channels.  kernel_size: width of both left convolutions.
        dropout: dropout on the block output.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, dropout: float):
        super().__init__()
        self.conv1 = SameConv1d(in_dim, out_dim, kernel_size, bias=False)
        self.bn1 = MaskedBatchNorm(out_dim)
        self.conv2 = SameConv1d(out_dim, out_dim, kernel_size, bias=False)
        self.bn2 = MaskedBatchNorm(out_dim)
        self.shortcut = SameConv1d(in_dim, out_dim, 1, bias=False)
        self.bn_shortcut = MaskedBatchNorm(out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """``(B, T, in_dim)`` -> ``(B, T, out_dim)``; ``mask`` ``(B, T)`` bool or ``None`` (no padding)."""
        if mask is not None:
            x = x.masked_fill(~mask[:, :, None], 0.0)
        if not self.training:  # batch norm folded into the convolutions: no normalisation passes
            left = torch.tanh(_conv_bn(self.conv1, self.bn1, x))
            left = _conv_bn(self.conv2, self.bn2, left, mask)
            return torch.tanh(left + _conv_bn(self.shortcut, self.bn_shortcut, x))
        left = torch.tanh(self.bn1(self.conv1(x), mask))
        left = self.bn2(self.conv2(left, mask), mask)
        return self.dropout(torch.tanh(left + self.bn_shortcut(self.shortcut(x), mask)))


def _conv_bn(conv: SameConv1d, bn: MaskedBatchNorm, x: Tensor, mask: Tensor | None = None) -> Tensor:
    """``bn(conv(x))`` in eval mode as one convolution with scaled weights and a bias."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    if mask is not None:
        x = x.masked_fill(~mask[:, :, None], 0.0)
    bias = shift if conv.bias is None else shift + conv.bias * scale
    return same_conv(x, conv.weight * scale, bias)


@dataclass
class MultiResCnnConfig:
    """Settings of MultiResCNN; defaults from Li & Yu 2020 (docs/reference.md §Models and hyperparameters)."""

    vocab_size: int  # PAD (0) and UNK (last) included
    num_codes: int  # 50 (top-50) or 8,921 (full)
    embed_dim: int = 100  # word2vec CBOW 100-d (CAML preprocessing, reused by MultiResCNN)
    filter_sizes: tuple[int, ...] = (3, 5, 9, 15, 19, 25)  # Li & Yu 2020: six channels
    num_filters: int = 50  # Li & Yu 2020: 50 maps per channel (300 after concatenation)
    dropout: float = 0.2  # Li & Yu 2020: dropout 0.2 (embeddings and residual blocks)
    freeze_embeddings: bool = False  # Li & Yu fine-tune; the paper's retraining used static vectors (§3): set True
    attention_impl: str = "auto"  # LabelAttention implementation: "auto" | "dense" | "blocked" (same numbers)
    return_attention: bool = False  # put the (batch, codes, seq_len) weights in CodingOutput.attention

    def __post_init__(self) -> None:
        check_positive(self, "vocab_size", "num_codes", "embed_dim", "num_filters")
        self.filter_sizes = tuple(self.filter_sizes)
        if not self.filter_sizes or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0
                                        for k in self.filter_sizes):
            raise ValueError(f"filter_sizes must be positive ints, got {self.filter_sizes!r}")
        check_dropout(self.dropout)
        check_impl(self.attention_impl)


class MultiResCnnModel(nn.Module):
    """MultiResCNN: multi-filter convolutions with residual blocks, then CAML attention on their concatenation.

    Args:
        config: :class:`MultiResCnnConfig`.
        embeddings: optional ``(vocab_size, embed_dim)`` word2vec vectors.
    """

    def __init__(self, config: MultiResCnnConfig, embeddings: Tensor | None = None):
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.embed = build_embedding(config, embeddings)
        self.convs = nn.ModuleList(SameConv1d(d, d, k) for k in config.filter_sizes)
        self.blocks = nn.ModuleList(
            MultiResResidualBlock(d, config.num_filters, k, config.dropout) for k in config.filter_sizes
        )
        hidden = config.num_filters * len(config.filter_sizes)
        self.attention = LabelAttention(hidden, config.num_codes, impl=config.attention_impl)

    def encode(self, input_ids: Tensor, mask: Tensor) -> Tensor:
        """``(B, T)`` ids -> ``(B, T, num_filters · len(filter_sizes))`` hidden states."""
        mask = padding_mask(mask)
        x = self.embed(input_ids)
        if mask is not None:
            x = x.masked_fill(~mask[:, :, None], 0.0)
        channels = [block(torch.tanh(conv(x)), mask) for conv, block in zip(self.convs, self.blocks)]
        return torch.cat(channels, dim=2)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None
    ) -> CodingOutput:
        """Score every code for every document.

        Args:
            input_ids: ``(batch_size, seq_len)`` long, 0 = PAD.
            attention_mask: ``(batch_size, seq_len)`` bool/int, nonzero on real tokens; default ``input_ids != 0``.
            labels: ``(batch_size, num_codes)`` multi-hot, optional.

        Returns:
            :class:`CodingOutput` (``attention`` only when ``config.return_attention``).
        """
        mask = resolve_mask(input_ids, attention_mask)
        logits, attention = self.attention(self.encode(input_ids, mask), mask, self.config.return_attention)
        loss = None if labels is None else coding_loss(logits, labels)
        return CodingOutput(loss=loss, logits=logits, attention=attention)
