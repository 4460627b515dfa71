"""Preprocessed notes -> each encoder's word pieces, computed once per (dataset, tokenizer) and cached on disk.

The BERT family reads the same preprocessed documents as the CNN family (notebook 01: lowercased ``\\w+`` tokens,
numbers removed), cut at ``max_words`` preprocessed tokens (2,500 for BERT-hier, Ji et al. 2021 §3.4) and then
split into the encoder's own word pieces, without special tokens: the models add ``[CLS]``/``[SEP]`` per segment.

The cache lives beside the preprocessed data, ``<data_dir>/<label_space>/wordpiece/<key>/<split>.parquet``; the
key hashes the tokenizer's files (``mcanb.encoders.tokenizer_key``), ``max_words`` and the code that cuts the
pieces (this module and what it imports: :func:`mcanb.identity.code_version`), and each split's record the documents'
ids and texts (:mod:`mcanb.identity`), so a changed tokenizer, changed code or changed notes never read stale pieces.
Explained in notebooks/03_hierarchy.ipynb.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from . import identity
from .batching import CodingDataset
from .encoders import tokenizer_key
from .processed import Processed
from .splits import SPLITS

_CHUNK = 512  # documents per tokenizer call (the fast tokenizer parallelises inside a call)


def cache_dir(processed: Processed, tokenizer, max_words: int) -> Path:
    """Where the word pieces of ``processed`` under ``tokenizer`` (cut at ``max_words`` words) are cached."""
    key = identity.of_settings({"tokenizer": tokenizer_key(tokenizer), "max_words": int(max_words),
                                "code": identity.code_version("wordpiece")})
    return processed.data_dir / processed.label_space / "wordpiece" / key


def _split_key(processed: Processed, split: str) -> str:
    """The split's documents as encoded (admission ids and texts, in memory): changed notes, a re-run
    preprocessing or data changed after loading invalidate the cache."""
    frame = processed.frames[split]
    return identity.of_settings([identity.digest(processed.hadm_ids(split).tobytes()),
                                 identity.of_texts(frame["text"].tolist())])


def encode_texts(tokenizer, texts: list[str], max_words: int, progress: bool = False) -> list[np.ndarray]:
    """Word-piece ids (int32, no special tokens) of each text cut at its first ``max_words`` words."""
    cut = [" ".join(t.split()[:max_words]) for t in texts]
    out: list[np.ndarray] = []
    for start in tqdm(range(0, len(cut), _CHUNK), desc="word pieces", disable=not progress, leave=False):
        ids = tokenizer(cut[start: start + _CHUNK], add_special_tokens=False)["input_ids"]
        out += [np.asarray(x, dtype=np.int32) for x in ids]
    return out


def encode_split(processed: Processed, split: str, tokenizer, max_words: int, *,
                 progress: bool = True) -> list[np.ndarray]:
    """Word pieces of every document of ``split`` (dataset order), from the cache or computed and cached."""
    d = cache_dir(processed, tokenizer, max_words)
    path, meta = d / f"{split}.parquet", d / f"{split}.json"
    data_key = _split_key(processed, split)
    hadm = processed.hadm_ids(split)
    if path.exists() and meta.exists():
        try:       # a cache that cannot be read is rebuilt, and says so
            if json.loads(meta.read_text()).get("data") == data_key:
                col = pq.read_table(path).column("ids").combine_chunks()
                flat = col.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
                offsets = col.offsets.to_numpy()
                return [flat[offsets[i]: offsets[i + 1]] for i in range(len(hadm))]
        except (OSError, ValueError, KeyError, AttributeError, pa.ArrowException) as e:
            print(f"word-piece cache {d} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
                  "rebuilding it")
    ids = encode_texts(tokenizer, processed.frames[split]["text"].tolist(), max_words, progress=progress)
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"hadm_id": pa.array(hadm, pa.int64()),
                             "ids": pa.array([x.tolist() for x in ids], pa.list_(pa.int32()))}), path)
    meta.write_text(json.dumps({"data": data_key, "tokenizer": type(tokenizer).__name__,
                                "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
                                "max_words": int(max_words), "documents": len(ids)}))
    return ids


def datasets(processed: Processed, tokenizer, *, max_words: int, max_pieces: int,
             progress: bool = True) -> dict[str, CodingDataset]:
    """``{split: CodingDataset}`` of word-piece ids, each document cut at ``max_pieces`` pieces.

    ``max_pieces`` is what the model can take: ``max_segments * (segment_length - 2)`` for BERT-hier, 510 for
    BERT-trun (the first 512 word pieces with ``[CLS]`` and ``[SEP]``).
    """
    return {s: CodingDataset(encode_split(processed, s, tokenizer, max_words, progress=progress),
                             processed.label_ids(s), processed.hadm_ids(s), processed.num_codes, max_pieces)
            for s in SPLITS}
