"""Content identities (mcanb.identity) and deterministic local encoders: the same inputs give the same bytes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcanb.paths import ROOT
from mcanb.wordpiece_vocab import build_vocab

BUILD = """
import sys
from mcanb import encoders
texts = encoders.general_english(max_chars=60_000)
cfg = encoders.MlmConfig(vocab_size=300, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                         max_position=64, seq_len=32, batch_size=8, steps=3)
encoders.pretrain_mlm(texts, sys.argv[1], cfg, progress=False)
"""


def _files(d: Path) -> dict[str, bytes]:
    out = {}
    for f in sorted(d.iterdir()):
        data = f.read_bytes()
        if f.name == "pretraining.json":   # its "seconds" is a timing, not a result
            data = json.dumps({k: v for k, v in json.loads(data).items() if k != "seconds"}).encode()
        out[f.name] = data
    return out


@pytest.mark.slow
def test_a_local_encoder_is_byte_identical_when_built_in_two_fresh_processes(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / name)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name in ("a", "b")]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert {"vocab.txt", "tokenizer.json", "model.safetensors", "config.json"} <= set(a)
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []
    vocab = (tmp_path / "a" / "vocab.txt").read_text().split("\n")[:-1]
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocab) == 300 == len(set(vocab))


def test_wordpiece_vocabulary_order_is_written_down():
    specials = ["[PAD]", "[UNK]"]
    texts = ["ab ab ab cd cd cd", "abcd", "Ab"]
    vocab = build_vocab(texts, 100, specials)
    # words ab x4 ("Ab" is lowercased), cd x3, abcd x1. Alphabet by count, ties by code point: ##b 5, a 5, ##d 4,
    # c 3, ##c 1. Merges: (a, ##b) 5, then (c, ##d) 3; every other pair occurs once, below min_frequency 2.
    assert vocab == ["[PAD]", "[UNK]", "##b", "a", "##d", "c", "##c", "ab", "cd"]
    assert build_vocab(list(reversed(texts)), 100, specials) == vocab        # the order of the texts does not count
    assert build_vocab(texts, 8, specials) == vocab[:8]
    assert build_vocab(["xy xy zw zw"], 100, [])[-2:] == ["xy", "zw"]                 # a tie: code-point order
