"""The one output type every mcanb coding model returns (the ``ModelOutput`` habit of ``modeling_bert.py``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


@dataclass(kw_only=True)
class CodingOutput:
    """What ``model(input_ids, attention_mask, labels)`` returns.

    Attributes:
        loss: scalar, mean BCE-with-logits over ``(batch_size, num_codes)`` (plus a model's own regulariser,
            e.g. DR-CAML's); ``None`` when no labels were given.
        logits: ``(batch_size, num_codes)`` raw scores; ``sigmoid(logits) >= 0.5`` is the CAML decision rule.
        attention: ``(batch_size, num_codes, seq_len)`` label-wise attention weights (rows sum to 1 over
            real tokens, 0 on padding), only for label-attention models built with ``return_attention=True``.
    """

    loss: Tensor | None = None
    logits: Tensor
    attention: Tensor | None = None


def coding_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean binary cross-entropy with logits, in float32.

    Args:
        logits: ``(batch_size, num_codes)`` raw scores.
        labels: ``(batch_size, num_codes)`` multi-hot (any dtype).
    """
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
