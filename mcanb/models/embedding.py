"""Word embedding layer shared by the CNN family and LAAT.

Initialised from word2vec vectors (CBOW, 100 dimensions, as in CAML, Mullenbach et al. 2018), row 0 is PAD and
kept at zero, the last row is UNK. ``freeze=True`` gives the static embeddings of the paper's retrained CNN
(Ji et al. 2021, §4.4: "word2vec embeddings are static"); ``freeze=False`` fine-tunes them (CAML, MultiResCNN).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

PAD_ID = 0


def check_embeddings(embeddings: Tensor, vocab_size: int, embed_dim: int) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is a float matrix of shape ``(vocab_size, embed_dim)``."""
    if not isinstance(embeddings, Tensor) or embeddings.dim() != 2 or not embeddings.is_floating_point():
        raise ValueError("embeddings must be a float tensor of shape (vocab_size, embed_dim)")
    if tuple(embeddings.shape) != (vocab_size, embed_dim):
        raise ValueError(
            f"embeddings have shape {tuple(embeddings.shape)}, config expects ({vocab_size}, {embed_dim})"
        )


class WordEmbedding(nn.Module):
    """Token ids -> dropout(embedding) with the PAD row (id 0) fixed at zero.

    Args:
        vocab_size: rows, PAD (0) and UNK (last) included.
        embed_dim: vector size.
        embeddings: optional ``(vocab_size, embed_dim)`` initial vectors (copied; row 0 is zeroed).
        freeze: keep the vectors fixed (no gradient).
        dropout: dropout probability applied to the looked-up vectors (CAML's ``embed_drop``).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        embeddings: Tensor | None = None,
        freeze: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        if embeddings is not None:
            check_embeddings(embeddings, vocab_size, embed_dim)
            with torch.no_grad():
                self.embedding.weight.copy_(embeddings)
        with torch.no_grad():
            self.embedding.weight[PAD_ID].zero_()
        self.embedding.weight.requires_grad_(not freeze)
        self.dropout = nn.Dropout(dropout)

    @property
    def weight(self) -> Tensor:
        """``(vocab_size, embed_dim)`` the embedding matrix."""
        return self.embedding.weight

    def forward(self, input_ids: Tensor) -> Tensor:
        """``(batch_size, seq_len)`` long ids -> ``(batch_size, seq_len, embed_dim)`` vectors."""
        return self.dropout(self.embedding(input_ids))


def resolve_mask(input_ids: Tensor, attention_mask: Tensor | None) -> Tensor:
    """``(batch_size, seq_len)`` bool mask of real tokens: ``attention_mask`` as bool, or ``input_ids != PAD``."""
    if attention_mask is None:
        return input_ids.ne(PAD_ID)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    return attention_mask.bool()


def document_rows(mask: Tensor | None, b: int) -> slice | Tensor | None:
    """Where document ``b``'s real tokens are, in the cheapest indexable form.

    Args:
        mask: ``(batch_size, seq_len)`` bool, or ``None`` (everything real).
        b: document index.

    Returns:
        ``None`` if the document has no real token; ``slice(0, n)`` if its real tokens are a prefix (right
        padding, the usual case; indexing with it is a free view); otherwise a ``(n,)`` long tensor of positions.
    """
    if mask is None:
        return slice(None)
    row = mask[b]
    n = int(row.sum())
    if n == 0:
        return None
    if bool(row[:n].all()):
        return slice(0, n)
    return row.nonzero().squeeze(1)


def padding_mask(mask: Tensor) -> Tensor | None:
    """``mask`` if some position is padding, else ``None`` (lets layers skip masking passes; one host sync)."""
    return None if bool(mask.all()) else mask
