"""Documents -> padded batches: a dataset of token ids, a collate function and a length-bucketed sampler.

Discharge summaries range from a few hundred to several thousand tokens, so a batch padded to its longest
document wastes most of its compute when lengths are mixed. ``BucketBatchSampler`` groups documents of
similar length (the "sortish" sampler of fastai / AllenNLP's bucket iterator) while keeping the epoch
random: shuffle, cut into chunks of ``batch_size * bucket_size_multiplier`` documents, sort each chunk by
length, cut into batches, shuffle the batch order. Everything is a pure function of ``(seed, epoch)``, so a
run resumed mid-epoch replays exactly the batches it had not yet seen.

Explained in notebooks/04_cnn_retraining.ipynb (training set-up).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

PAD_ID = 0  # token id 0 is padding in every vocabulary of mcanb (docs/reference.md §Preprocessing: index 0 = PAD)


class CodingDataset(torch.utils.data.Dataset):
    """One item per admission: token ids (truncated to ``max_length``), label indices and ``hadm_id``.

    Args:
        token_ids: one int array of token ids per document (id 0 = PAD is never a real token).
        label_ids: one int array of label indices per document, each in ``[0, num_codes)``.
        hadm_ids: (n,) admission ids, kept through batching so predictions can be joined back.
        num_codes: size of the label space C.
        max_length: truncation length in tokens (2,500 for the CNN family, 512 for BERT-trun).

    Example: ``CodingDataset([np.array([5, 7])], [np.array([1])], np.array([100]), 3, 2500)[0]``
    """

    def __init__(self, token_ids: Sequence[np.ndarray], label_ids: Sequence[np.ndarray],
                 hadm_ids: np.ndarray, num_codes: int, max_length: int):
        if not len(token_ids) == len(label_ids) == len(hadm_ids):
            raise ValueError(f"token_ids ({len(token_ids)}), label_ids ({len(label_ids)}) and hadm_ids "
                             f"({len(hadm_ids)}) must have one entry per document")
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.token_ids = list(token_ids)
        self.label_ids = [np.asarray(x, dtype=np.int64) for x in label_ids]
        self.hadm_ids = np.asarray(hadm_ids, dtype=np.int64)
        self.num_codes = int(num_codes)
        self.max_length = int(max_length)
        bad = [i for i, y in enumerate(self.label_ids) if y.size and (y.min() < 0 or y.max() >= num_codes)]
        if bad:
            raise ValueError(f"label indices outside [0, {num_codes}) in documents {bad[:5]}")
        # (n,) lengths after truncation: what the sampler buckets on and what a batch is padded to.
        self.lengths = np.array([min(len(t), self.max_length) for t in self.token_ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.token_ids)

    def __getitem__(self, i: int) -> dict:
        ids = np.asarray(self.token_ids[i][: self.max_length], dtype=np.int64)
        return {"input_ids": ids, "label_ids": self.label_ids[i], "hadm_id": int(self.hadm_ids[i]), "index": i}

    def labels_matrix(self) -> np.ndarray:
        """(n, num_codes) 0/1 uint8 matrix of gold labels, for metrics."""
        y = np.zeros((len(self), self.num_codes), dtype=np.uint8)
        for i, codes in enumerate(self.label_ids):
            y[i, codes] = 1
        return y

    def collate(self, items: list[dict]) -> dict:
        """Collate with this dataset's label space (a picklable bound method for DataLoader workers)."""
        return collate(items, self.num_codes)


