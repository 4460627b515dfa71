"""A planted-signal coding task and a plain training loop, for tests that models *learn* (tests/test_models*.py).

Each code owns two keyword ids; a document of random filler gets one of its gold codes' keywords with
probability ``p_keyword`` and, rarely, a keyword of a code it does not have. Code frequencies are Zipf-like, so the
most-frequent-codes baseline is a real (weak) competitor. ``fit_and_score`` takes any model that follows the
mcanb contract (``model(input_ids, attention_mask, labels) -> CodingOutput``), so a real toy fixture can be
plugged in later as ``Coding(ids, labels, texts, vocab_size)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

PAD = 0


@dataclass
class Coding:
    """A coding data set: token-id documents (no padding), multi-hot labels, the same documents as text."""

    ids: list[np.ndarray]  # each (n_tokens,) int64, ids in [1, vocab_size - 1]
    labels: np.ndarray  # (n_docs, num_codes) float32
    texts: list[str]  # "w17 w3 ..." (one word per id), for the scikit-learn baselines
    vocab_size: int

    @property
    def num_codes(self) -> int:
        return self.labels.shape[1]


def make_planted(
    n_docs: int,
    seed: int,
    vocab_size: int = 300,
    num_codes: int = 20,
    min_len: int = 60,
    max_len: int = 200,
    p_keyword: float = 0.8,
    p_distractor: float = 0.02,
) -> Coding:
    """``n_docs`` documents of the planted task (same code frequencies and keywords for every seed)."""
    rng = np.random.default_rng(seed)
    keywords = 1 + np.arange(2 * num_codes).reshape(num_codes, 2)  # code c owns ids 1+2c, 2+2c
    filler_lo, filler_hi = 1 + 2 * num_codes, vocab_size - 1  # last id is UNK, never emitted
    freq = np.minimum(0.6, 0.6 / np.arange(1, num_codes + 1) ** 0.7)  # Zipf-ish, 0.6 … 0.07
    ids, labels = [], np.zeros((n_docs, num_codes), dtype=np.float32)
    for i in range(n_docs):
        gold = rng.random(num_codes) < freq
        if not gold.any():
            gold[rng.choice(num_codes, p=freq / freq.sum())] = True
        labels[i] = gold
        doc = rng.integers(filler_lo, filler_hi, size=rng.integers(min_len, max_len + 1))
        planted = gold & (rng.random(num_codes) < p_keyword) | ~gold & (rng.random(num_codes) < p_distractor)
        for c in np.flatnonzero(planted):
            doc[rng.integers(len(doc))] = keywords[c, rng.integers(2)]
        ids.append(doc.astype(np.int64))
    texts = [" ".join(f"w{t}" for t in doc) for doc in ids]
    return Coding(ids, labels, texts, vocab_size)


def pad_batch(docs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id arrays: ``(input_ids (B, T) long, attention_mask (B, T) bool)``."""
    T = max(len(d) for d in docs)
    ids = torch.zeros(len(docs), T, dtype=torch.long)
    for i, d in enumerate(docs):
        ids[i, : len(d)] = torch.from_numpy(d)
    return ids, ids.ne(PAD)


def batches(data: Coding, batch_size: int, rng: np.random.Generator | None = None):
    """Yield ``(input_ids, attention_mask, labels)``; shuffled when ``rng`` is given."""
    order = np.arange(len(data.ids)) if rng is None else rng.permutation(len(data.ids))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        ids, mask = pad_batch([data.ids[i] for i in idx])
        yield ids, mask, torch.from_numpy(data.labels[idx])


def micro_f1(y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> float:
    """Micro-averaged F1 of ``y_score >= threshold`` against multi-hot ``y_true`` (both ``(n_docs, num_codes)``)."""
    pred, gold = y_score >= threshold, y_true > 0.5
    denom = pred.sum() + gold.sum()
    return float(2 * (pred & gold).sum() / denom) if denom else 0.0


def precision_at_k(y_true: np.ndarray, y_score: np.ndarray, k: int) -> float:
    """Mean over documents of |gold ∩ top-k| / k."""
    top = np.argsort(-y_score, axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(y_true > 0.5, top, axis=1).mean())


@torch.inference_mode()
def predict_proba(model: torch.nn.Module, data: Coding, batch_size: int = 32) -> np.ndarray:
    """``(n_docs, num_codes)`` sigmoid scores in eval mode."""
    model.eval()
    out = [torch.sigmoid(model(ids, mask).logits).float() for ids, mask, _ in batches(data, batch_size)]
    return torch.cat(out).numpy()


def fit_and_score(
    model: torch.nn.Module, train: Coding, dev: Coding, epochs: int, lr: float, batch_size: int = 16, seed: int = 0
) -> dict:
    """Train with Adam for ``epochs`` epochs; return per-epoch mean train losses and dev micro-F1 / P@k.

    Returns:
        ``{"epoch_losses": [...], "micro_f1": float, "p_at_k": float, "k": int, "scores": (n_dev, C) array}``
        with k the rounded mean number of gold codes per training document.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    epoch_losses = []
    for _ in range(epochs):
        model.train()
        losses = []
        for ids, mask, labels in batches(train, batch_size, rng):
            optimizer.zero_grad()
            loss = model(ids, mask, labels).loss
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
    scores = predict_proba(model, dev)
    k = max(1, int(round(train.labels.sum(1).mean())))
    return {
        "epoch_losses": epoch_losses,
        "micro_f1": micro_f1(dev.labels, scores),
        "p_at_k": precision_at_k(dev.labels, scores, k),
        "k": k,
        "scores": scores,
    }
