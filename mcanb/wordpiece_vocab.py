"""A WordPiece vocabulary built deterministically: the same corpus and settings give the same vocabulary in every
process, on every machine.

``tokenizers``' ``WordPieceTrainer`` breaks ties between equally frequent merges by the order of a hash map that
is seeded afresh in every process, so three trainings on the same notes give three vocabularies (and every
encoder pretrained on them, and every model fine-tuned on those, differs). This module does the same kind of
training, byte-pair merges with the ``##`` continuation prefix (the procedure the library's WordPiece trainer
follows), with every order written down:

1. words: each text goes through BERT's normaliser (lowercase, accents stripped) and pre-tokeniser, both from
   ``tokenizers``; a word's count is how often it occurs in the corpus (the order of the texts does not matter);
2. alphabet: a word is split into its first character and ``##``-prefixed further characters; these symbols come
   first in the vocabulary (after the special tokens), most frequent first, ties by code-point order;
3. merges: repeatedly the adjacent pair of symbols with the highest count over all words is merged
   (``"ab" + "##c" -> "abc"``); among pairs with the same count the one whose (left, right) symbols come first
   in code-point order wins. A merged symbol joins the vocabulary the first time it appears. Training stops at
   ``vocab_size`` entries or when no pair occurs ``min_frequency`` times.

Encoding afterwards is the library's WordPiece model (greedy longest match), which is deterministic. Explained
in docs/README.md ("Deterministic local encoders").
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable, Sequence

PREFIX = "##"


def word_counts(texts: Iterable[str], lowercase: bool = True) -> Counter:
    """``{word: count}`` after BERT's normaliser (``lowercase``, as the tokenizer's) and pre-tokeniser (the
    library's own)."""
    from tokenizers import normalizers, pre_tokenizers

    norm, pre = normalizers.BertNormalizer(lowercase=lowercase), pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text)))
    return counts


def build_vocab(texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str], *,
                min_frequency: int = 2, lowercase: bool = True) -> list[str]:
    """The vocabulary in id order: ``special_tokens``, the alphabet, then merged symbols (see the module doc);
    ``lowercase=False`` for a cased tokenizer."""
    counts = word_counts(texts, lowercase)
    words = sorted(counts)
    seqs = [[w[0], *(PREFIX + c for c in w[1:])] for w in words]
    freqs = [counts[w] for w in words]
    symbols: Counter = Counter()
    for seq, f in zip(seqs, freqs):
        for s in seq:
            symbols[s] += f
    vocab = list(dict.fromkeys(special_tokens))
    vocab += [s for s in sorted(symbols, key=lambda s: (-symbols[s], s)) if s not in vocab]
    seen = set(vocab)
    pairs: dict[tuple[str, str], int] = defaultdict(int)
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, (seq, f) in enumerate(zip(seqs, freqs)):
        for p in zip(seq, seq[1:]):
            pairs[p] += f
            where[p].add(i)
    heap = [(-c, a, b) for (a, b), c in pairs.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        if pairs.get((a, b), 0) != -neg:          # an outdated entry: a newer one holds the current count
            continue
        if -neg < min_frequency:
            break
        merged = a + b[len(PREFIX):]
        if merged not in seen:
            vocab.append(merged)
            seen.add(merged)
        touched = set()
        for i in where.pop((a, b)):
            seq, f = seqs[i], freqs[i]
            old = list(zip(seq, seq[1:]))
            if (a, b) not in old:
                continue
            new_seq, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and seq[j] == a and seq[j + 1] == b:
                    new_seq.append(merged)
                    j += 2
                else:
                    new_seq.append(seq[j])
                    j += 1
            seqs[i] = new_seq
            for p in old:
                pairs[p] -= f
                touched.add(p)
            for p in zip(new_seq, new_seq[1:]):
                pairs[p] += f
                where[p].add(i)
                touched.add(p)
        pairs.pop((a, b), None)
        for p in touched:
            c = pairs.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, *p))
            else:
                pairs.pop(p, None)
    return vocab
