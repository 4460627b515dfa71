"""word2vec embeddings for the CNN family (gensim CBOW, CAML's settings), aligned to our vocabulary.

CAML trains CBOW with 100 dimensions, window 5, min_count 0 and 5 epochs, then L2-normalises each vector.
Two things differ from a bare gensim call, both on purpose:

* gensim silently cuts every training "sentence" after 10,000 tokens; we feed long documents in pieces
  of at most 10,000 tokens so nothing is cut (``caml_compat=True`` keeps CAML's cut);
* gensim seeds each vector from Python's salted ``hash`` unless told otherwise, so runs differ between
  processes; we pass a stable hash, and with ``w2v_workers=1`` two runs give identical vectors.

Row 0 of the matrix is PAD (zeros), rows 1..V the vocabulary in order, row V+1 UNK (a seeded random unit
vector). Explained in ``notebooks/01_preprocess.ipynb``, §5.
"""
from __future__ import annotations

import zlib

import numpy as np

GENSIM_MAX_WORDS = 10_000  # gensim.models.word2vec.MAX_WORDS_IN_BATCH


def stable_hash(s: str) -> int:
    """A hash that is the same in every process (gensim's default, ``hash``, is salted per process)."""
    return zlib.crc32(s.encode("utf-8"))


def _sentences(texts: list[str], cut: bool) -> list[list[str]]:
    out = []
    for t in texts:
        toks = t.split()
        if cut:
            out.append(toks)
        else:
            out.extend(toks[i:i + GENSIM_MAX_WORDS] for i in range(0, max(len(toks), 1), GENSIM_MAX_WORDS))
    return out


def train_word2vec(texts: list[str], vocab: list[str], cfg) -> np.ndarray:
    """CBOW vectors for ``vocab`` as a float32 matrix (len(vocab) + 2, dim): PAD, vocab..., UNK."""
    from gensim.models import Word2Vec

    model = Word2Vec(sentences=_sentences(texts, cut=cfg.caml_compat), vector_size=cfg.w2v_dim,
                     window=cfg.w2v_window, min_count=cfg.w2v_min_count, sg=0, epochs=cfg.w2v_epochs,
                     workers=cfg.w2v_workers, seed=cfg.seed, hashfxn=stable_hash)
    return embedding_matrix(model.wv, vocab, cfg.w2v_dim, cfg.seed)


def embedding_matrix(wv, vocab: list[str], dim: int, seed: int) -> np.ndarray:
    """Rows aligned to token ids; words missing from ``wv`` get a seeded random unit vector like UNK."""
    rng = np.random.default_rng(seed)
    emb = np.zeros((len(vocab) + 2, dim), dtype=np.float32)
    for i, w in enumerate(vocab, start=1):
        emb[i] = wv[w] if w in wv.key_to_index else rng.standard_normal(dim)
    emb[-1] = rng.standard_normal(dim)
    norms = np.linalg.norm(emb[1:], axis=1, keepdims=True)
    emb[1:] /= norms + 1e-6
    return emb
