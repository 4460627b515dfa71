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
                         max_position=64, seq_len=32, batch_size=8, steps=3, sentence_objective=sys.argv[2])
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
    """The general encoder (English docstrings) with next-segment prediction, built in two processes: the same
    files, byte for byte. The masked-words-only objective is checked the same way, on the toy notes, by
    tests/test_reproducible.py (two whole studies, two thread counts)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", BUILD, str(tmp_path / name), "nsp"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name in ("a", "b")]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert {"vocab.txt", "tokenizer.json", "model.safetensors", "config.json"} <= set(a)
    assert json.loads(a["pretraining.json"])["settings"]["sentence_objective"] == "nsp"
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


# ----------------------------------------------------------------------------------------------- identities
def _processed_like(data_dir: str, text0: str = "fever and cough"):
    import numpy as np
    import pandas as pd
    from mcanb.processed import Processed

    frames = {s: pd.DataFrame({"hadm_id": np.arange(3) + 10 * i, "text": [text0 if i == 0 else "x y", "a b", "c"],
                               "codes": [["401.9"], [], ["428.0", "401.9"]]}) for i, s in enumerate(("train", "dev"))}
    labels = pd.DataFrame({"code": ["401.9", "428.0"], "description": ["hypertension", "heart failure"]})
    return Processed(Path(data_dir), "50", ["a", "b"], labels, frames, np.ones((4, 2), np.float32), "caml", "re")


def test_data_identity_follows_content_not_location():
    from mcanb import identity
    base = identity.of_processed(_processed_like("/data/one"))
    assert identity.of_processed(_processed_like("/elsewhere"))["sha"] == base["sha"]
    assert identity.of_processed(_processed_like("/data/one", "fever and coughs"))["sha"] != base["sha"]
    other = _processed_like("/data/one")
    other.frames["dev"].loc[2, "codes"] = ["428.0"]
    assert identity.of_processed(other)["sha"] != base["sha"]
    words = _processed_like("/data/one")
    words.embeddings[0, 0] = 2.0                      # word2vec counts for the CNN family only
    assert identity.of_processed(words)["sha"] == base["sha"]
    assert identity.of_processed(words, words=True)["sha"] != identity.of_processed(other, words=True)["sha"]


def test_file_and_folder_identity_names_the_changed_file(tmp_path):
    from mcanb import identity
    d = tmp_path / "in"
    (d / "splits").mkdir(parents=True)
    (d / "NOTES.csv").write_bytes(b"id,text\n1,fever\n")
    (d / "splits" / "train.csv").write_bytes(b"1\n")
    before = identity.of_path(d)
    copy = tmp_path / "copy"
    import shutil
    shutil.copytree(d, copy)
    assert identity.of_path(copy)["sha"] == before["sha"]          # where it lies does not count
    (d / "NOTES.csv").write_bytes(b"id,text\n1,fevor\n")             # one byte
    after = identity.of_path(d)
    assert after["sha"] != before["sha"] and identity.changed_files(before, after) == ["NOTES.csv"]
    assert identity.of_path(tmp_path / "nothing")["sha"] == "absent"


def test_encoder_identity_covers_weights_config_and_tokenizer(tmp_path):
    from mcanb import identity
    enc = tmp_path / "enc"
    enc.mkdir()
    for name, data in (("config.json", b"{}"), ("model.safetensors", b"w" * 64), ("vocab.txt", b"[PAD]\n"),
                       ("pretraining.json", b'{"seconds": 1}')):
        (enc / name).write_bytes(data)
    base = identity.of_encoder("enc", str(enc))
    assert set(base["files"]) == {"config.json", "model.safetensors", "vocab.txt"}
    (enc / "pretraining.json").write_bytes(b'{"seconds": 2}')          # a timing: not the encoder
    assert identity.of_encoder("enc", str(enc))["sha"] == base["sha"]
    random_init = identity.of_encoder("enc", str(enc), "random")
    (enc / "model.safetensors").write_bytes(b"w" * 63 + b"v")
    assert identity.of_encoder("enc", str(enc))["sha"] != base["sha"]
    assert identity.of_encoder("enc", str(enc), "random")["sha"] == random_init["sha"] != base["sha"]


def test_run_identity_changes_with_a_setting_not_with_how_it_runs():
    from mcanb import identity
    from mcanb.train import TrainConfig
    data = identity.of_processed(_processed_like("/d"))

    def key(cfg, seed=13, model=None):
        return identity.run_identity(identity.run_parts(data=data, model=model or {"model": "cnn"},
                                                        train=identity.train_settings(cfg), seed=seed))
    base = key(TrainConfig())
    assert key(TrainConfig(log_every=3, progress=False, num_workers=2)) == base
    assert key(TrainConfig(lr=0.004)) != base and key(TrainConfig(), seed=14) != base
    assert key(TrainConfig(), model={"model": "caml"}) != base
    parts = identity.run_parts(data=data, model={"model": "cnn"}, train={}, seed=1)
    assert identity.differences({"parts": parts}, parts) == []
    assert identity.differences(None, parts) == ["no identity.json"]
    assert identity.differences({"parts": {**parts, "seed": {"sha": "x"}}}, parts) == ["seed changed"]


# ----------------------------------------------------------------------------------------------- code versions
def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_code_version_covers_what_its_modules_import_in_every_form(tmp_path):
    """import_closure follows ``from . import x``, ``import pkg.x``, ``from ..x import y`` and an import inside a
    function, takes the packages above a module along, and leaves out a module that imports the roots but is not
    imported by them; code_version of the roots changes with a file in that closure and only with one."""
    from mcanb import identity
    pkg = _package(tmp_path / "pkg", {
        "__init__.py": "", "a.py": "from . import b\ndef f():\n    from .sub import c\n",
        "b.py": "import os\nimport pkg.d\n", "d.py": "", "sub/__init__.py": "", "sub/c.py": "from ..e import thing\n",
        "e.py": "thing = 1\n", "table.py": "from . import a\n", "other.py": "import json\n"})
    closure = {f.relative_to(pkg).as_posix() for f in identity.import_closure(["a"], pkg)}
    assert closure == {"__init__.py", "a.py", "b.py", "d.py", "sub/__init__.py", "sub/c.py", "e.py"}
    with pytest.raises(ValueError, match="no such module"):
        identity.import_closure(["nothing"], pkg)

    def versions():
        identity.code_version.cache_clear()
        return identity.code_version("a", package_dir=pkg), identity.code_version(package_dir=pkg)
    first, everything = versions()
    assert first != everything
    (pkg / "table.py").write_text("from . import a\nprint('a table')\n")       # outside the closure
    assert versions()[0] == first and versions()[1] != everything
    (pkg / "e.py").write_text("thing = 2\n")                                     # imported late, two steps away
    assert versions()[0] != first
    first, everything = versions()
    (pkg / "resources").mkdir()
    (pkg / "resources" / "descriptions.gz").write_bytes(b"\x1f\x8b data")       # a data file of any kind counts
    assert versions()[0] != first and versions()[1] != everything
    identity.code_version.cache_clear()


def test_a_training_run_imports_no_module_that_only_presents_results():
    """The training runs' code version (identity.TRAINING_CODE) covers the engine, the models, the word pieces and
    the metrics, and none of the tables, verdicts, figures or the report: editing those reuses every finished run.
    What actually runs inside a run is checked in test_bert_study.py and test_cnn_study.py."""
    from mcanb import identity
    from mcanb.paths import PACKAGE_DIR
    closure = {f.relative_to(PACKAGE_DIR).as_posix() for f in identity.import_closure(identity.TRAINING_CODE)}
    assert {"train.py", "grid.py", "bert_study.py", "cnn_study.py", "models/bert.py", "models/caml.py",
            "wordpiece.py", "encoders.py", "batching.py", "metrics/core.py", "identity.py"} <= closure
    presents = {"bert_scores.py", "bert_verdicts.py", "cnn_scores.py", "comparison.py", "frequency.py", "paired.py", "plots.py", "published.py",
                "encoder_probe.py", "report.py", "report_answers.py", "readme_figures.py", "notebook.py", "cli.py"}
    assert not presents & closure
    assert identity.code_version(*identity.TRAINING_CODE) != identity.code_version()


def test_a_code_version_counts_the_libraries_that_compute_the_numbers(monkeypatch):
    """Another torch (or numpy, SciPy, transformers, tokenizers) gives another code version, so a run trained under
    it is trained again rather than reused; pandas and the notebook-only libraries count for notebook results only.
    A run's identity shows the versions."""
    from mcanb import identity
    real = identity.library_versions

    def versions(changed=None):
        monkeypatch.setattr(identity, "library_versions",
                            lambda names: {**real(names), **({changed: "0.0-other"} if changed in names else {})})
        identity.code_version.cache_clear()
        return identity.code_version(*identity.TRAINING_CODE), identity.code_version()
    try:
        base = versions()
        torch_run, torch_notebook = versions("torch")
        pandas_run, pandas_notebook = versions("pandas")
        assert torch_run != base[0] and torch_notebook != base[1]
        assert pandas_run == base[0] and pandas_notebook != base[1]
    finally:
        monkeypatch.undo()
        identity.code_version.cache_clear()
    parts = identity.run_parts(data={"sha": "d"}, model={}, train={}, seed=1)
    assert parts["code"]["libraries"]["torch"] == real(["torch"])["torch"] != "absent"
    assert set(parts["code"]["libraries"]) == set(identity.COMPUTE_LIBRARIES)

