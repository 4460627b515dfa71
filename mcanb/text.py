"""Tokenisation: CAML's rule by default, the letters-only rule of LAAT as a named option.

CAML (Mullenbach et al. 2018) runs ``nltk.tokenize.RegexpTokenizer(r"\\w+")`` over each discharge
summary, lowercases the tokens and drops those for which ``str.isnumeric()`` is true (``500`` goes,
``250mg`` stays). ``RegexpTokenizer`` with ``gaps=False`` is ``re.findall(pattern, text)``, so we call
the regular-expression engine directly and *pin* it: nltk up to 3.10.2 used Python's ``re``; from 3.10.3
it uses the third-party ``regex`` module, whose ``\\w`` differs (``re`` matches the superscript in ``m²``
and splits ``e`` + combining accent; ``regex`` drops ``²`` and keeps the accent). CAML ran on ``re``, which
is our default; ``engine="regex"`` gives what a current nltk gives. ``tests/test_text.py`` shows both.

Token rules (``token_rule``):

* ``"caml"``: drop tokens that are entirely numeric (``str.isnumeric``);
* ``"alpha"``: keep only tokens that contain at least one letter (LAAT; the paper's "non-alphabetic
  characters removed").

:func:`tokenize_corpus` tokenises a whole corpus on several processes. A note of any length is accepted:
one over :data:`CHUNK_CHARS` is tokenised piece by piece, with the same result, so that memory stays near
its own size (:func:`tokenize_counted`). Explained in ``notebooks/01_preprocess.ipynb``, §2.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

TOKEN_RULES = ("caml", "alpha")
ENGINES = ("re", "regex")
PATTERN = r"\w+"
# In ASCII text a \w+ run is numeric iff it is all digits, so "a \w+ run with at least one non-digit"
# finds exactly the tokens the CAML rule keeps, in one pass and without a Python-level test per token.
# It only ever sees ASCII text, where re.ASCII's classes equal the Unicode ones (and match ~30 % faster).
_ASCII_KEEP = re.compile(r"\d*[^\W\d]\w*", re.ASCII)


@lru_cache(maxsize=None)
def _findall(engine: str) -> Callable[[str], list[str]]:
    if engine == "re":
        return re.compile(PATTERN, re.UNICODE | re.MULTILINE | re.DOTALL).findall
    if engine == "regex":
        import regex  # nltk >= 3.10.3's engine; installed with nltk

        return regex.compile(PATTERN, regex.UNICODE | regex.MULTILINE | regex.DOTALL).findall
    raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def _keep(token: str, rule: str) -> bool:
    if rule == "caml":
        return not token.isnumeric()
    return any(ch.isalpha() for ch in token)


def tokenize(text: str, token_rule: str = "caml", engine: str = "re") -> list[str]:
    """Lowercased ``\\w+`` tokens of ``text`` under ``token_rule``.

    Example: ``tokenize("Metoprolol 25 mg, 250mg [**2151-7-16**]") == ["metoprolol", "mg", "250mg"]``.
    """
    if token_rule not in TOKEN_RULES:
        raise ValueError(f"token_rule must be one of {TOKEN_RULES}, got {token_rule!r}")
    return [t.lower() for t in _findall(engine)(text) if _keep(t, token_rule)]


def tokenize_joined(text: str, token_rule: str = "caml", engine: str = "re") -> str:
    """:func:`tokenize` joined with single spaces: the form documents are stored in (fast path).

    For ASCII text under the CAML rule, numeric tokens are exactly the all-digit ones, so one regular
    expression finds the kept tokens directly (``tests/test_text.py`` checks it against :func:`tokenize`).
    """
    if token_rule == "caml" and engine == "re" and text.isascii():
        return " ".join(_ASCII_KEEP.findall(text.lower()))
    keep = [t for t in _findall(engine)(text) if _keep(t, token_rule)]
    return " ".join(keep).lower()


# Texts longer than this are tokenised piece by piece (cut at whitespace, which no token spans), so that one
# very long note costs about three times its own size in memory, not the ~10x of a list of its tokens.
CHUNK_CHARS = 1 << 20
_NON_WORD = re.compile(r"\W")


def tokenize_counted(text: str, token_rule: str = "caml", engine: str = "re", types: bool = False
                     ) -> tuple[str, int, set[str] | None]:
    """:func:`tokenize_joined` of ``text``, its number of tokens, and (if ``types``) its distinct tokens.

    Exactly the same result as tokenising at once (``tests/test_bad_input.py`` checks it), in bounded
    memory: texts over :data:`CHUNK_CHARS` characters are cut at the last space or newline of each piece.
    """
    if len(text) <= CHUNK_CHARS:
        if token_rule == "caml" and engine == "re" and text.isascii():  # tokenize_joined's fast path, its list kept
            toks = _ASCII_KEEP.findall(text.lower())
            return " ".join(toks), len(toks), (set(toks) if types else None)
        t = tokenize_joined(text, token_rule, engine)
        if types:
            toks = t.split()
            return t, len(toks), set(toks)
        return t, (t.count(" ") + 1 if t else 0), None
    pieces, n, seen = [], 0, (set() if types else None)
    i = 0
    while i < len(text):
        j = min(i + CHUNK_CHARS, len(text))
        if j < len(text):
            cut = max(text.rfind(" ", i, j), text.rfind("\n", i, j))
            if cut <= i:  # no space or newline in the piece: cut at the next non-word character
                m = _NON_WORD.search(text, j)
                cut = m.start() if m else len(text)
            j = cut
        piece = tokenize_joined(text[i:j], token_rule, engine)
        if piece:
            pieces.append(piece)
            n += piece.count(" ") + 1
            if seen is not None:
                seen.update(piece.split())
        i = j
    return " ".join(pieces), n, seen


def truncate(tokens: Sequence, max_length: int) -> Sequence:
    """The first ``max_length`` tokens (CAML truncates documents at 2,500 tokens).

    Example: ``truncate(["a", "b", "c"], 2) == ["a", "b"]``.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    return tokens[:max_length]