def collate(items: list[dict], num_codes: int) -> dict[str, torch.Tensor]:
    """Pad a list of items to the longest document in the batch.

    Returns ``input_ids`` (B, T) int64 with 0 = PAD, ``attention_mask`` (B, T) bool, ``labels`` (B, C) float32
    multi-hot, ``hadm_id`` (B,) int64 and ``index`` (B,) int64 (position in the dataset). T >= 1 even if
    every document is empty, so models never see a zero-width tensor.
    """
    width = max(1, max(len(it["input_ids"]) for it in items))
    input_ids = torch.full((len(items), width), PAD_ID, dtype=torch.long)
    labels = torch.zeros((len(items), num_codes), dtype=torch.float32)
    for row, it in enumerate(items):
        input_ids[row, : len(it["input_ids"])] = torch.from_numpy(it["input_ids"])
        labels[row, torch.from_numpy(it["label_ids"])] = 1.0
    lengths = torch.tensor([len(it["input_ids"]) for it in items])
    attention_mask = torch.arange(width)[None, :] < lengths[:, None]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
            "hadm_id": torch.tensor([it["hadm_id"] for it in items], dtype=torch.long),
            "index": torch.tensor([it["index"] for it in items], dtype=torch.long)}


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of documents with similar lengths; deterministic given ``(seed, epoch)``; resumable mid-epoch.

    ``shuffle=True``: permute documents with ``default_rng((seed, epoch))``, cut into chunks of
    ``batch_size * bucket_size_multiplier``, sort each chunk by length (stable), cut into batches, permute
    the batch order. ``shuffle=False`` (evaluation): same chunking in dataset order, no permutations.
    ``bucket_size_multiplier=1`` turns bucketing off (each chunk is one batch).

    With ``num_shards > 1`` (one shard per process in multi-process training) every global batch is split
    across processes, shard ``r`` taking documents ``r, r + num_shards, ...`` of the length-sorted batch, so
    the global batch (what the optimizer averages over) does not depend on the number of processes. A shard
    that would be empty (a last batch smaller than the number of processes) yields the batch's first
    document instead; ``shard_sizes`` tells the training loop to give it weight 0.

    Example: ``s = BucketBatchSampler([3, 9, 4, 8], 2, shuffle=True, seed=0); s.set_epoch(1, start_batch=1)``
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                 bucket_size_multiplier: int = 100, drop_last: bool = False, num_shards: int = 1,
                 shard_index: int = 0):
        if batch_size < 1 or bucket_size_multiplier < 1:
            raise ValueError("batch_size and bucket_size_multiplier must be >= 1")
        if not 0 <= shard_index < num_shards:
            raise ValueError(f"shard_index {shard_index} not in [0, {num_shards})")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.bucket_size_multiplier, self.drop_last = int(bucket_size_multiplier), bool(drop_last)
        self.num_shards, self.shard_index = int(num_shards), int(shard_index)
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's batch order and skip its first ``start_batch`` batches (resume)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def batches(self, epoch: int | None = None) -> list[list[int]]:
        """All global batches (lists of dataset indices) of ``epoch``, in the order they are served."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch]) if self.shuffle else None
        order = rng.permutation(len(self.lengths)) if rng is not None else np.arange(len(self.lengths))
        chunk = self.batch_size * self.bucket_size_multiplier
        out = []
        for start in range(0, len(order), chunk):
            idx = order[start: start + chunk]
            idx = idx[np.argsort(self.lengths[idx], kind="stable")]
            out += [idx[b: b + self.batch_size].tolist() for b in range(0, len(idx), self.batch_size)]
        if self.drop_last:
            out = [b for b in out if len(b) == self.batch_size]
        if rng is not None:
            out = [out[i] for i in rng.permutation(len(out))]
        return out

    def shard(self, batch: list[int]) -> list[int]:
        """This process's part of a global batch (never empty; see the class docstring)."""
        part = batch[self.shard_index:: self.num_shards]
        return part if part else batch[:1]

    def shard_sizes(self, batch: list[int]) -> list[int]:
        """Number of real documents each shard holds for a global batch (0 for a padded shard)."""
        return [len(batch[r:: self.num_shards]) for r in range(self.num_shards)]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches()[self.start_batch:]:
            yield self.shard(batch)

    def num_batches(self) -> int:
        """Number of global batches per epoch (without building them)."""
        n, chunk = len(self.lengths), self.batch_size * self.bucket_size_multiplier
        full, rest = divmod(n, chunk)
        tail = rest // self.batch_size if self.drop_last else -(-rest // self.batch_size)
        return full * self.bucket_size_multiplier + tail

    def __len__(self) -> int:
        return max(0, self.num_batches() - self.start_batch)


def loader(ds, sampler, num_workers: int, device: torch.device, seed: int) -> torch.utils.data.DataLoader:
    """The ``DataLoader`` of ``ds`` over ``sampler``'s batches (training and prediction alike)."""
    # An own generator: a DataLoader without one draws its worker seed from the global torch RNG at every
    # ``iter()``, which would shift the dropout stream of a run resumed mid-epoch.
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate, num_workers=num_workers,
                                       pin_memory=device.type == "cuda",
                                       generator=torch.Generator().manual_seed(seed))
