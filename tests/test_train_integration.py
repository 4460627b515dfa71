"""The engine with the package's real models and default metrics (mcanb.models, mcanb.metrics) on the tiny task."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from tiny_task import NUM_CODES, VOCAB, make_data  # noqa: E402

from mcanb.train import TrainConfig, fit  # noqa: E402

models = pytest.importorskip("mcanb.models")
pytest.importorskip("mcanb.metrics")


@pytest.mark.parametrize("name", ["cnn", "caml", "multirescnn", "laat"])
def test_real_models_train_with_default_metrics(name, tmp_path):
    train, dev, test = make_data()
    torch.manual_seed(0)
    small = {"cnn": {"num_filters": 16}, "caml": {"num_filters": 8}, "multirescnn": {"num_filters": 4},
             "laat": {"hidden_size": 8, "projection_dim": 8}}.get(name, {})
    model = models.build_model(name, {"vocab_size": VOCAB, "num_codes": NUM_CODES, "embed_dim": 8,
                                      "freeze_embeddings": False, **small})
    config = TrainConfig(lr=0.01, num_epochs=2, progress=False, num_threads=1)
    result = fit(model, train, dev, config, tmp_path / "nb" / name, test_ds=test)
    assert result.metric == "map"                             # the default: dev mAP, for any label space
    assert {"dev_threshold", "test/micro_f1@dev_threshold"} <= set(result.metrics)
    assert {"dev/micro_f1", "dev/macro_f1_caml", "dev/p@5", "test/macro_auc"} <= set(result.metrics)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] * 1.05


class _Crash(Exception):
    pass


@pytest.mark.parametrize("name", ["cnn", "multirescnn"])
def test_real_models_resume_exactly_after_a_crash(name, tmp_path):
    """In-process variant of the SIGKILL test for real models (buffers, custom autograd functions)."""
    train, dev, _ = make_data()

    def build(crash_at=None):                   # None: never (fit also runs the model once to count its FLOPs)
        torch.manual_seed(0)
        model = models.build_model(name, {"vocab_size": VOCAB, "num_codes": NUM_CODES, "embed_dim": 8,
                                          "num_filters": 4, "freeze_embeddings": False})
        forward, calls = model.forward, [0]

        def counting_forward(*args, **kwargs):
            calls[0] += model.training
            if calls[0] == crash_at:
                raise _Crash
            return forward(*args, **kwargs)
        model.forward = counting_forward
        return model

    config = TrainConfig(lr=0.01, num_epochs=3, patience=None, progress=False, num_threads=1,
                         checkpoint_every_steps=5, early_stopping_metric="loss")
    full_model = build()
    full = fit(full_model, train, dev, config, tmp_path / "nb" / "full")
    with pytest.raises(_Crash):
        fit(build(crash_at=20), train, dev, config, tmp_path / "nb" / "crashed")
    resumed_model = build()
    resumed = fit(resumed_model, train, dev, config, tmp_path / "nb" / "crashed", resume=True)
    assert resumed.metrics == full.metrics
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    a, b = full_model.state_dict(), resumed_model.state_dict()   # both hold the best epoch's weights
    assert all(torch.equal(a[k], b[k]) for k in a)