# ------------------------------------------------------------------------------- whole corpora
_TEXTS: Sequence[str] = []    # documents to tokenise; set before forking so workers inherit them
_IS_TRAIN: np.ndarray = np.zeros(0, dtype=bool)


def _tokenize_range(args: tuple[int, int, str, str]) -> tuple[list[str], list[int], Counter]:
    """Tokenise documents [start, end); also count document frequencies over the training documents."""
    start, end, rule, engine = args
    texts, lengths, df = [], [], Counter()
    for i in range(start, end):
        t, n, types = tokenize_counted(_TEXTS[i], rule, engine, types=bool(_IS_TRAIN[i]))
        texts.append(t)
        lengths.append(n)
        if types is not None:
            df.update(types)
    return texts, lengths, df


def tokenize_corpus(texts: Sequence[str], is_train: np.ndarray, token_rule: str = "caml", engine: str = "re",
                    workers: int = 0, progress: bool = False) -> tuple[list[str], np.ndarray, Counter]:
    """Tokenised documents, their lengths, and training-set document frequencies (for the vocabulary).

    ``texts``: N documents (a list, or anything indexable that gives document ``i``'s text, such as
    :class:`mcanb.documents.NoteTexts`, which joins a document's notes from Arrow buffers); ``is_train``: (N,) bool. Returns N joined token strings, (N,) int64 token counts
    and the number of training documents each token occurs in. Large inputs are split across ``workers``
    (0: all cores) forked processes, which inherit the texts instead of receiving them pickled; only the
    joined token strings and the counts come back.
    """
    global _TEXTS, _IS_TRAIN
    _TEXTS, _IS_TRAIN = texts, np.asarray(is_train, dtype=bool)
    workers = workers or os.cpu_count() or 1
    chunk = 1000
    jobs = [(i, min(i + chunk, len(texts)), token_rule, engine) for i in range(0, len(texts), chunk)]
    from .data import _progress

    bar = _progress(progress, "tokenise", total=len(texts), unit=" docs")
    out: list[str] = []
    lengths: list[int] = []
    df: Counter = Counter()
    try:
        if workers > 1 and len(jobs) > 2:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(workers) as pool:
                for texts_i, lengths_i, df_i in pool.imap(_tokenize_range, jobs):
                    out += texts_i
                    lengths += lengths_i
                    df.update(df_i)
                    bar.update(len(texts_i))
        else:
            for texts_i, lengths_i, df_i in map(_tokenize_range, jobs):
                out += texts_i
                lengths += lengths_i
                df.update(df_i)
                bar.update(len(texts_i))
    finally:
        _TEXTS, _IS_TRAIN = [], np.zeros(0, dtype=bool)
        bar.close()
    return out, np.asarray(lengths, dtype=np.int64), df
