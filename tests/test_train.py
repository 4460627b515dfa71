"""mcanb.train: the training engine on a tiny synthetic task (tests/scripts/tiny_task.py), in-process."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent / "scripts"))
from tiny_task import TinyModel, make_data, make_split, tiny_metrics  # noqa: E402

from mcanb import checkpoint as ckpt  # noqa: E402
from mcanb.metrics import default_stopping_metric, higher_is_better  # noqa: E402
from mcanb.predictions import load_predictions  # noqa: E402
from mcanb.inference import predict  # noqa: E402
from mcanb.train import TrainConfig, fit  # noqa: E402
from mcanb.train_config import make_accelerator  # noqa: E402

FAST = dict(lr=0.05, num_epochs=6, patience=None, progress=False, num_threads=1)


@pytest.fixture(scope="module")
def data():
    return make_data()


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyModel(**kw)


def _run(data, out_dir, *, seed=0, model_kw=None, metric_fn=tiny_metrics, **cfg):
    train, dev, test = data
    model = _model(seed, **(model_kw or {}))
    config = TrainConfig(**{**FAST, "seed": seed, **cfg})
    result = fit(model, train, dev, config, out_dir / "nb" / "run", test_ds=test, metric_fn=metric_fn,
                 extra_params={"model": "tiny"})
    return model, result


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """One ordinary run shared by the output tests."""
    return _run(data, tmp_path_factory.mktemp("trained"), early_stopping_metric="p@1", keep_last_checkpoint=True)


def test_loss_falls_and_dev_metric_beats_trivial_baseline(data, trained):
    train, dev, _ = data
    _, result = trained
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.75 * losses[0]
    # trivial baseline: every document gets the training prevalence of each code
    prior = train.labels_matrix().mean(0)
    baseline = tiny_metrics(dev.labels_matrix(), np.tile(prior, (len(dev), 1)))
    assert result.metrics["dev/p@1"] > baseline["p@1"] + 0.1
    assert result.metrics["dev/micro_f1"] > baseline["micro_f1"] + 0.1
    assert result.metrics["dev/loss"] < result.history[0]["dev/loss"]


def test_outputs_layout_and_contents(data, trained):
    model, result = trained
    out = result.out_dir
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["notebook"] == "nb" and doc["run"] == "run"
    assert set(doc["metrics"]) >= {"dev/micro_f1", "dev/p@1", "dev/loss", "test/micro_f1", "test/p@3",
                                   "fit/best_epoch"}
    params = yaml.safe_load((out / "params.yaml").read_text())
    assert params["lr"] == 0.05 and params["model"] == "tiny" and params["eval_k"] == [5]
    assert params["early_stopping_metric"] == "p@1"
    history = pd.read_csv(out / "history.csv")
    assert list(history["epoch"]) == list(range(6))
    assert {"train_loss", "dev/p@1", "train_s", "docs_per_s", "peak_mem_mb", "lr"} <= set(history.columns)
    assert (history["peak_mem_mb"] > 0).all()
    # the final model is the best epoch's: its dev metrics are those logged for that epoch
    best = result.history[result.best_epoch]
    assert result.metrics["dev/p@1"] == best["dev/p@1"] == result.best_metric
    assert result.metrics["dev/loss"] == pytest.approx(best["dev/loss"], abs=1e-12)
    # predictions: hadm_id + a fixed-size float32 list per document; pandas reads them too
    _, dev, test = data
    hadm, scores = load_predictions(out / "predictions_test.parquet")
    assert hadm.tolist() == test.hadm_ids.tolist() and scores.shape == (len(test), test.num_codes)
    assert scores.dtype == np.float32
    assert tiny_metrics(test.labels_matrix(), scores)["p@3"] == result.metrics["test/p@3"]
    np.testing.assert_allclose(scores, predict(model, test, batch_size=5)[1], atol=1e-6)  # other padding
    frame = pd.read_parquet(out / "predictions_dev.parquet")
    assert list(frame.columns) == ["hadm_id", "scores"] and len(frame) == len(dev)


def test_metrics_carry_f1_at_a_threshold_tuned_on_dev_only(data, trained):
    from mcanb.metrics import Threshold, micro_f1

    _, result = trained
    out = result.out_dir
    _, dev, test = data
    _, dev_scores = load_predictions(out / "predictions_dev.parquet")
    _, test_scores = load_predictions(out / "predictions_test.parquet")
    thr = Threshold.fit(dev.labels_matrix(), dev_scores)          # dev labels only
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    assert m["dev_threshold"] == pytest.approx(thr.threshold) and m["dev_threshold"] != 0.5
    assert m["test/micro_f1@dev_threshold"] == pytest.approx(micro_f1(test.labels_matrix(), test_scores, thr))
    assert m["dev/micro_f1@dev_threshold"] == pytest.approx(thr.dev_score)
    assert m["dev/micro_f1@dev_threshold"] >= m["dev/micro_f1"]    # tuned on dev: never worse there than 0.5
    assert {"test/macro_f1_caml@dev_threshold", "test/micro_f1"} <= set(m)
    assert m["fit/stop_reason"] == result.stop_reason and m["fit/stopping_metric"] == "p@1"


def test_checkpoints_load_with_weights_only(trained):
    _, result = trained
    for name in ("last.pt", "best.pt"):
        state = torch.load(result.out_dir / "checkpoints" / name, map_location="cpu", weights_only=True)
        assert state["kind"] == name[:-3] and "model" in state
    last = ckpt.load(result.out_dir / "checkpoints" / "last.pt")
    assert last["progress"]["epoch"] == 6 and last["progress"]["stop_reason"] == "num_epochs"
    assert isinstance(last["local"][0]["rng"]["torch"], torch.Tensor)


def test_same_seed_gives_identical_weights_and_metrics(data, tmp_path):
    model_a, a = _run(data, tmp_path / "a", num_epochs=3)
    model_b, b = _run(data, tmp_path / "b", num_epochs=3)
    assert a.metrics == b.metrics
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    for (name, x), y in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(x, y), name
    model_c, _ = _run(data, tmp_path / "c", num_epochs=3, seed=1)
    assert not torch.equal(model_a.out.weight, model_c.out.weight)


def test_early_stopping_uses_patience(data, tmp_path):
    calls = []

    def flat_metric(y_true, y_score):          # never improves after the first epoch
        calls.append(1)
        return {"flat": 0.5}

    _, result = _run(data, tmp_path, metric_fn=flat_metric, early_stopping_metric="flat", patience=2,
                     num_epochs=20)
    assert result.stop_reason == "no_improvement"     # best epoch 0: flagged, not a healthy early stop
    assert result.best_epoch == 0 and result.epochs_run == 3
    assert "never rose above its first-epoch value" in result.metrics["fit/warning"]
    assert result.metrics["fit/stop_reason"] == "no_improvement"
    # lower-is-better metric: dev loss keeps falling on this task, so no early stop
    _, result = _run(data, tmp_path / "loss", early_stopping_metric="loss", patience=1, num_epochs=4)
    assert result.stop_reason == "num_epochs" and result.best_epoch == 3


def test_stopping_metric_defaults_and_direction():
    assert default_stopping_metric(50) == "map" and default_stopping_metric(8921) == "map"
    assert default_stopping_metric(5, ["loss", "micro_f1", "p@1"]) == "micro_f1"   # a metric_fn without map
    assert higher_is_better("p@8") and higher_is_better("macro_auc") and not higher_is_better("loss")


def test_unknown_stopping_metric_fails_before_training(data, tmp_path):
    with pytest.raises(ValueError, match=r"'p@8'.*valid names: loss, micro_f1, p@1, p@3"):
        _run(data, tmp_path, early_stopping_metric="p@8")
    assert not (tmp_path / "nb").exists()       # nothing trained, nothing written
    with pytest.raises(ValueError, match="p@5"):   # the default for 5 codes is micro_f1; P@5 must exist if asked
        _run(data, tmp_path, early_stopping_metric="p@5")


def test_gradient_accumulation_matches_large_batch(tmp_path):
    # 100 documents: 4 x 3 micro-batches per step leave a last step of one micro-batch, as 12-document
    # batches leave a last batch of 4; the per-document weighting makes both the same mean loss.
    data = (make_split(100, 0), make_split(24, 1), None)
    common = dict(model_kw={"dropout": 0.0}, shuffle=False, bucket_size_multiplier=1, num_epochs=2, lr=0.01,
                  max_grad_norm=1.0, warmup="linear")
    model_acc, res_acc = _run(data, tmp_path / "acc", batch_size=4, grad_accum_steps=3, **common)
    model_big, res_big = _run(data, tmp_path / "big", batch_size=12, grad_accum_steps=1, **common)
    assert res_acc.steps == res_big.steps == 18
    for (name, x), y in zip(model_acc.state_dict().items(), model_big.state_dict().values()):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0, msg=name)
    assert [r["train_loss"] for r in res_acc.history] == pytest.approx(
        [r["train_loss"] for r in res_big.history], abs=1e-6)


def test_max_steps_stops_a_smoke_run(data, tmp_path):
    _, result = _run(data, tmp_path, max_steps=5, num_epochs=10)
    assert result.stop_reason == "max_steps" and result.steps == 5 and result.epochs_run == 1


def test_corrupt_checkpoint_is_reported_with_its_path(data, tmp_path):
    _run(data, tmp_path, num_epochs=1, keep_last_checkpoint=True)
    last = tmp_path / "nb" / "run" / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:500])                    # truncated, as by a full disk
    with pytest.raises(ckpt.CheckpointError, match=rf"{last}.*cannot read checkpoint"):
        _resume(data, tmp_path, num_epochs=2)


def _resume(data, tmp_path, model_kw=None, **cfg):
    train, dev, _ = data
    config = TrainConfig(**{**FAST, "seed": 0, **cfg})
    return fit(_model(0, **(model_kw or {})), train, dev, config, tmp_path / "nb" / "run", metric_fn=tiny_metrics,
               resume=True)


def test_finished_run_is_reused_from_its_metrics_and_drops_last_checkpoint(data, tmp_path):
    _, first = _run(data, tmp_path, num_epochs=2)
    ck = tmp_path / "nb" / "run" / "checkpoints"
    assert (ck / "best.pt").exists() and not (ck / "last.pt").exists()   # keep_last_checkpoint defaults to False
    train, dev, test = data
    poisoned = _model(5)                       # other weights: a retrained or re-evaluated run would differ
    again = fit(poisoned, train, dev, TrainConfig(**{**FAST, "seed": 0, "num_epochs": 2, "progress": False}),
                tmp_path / "nb" / "run", test_ds=test, metric_fn=tiny_metrics, resume=True)
    assert again.metrics == first.metrics and again.history == first.history
    assert (again.best_epoch, again.epochs_run, again.steps, again.stop_reason, again.best_metric) == \
        (first.best_epoch, first.epochs_run, first.steps, first.stop_reason, first.best_metric)
    assert not (ck / "last.pt").exists()
    # other settings: not reused, trained afresh (and its stale results removed first)
    other = fit(_model(0), train, dev, TrainConfig(**{**FAST, "seed": 0, "num_epochs": 1}), tmp_path / "nb" / "run",
                test_ds=test, metric_fn=tiny_metrics, resume=True)
    assert other.epochs_run == 1 and other.metrics != first.metrics


def test_mismatched_checkpoint_names_what_differs(data, tmp_path):
    _run(data, tmp_path, num_epochs=1, keep_last_checkpoint=True)
    with pytest.raises(ckpt.CheckpointError, match=r"different configuration:\n  lr: checkpoint=0.05, now=0.1"):
        _resume(data, tmp_path, num_epochs=1, lr=0.1)
    with pytest.raises(ckpt.CheckpointError, match=r"does not fit the model.*\n  embed.weight: checkpoint \(60, 16\), "
                                                   r"model \(60, 8\)"):
        _resume(data, tmp_path, num_epochs=1, model_kw={"dim": 8})
    other = (make_split(90, 5), data[1], None)
    with pytest.raises(ckpt.CheckpointError, match="different dataset"):
        _resume(other, tmp_path, num_epochs=1)
    # a finished run resumes to the same result without training again (from last.pt when it was kept)
    again = _resume(data, tmp_path, num_epochs=1, num_workers=0, progress=False)
    assert again.epochs_run == 1 and again.stop_reason == "num_epochs"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU behaviour")
def test_amp_and_compile_need_cuda():
    with pytest.raises(ValueError, match="need a CUDA GPU"):
        make_accelerator(TrainConfig(amp="bf16"))
    with pytest.raises(ValueError, match="need a CUDA GPU"):
        make_accelerator(TrainConfig(compile=True))
    with pytest.raises(ValueError, match="amp must be"):
        make_accelerator(TrainConfig(amp="fp8"))


def test_invalid_options_are_rejected(data, tmp_path):
    for bad in ({"optimizer": "sgd"}, {"warmup": "cosine"}, {"grad_accum_steps": 0}, {"patience": 0}):
        with pytest.raises(ValueError):
            _run(data, tmp_path, **bad)


def test_train_config_is_plain_and_documented():
    import inspect

    import mcanb.train as train
    source = inspect.getsource(train.TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        line = next(line for line in source.splitlines() if line.strip().startswith(f"{f.name}:"))
        assert "#" in line, f"TrainConfig.{f.name} has no comment"


def test_make_accelerator_after_another_precision():
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()
    Accelerator(cpu=True, mixed_precision="bf16")       # e.g. an earlier bf16 run in the same kernel
    assert make_accelerator(TrainConfig()).mixed_precision == "no"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp,compile_", [("bf16", False), ("fp16", False), ("off", True)])
def test_cuda_mixed_precision_and_compile(data, tmp_path, amp, compile_):
    _, result = _run(data, tmp_path, amp=amp, compile=compile_, num_epochs=3, early_stopping_metric="p@1")
    losses = [row["train_loss"] for row in result.history]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert result.metrics["dev/p@1"] is not None
    state = torch.load(result.out_dir / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert "embed.weight" in state                      # compiled in place: plain parameter names
