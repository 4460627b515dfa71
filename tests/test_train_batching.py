"""mcanb.batching: dataset, collate and the length-bucketed sampler."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcanb.batching import BucketBatchSampler, CodingDataset, collate


def _lengths(n=1000, seed=0):
    return np.random.default_rng(seed).integers(1, 3000, size=n)


def test_collate_pads_to_longest_and_builds_multi_hot():
    ds = CodingDataset([np.array([5, 6, 7, 8, 9]), np.array([3])], [np.array([0, 2]), np.array([], dtype=int)],
                       np.array([11, 12]), num_codes=3, max_length=4)
    batch = collate([ds[0], ds[1]], ds.num_codes)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [3, 0, 0, 0]]      # truncated to max_length, 0 = PAD
    assert batch["attention_mask"].dtype == torch.bool
    assert batch["attention_mask"].tolist() == [[True] * 4, [True, False, False, False]]
    assert batch["labels"].tolist() == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    assert batch["hadm_id"].tolist() == [11, 12] and batch["index"].tolist() == [0, 1]
    assert ds.lengths.tolist() == [4, 1]
    assert ds.labels_matrix().tolist() == [[1, 0, 1], [0, 0, 0]]


def test_dataset_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside"):
        CodingDataset([np.array([1])], [np.array([3])], np.array([1]), num_codes=3, max_length=10)


def test_sampler_covers_every_document_once_per_epoch_and_is_deterministic():
    lengths = _lengths()
    s = BucketBatchSampler(lengths, batch_size=8, shuffle=True, seed=3)
    for epoch in range(3):
        s.set_epoch(epoch)
        flat = [i for b in s for i in b]
        assert sorted(flat) == list(range(len(lengths)))
        assert len(list(s)) == len(s) == s.num_batches() == 125
    assert s.batches(0) == BucketBatchSampler(lengths, 8, shuffle=True, seed=3).batches(0)
    assert s.batches(0) != s.batches(1)                      # a new order every epoch
    assert s.batches(0) != BucketBatchSampler(lengths, 8, shuffle=True, seed=4).batches(0)


def test_sampler_groups_similar_lengths():
    lengths = _lengths()
    spread = lambda batches: np.mean([lengths[b].max() - lengths[b].min() for b in batches])  # noqa: E731
    bucketed = BucketBatchSampler(lengths, 8, shuffle=True, seed=0).batches(0)
    random_ = BucketBatchSampler(lengths, 8, shuffle=True, seed=0, bucket_size_multiplier=1).batches(0)
    assert spread(bucketed) < 0.1 * spread(random_)
    # padding waste: padded tokens / real tokens
    waste = lambda batches: sum(len(b) * lengths[b].max() for b in batches) / lengths.sum() - 1  # noqa: E731
    assert waste(bucketed) < 0.05 < waste(random_)


def test_sampler_resumes_mid_epoch_and_counts_batches():
    s = BucketBatchSampler(_lengths(101), batch_size=8, shuffle=True, seed=1)
    full = s.batches(2)
    s.set_epoch(2, start_batch=5)
    assert list(s) == full[5:] and len(s) == len(full) - 5 == 8
    drop = BucketBatchSampler(_lengths(101), batch_size=8, drop_last=True, bucket_size_multiplier=5)
    assert len(drop.batches()) == drop.num_batches() == 12 and all(len(b) == 8 for b in drop.batches())


def test_sampler_shards_split_every_global_batch():
    lengths = _lengths(21)
    shards = [BucketBatchSampler(lengths, 4, seed=0, num_shards=2, shard_index=r) for r in range(2)]
    for global_batch, a, b in zip(shards[0].batches(), shards[0], shards[1]):
        assert sorted(a + b) == sorted(global_batch) or len(global_batch) == 1
        assert shards[0].shard_sizes(global_batch) == [len(a), len(global_batch) - len(a)]
    # a one-document last batch: the second shard serves a stand-in that the loop weights 0
    s = BucketBatchSampler([5], 4, num_shards=2, shard_index=1)
    assert list(s) == [[0]] and s.shard_sizes([0]) == [1, 0]
