"""How contextual an encoder is: how much its final states depend on the other pieces of their segment.

A head that reads only ``[CLS]`` (BERT-trun and BERT-hier with an FCN, Ji et al. 2021 §3.2) learns only what the
encoder's attention gathered into that state. :func:`context_probe` measures it on real text; notebook 02 shows it for
every encoder (:func:`mcanb.bert_scores.pretraining_table`) and docs/encoders.md, "Why the toy's FCN rows stay near the
floor", explains what the toy's local encoders give against a pretrained one.
"""
from __future__ import annotations

from typing import Sequence

import torch


def context_probe(encoder: torch.nn.Module, tokenizer, texts: Sequence[str], *, length: int = 64,
                  position: int = 5) -> dict[str, float]:
    """How contextual an encoder's final states are on ``texts``, in % of the mean state length.

    Each text's first ``length`` tokens (``[CLS]`` pieces ``[SEP]``) are encoded as they are and with the piece at
    ``position`` masked (``[MASK]``; ``[UNK]`` where there is none). ``neighbour_move``: how far the next piece's final
    state moves; ``cls_move``: how far the ``[CLS]`` state moves; ``cls_spread``: how far the texts' ``[CLS]`` states
    lie from their mean. An encoder whose states ignore their context (a table of word-piece vectors) gives 0, 0 and
    0; a pretrained BERT-sized encoder tens of percent (docs/encoders.md, "Why the toy's FCN rows stay near the
    floor"). Texts with fewer than ``position + 2`` pieces are left out; at least one must remain. ``length`` is cut
    to the encoder's positions (a longer segment is refused where the model is built, with its own message)."""
    length = min(length, int(getattr(encoder.config, "max_position_embeddings", None) or length))
    ids = [p[: length - 2] for p in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    ids = [[tokenizer.cls_token_id, *p, tokenizer.sep_token_id] for p in ids if len(p) >= position + 2]
    if not ids:
        raise ValueError(f"context_probe needs a text of at least {position + 2} word pieces")
    width = max(map(len, ids))
    batch = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
    for i, row in enumerate(ids):
        batch[i, : len(row)] = torch.tensor(row)
    mask = (batch != tokenizer.pad_token_id).long()
    masked = batch.clone()
    masked[:, position] = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.unk_token_id
    was_training = encoder.training
    encoder.eval()
    with torch.no_grad():
        states = encoder(input_ids=batch, attention_mask=mask).last_hidden_state.float()
        moved = encoder(input_ids=masked, attention_mask=mask).last_hidden_state.float()
    encoder.train(was_training)
    scale = states[mask.bool()].norm(dim=-1).mean()
    cls = states[:, 0]

    def share(x: torch.Tensor) -> float:
        return round(float(100 * x.norm(dim=-1).mean() / scale), 2)

    return {"neighbour_move": share(states[:, position + 1] - moved[:, position + 1]),
            "cls_move": share(cls - moved[:, 0]), "cls_spread": share(cls - cls.mean(0))}
