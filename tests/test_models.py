"""mcanb.models: registry, shapes, padding invariance, float32 attention under autocast, and every fast path
against a plain reference computation written here (to 1e-5). Learning tests: tests/test_models_learning.py."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from mcanb.models import MODEL_NAMES, PLM_MODELS, CodingOutput, build_model, config_fields
from mcanb.models.baselines import MostFrequentCodesBaseline, TfidfLogisticBaseline
from mcanb.models.layers import _ConvMaxPool, conv_max_pool, conv_max_pool_dense, embed_conv_max_pool, same_conv
from mcanb.models.multirescnn import MaskedBatchNorm
from mcanb.models.label_attention import LabelAttention, _BlockedLabelAttention, label_attention_dense

V, C = 40, 7  # tiny vocabulary and label space
DESC = torch.randint(0, V, (C, 6), generator=torch.Generator().manual_seed(3))
TINY = {
    "cnn": dict(embed_dim=8, num_filters=6, freeze_embeddings=False),
    "caml": dict(embed_dim=8, num_filters=6),
    "dr_caml": dict(embed_dim=8, num_filters=6, description_ids=DESC),
    "multirescnn": dict(embed_dim=8, num_filters=3),  # all six paper filter sizes, few maps
    "laat": dict(embed_dim=8, hidden_size=5, projection_dim=6),
}
CNN_FAMILY = tuple(n for n in MODEL_NAMES if n not in PLM_MODELS)  # the BERT family: tests/test_bert.py


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: threads only add synchronisation (and stall on a busy machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, {"vocab_size": V, "num_codes": C, **TINY[name], **overrides})


def docs(*lengths: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(1, V, (n,), generator=g) for n in lengths]


def pad(batch: list[torch.Tensor], total: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    T = total or max(len(d) for d in batch)
    ids = torch.zeros(len(batch), T, dtype=torch.long)
    for i, d in enumerate(batch):
        ids[i, : len(d)] = d
    return ids, ids.ne(0)


# ---------------------------------------------------------------- references (plain, slow, obviously right)

def ref_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Same-aligned conv with torch's conv1d: (B, T, in) -> (B, T, out)."""
    k = weight.shape[0]
    xp = F.pad(x.transpose(1, 2), ((k - 1) // 2, k // 2))
    return F.conv1d(xp, weight.permute(2, 1, 0), bias).transpose(1, 2)


def ref_attention(hidden, mask, query, weight, bias, projection=None):
    """Label attention by its definition, one document at a time over its real tokens only."""
    logits, attns = [], []
    for b in range(hidden.shape[0]):
        h = hidden[b, mask[b]]  # (n, d)
        z = h if projection is None else torch.tanh(h @ projection.t())
        a = torch.softmax(query @ z.t(), dim=1)  # (C, n)
        full = torch.zeros(query.shape[0], hidden.shape[1], dtype=hidden.dtype)
        full[:, mask[b]] = a
        logits.append(((a @ h) * weight).sum(1) + bias)
        attns.append(full)
    return torch.stack(logits), torch.stack(attns)


def ref_forward(model, ids, mask):
    """Reference logits of a model in eval mode, recomputed from its parameters."""
    E = model.embed.weight[ids] * mask[:, :, None]
    name = type(model).__name__
    if name == "CnnModel":
        h = torch.tanh(ref_conv(E, model.conv.weight, model.conv.bias))
        pooled = h.masked_fill(~mask[:, :, None], -torch.inf).amax(1)
        return model.output(pooled)
    if name in ("CamlModel", "DrCamlModel"):
        h = torch.tanh(ref_conv(E, model.conv.weight, model.conv.bias))
    elif name == "MultiResCnnModel":
        def bn(layer, x):
            return (x - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps) * layer.weight + layer.bias

        def masked(x):
            return x * mask[:, :, None]

        chans = []
        for conv, blk in zip(model.convs, model.blocks):
            x = masked(torch.tanh(ref_conv(E, conv.weight, conv.bias)))
            left = masked(torch.tanh(bn(blk.bn1, ref_conv(x, blk.conv1.weight))))
            left = bn(blk.bn2, ref_conv(left, blk.conv2.weight))
            chans.append(torch.tanh(left + bn(blk.bn_shortcut, ref_conv(x, blk.shortcut.weight))))
        h = torch.cat(chans, 2)
    else:  # LAAT: a standard bidirectional nn.LSTM with the same weights, on each document alone
        u = model.config.hidden_size
        lstm = torch.nn.LSTM(E.shape[2], u, batch_first=True, bidirectional=True)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{name}_l0").data = getattr(model.lstm_forward[0], f"{name}_l0").data
            getattr(lstm, f"{name}_l0_reverse").data = getattr(model.lstm_backward[0], f"{name}_l0").data
        h = torch.zeros(ids.shape[0], ids.shape[1], 2 * u)
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            h[b, :n] = lstm(E[b : b + 1, :n])[0][0]
    att = model.attention
    proj = None if att.projection is None else att.projection.weight
    return ref_attention(h, mask, att.query, att.output_weight, att.output_bias, proj)[0]


# ---------------------------------------------------------------- registry

def test_registry_names_and_errors():
    assert set(MODEL_NAMES) == {"cnn", "caml", "dr_caml", "multirescnn", "laat", "bert_trun", "bert_hier"}
    with pytest.raises(ValueError, match=r"unknown model 'bert'.*'cnn'"):
        build_model("bert", {"vocab_size": V, "num_codes": C})
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['filtersize'\].*'kernel_size'"):
        build_model("cnn", {"vocab_size": V, "num_codes": C, "filtersize": 3})
    with pytest.raises(ValueError, match=r"needs config key\(s\) \['num_codes'\]"):
        build_model("caml", {"vocab_size": V})
    with pytest.raises(ValueError, match="dropout"):
        build_model("caml", {"vocab_size": V, "num_codes": C, "dropout": 1.5})
    with pytest.raises(ValueError, match="num_filters"):
        build_model("cnn", {"vocab_size": V, "num_codes": C, "num_filters": 0})
    with pytest.raises(ValueError, match="description_ids"):
        build_model("dr_caml", {"vocab_size": V, "num_codes": C})
    with pytest.raises(ValueError, match="rows"):
        build_model("dr_caml", {"vocab_size": V, "num_codes": C, "description_ids": DESC[:3]})
    with pytest.raises(ValueError, match="attention_impl"):
        build_model("caml", {"vocab_size": V, "num_codes": C, "attention_impl": "fast"})
    assert config_fields("cnn")[:2] == ("vocab_size", "num_codes")


def test_registry_takes_shape_from_embeddings_and_checks_it():
    vectors = F.normalize(torch.randn(V, 12), dim=1)
    model = build_model("caml", {"num_codes": C, "num_filters": 4}, embeddings=vectors)
    assert model.config.vocab_size == V and model.config.embed_dim == 12
    assert torch.equal(model.embed.weight[1:], vectors[1:]) and not model.embed.weight[0].any()
    with pytest.raises(ValueError, match=r"shape \(40, 12\)"):
        build_model("caml", {"num_codes": C, "embed_dim": 10}, embeddings=vectors)


def test_paper_defaults():
    cnn = build_model("cnn", {"vocab_size": V, "num_codes": C}, embeddings=torch.randn(V, 100)).config
    assert (cnn.kernel_size, cnn.num_filters, cnn.dropout, cnn.freeze_embeddings) == (4, 500, 0.2, True)
    caml = config_fields("caml")
    assert "kernel_size" in caml
    m = build_model("multirescnn", {"vocab_size": V, "num_codes": C})
    assert m.config.filter_sizes == (3, 5, 9, 15, 19, 25) and m.attention.output_weight.shape == (C, 300)


# ---------------------------------------------------------------- shapes, loss, padding

@pytest.mark.parametrize("name", CNN_FAMILY)
def test_shapes_loss_and_gradients(name):
    model = tiny(name)
    ids, mask = pad(docs(30, 17, 5))
    labels = (torch.rand(3, C) < 0.4).float()
    out = model(ids, mask, labels)
    assert isinstance(out, CodingOutput) and out.logits.shape == (3, C) and out.attention is None
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model(ids, mask).loss is None


@pytest.mark.parametrize("name", CNN_FAMILY)
def test_padding_never_changes_the_logits(name):
    model = tiny(name).eval()
    short, long = docs(13, 41, seed=1)
    alone = model(short[None]).logits[0]
    ids, mask = pad([short, long], total=50)
    with torch.no_grad():
        batched = model(ids, mask).logits[0]
        batched_default_mask = model(ids).logits[0]  # mask derived from PAD ids
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched_default_mask, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "caml", "multirescnn"])
def test_left_padding_and_masked_real_tokens(name):
    model = tiny(name).eval()
    (doc,) = docs(11, seed=2)
    alone = model(doc[None]).logits
    left = torch.cat([torch.zeros(6, dtype=torch.long), doc])[None]
    torch.testing.assert_close(model(left).logits, alone, atol=1e-5, rtol=1e-5)
    junk = torch.cat([doc, torch.randint(1, V, (5,))])[None]  # real ids, but masked out
    torch.testing.assert_close(model(junk, junk.ne(0) & (torch.arange(16) < 11)).logits, alone, atol=1e-5, rtol=1e-5)


def test_laat_two_layers_padding_invariant():
    model = tiny("laat", num_layers=2).eval()
    short, long = docs(13, 41, seed=11)
    with torch.no_grad():
        alone = model(short[None]).logits[0]
        torch.testing.assert_close(model(*pad([short, long])).logits[0], alone, atol=1e-5, rtol=1e-5)


def test_cnn_fused_inference_matches_autograd_path():
    model = tiny("cnn").eval()
    table, w = model.embed.weight, model.conv.weight
    ids, mask = pad(docs(23, 9, 1, seed=12), total=25)
    ids = torch.cat([ids, torch.zeros_like(ids[:1])])  # + an empty document
    mask = ids.ne(0)
    with torch.no_grad():
        ref = conv_max_pool(table[ids] * mask[:, :, None], w, mask)
        torch.testing.assert_close(embed_conv_max_pool(table, ids, mask, w), ref, atol=1e-5, rtol=1e-5)
        gappy = mask.clone()
        gappy[0, 3:6] = False  # not right padding: the unfused fallback
        ref = conv_max_pool(table[ids] * gappy[:, :, None], w, gappy)
        torch.testing.assert_close(embed_conv_max_pool(table, ids, gappy, w), ref, atol=1e-5, rtol=1e-5)
        fused = model(ids, mask).logits
    torch.testing.assert_close(fused, model(ids, mask).logits.detach(), atol=1e-5, rtol=1e-5)  # grad path


def test_laat_rejects_non_prefix_masks():
    model = tiny("laat")
    ids = torch.randint(1, V, (1, 9))
    with pytest.raises(ValueError, match="right-padded"):
        model(ids, torch.arange(9)[None] >= 2)


@pytest.mark.parametrize("name", CNN_FAMILY)
def test_all_padding_document_gives_finite_output(name):
    model = tiny(name, return_attention=True) if name != "cnn" else tiny(name)
    ids, mask = pad(docs(12, seed=4), total=12)
    ids = torch.cat([ids, torch.zeros_like(ids)])
    out = model(ids, ids.ne(0), torch.ones(2, C))
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    if out.attention is not None:
        assert not out.attention[1].any()


@pytest.mark.parametrize("name", CNN_FAMILY)
def test_matches_reference_forward(name):
    model = tiny(name).eval()
    if name == "multirescnn":  # non-trivial running statistics
        for m in model.modules():
            if hasattr(m, "running_var"):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
    ids, mask = pad(docs(23, 9, 16, seed=5))
    with torch.no_grad():
        torch.testing.assert_close(model(ids, mask).logits, ref_forward(model, ids, mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["caml", "multirescnn", "laat"])
def test_attention_output_and_impls_agree(name):
    ids, mask = pad(docs(23, 9, 16, seed=6))
    labels = (torch.rand(3, C) < 0.4).float()
    outs, grads = [], []
    for impl in ("dense", "blocked"):
        model = tiny(name, attention_impl=impl, return_attention=True)
        out = model(ids, mask, labels)
        out.loss.backward()
        outs.append(out)
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(outs[0].logits, outs[1].logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[0].attention, outs[1].attention, atol=1e-6, rtol=1e-5)
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1, atol=1e-5, rtol=1e-4)
    att = outs[1].attention
    torch.testing.assert_close(att.sum(-1), torch.ones(3, C))
    assert not att.masked_select(~mask[:, None, :].expand_as(att)).any()


# ---------------------------------------------------------------- fast kernels vs references

@pytest.mark.parametrize("k", [1, 4, 5, 10])
def test_same_conv_matches_conv1d(k):
    x, w = torch.randn(3, 17, 6), torch.randn(k, 6, 5)
    torch.testing.assert_close(same_conv(x, w), ref_conv(x, w), atol=1e-5, rtol=1e-5)
    mask = torch.arange(17)[None] < torch.tensor([[17], [9], [0]])
    ref = ref_conv(x * mask[:, :, None], w).masked_fill(~mask[:, :, None], -torch.inf).amax(1)
    ref[2] = 0.0  # empty document
    torch.testing.assert_close(conv_max_pool(x * mask[:, :, None], w, mask), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv_max_pool_dense(x * mask[:, :, None], w, mask), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_custom_backwards_gradcheck(k):
    d = torch.float64
    x = torch.randn(2, 7, 3, dtype=d, requires_grad=True)
    w = torch.randn(k, 3, 4, dtype=d, requires_grad=True)
    assert gradcheck(same_conv, (x, w))
    for mask in (torch.tensor([[1] * 7, [1] * 4 + [0] * 3]), torch.tensor([[0, 1, 1, 0, 1, 1, 0], [0] * 7])):
        assert gradcheck(lambda x, w, m=mask.bool(): _ConvMaxPool.apply(x, w, m), (x, w))


def test_blocked_attention_gradcheck():
    d = torch.float64
    B, T, a, h = 3, 6, 4, 5
    keys, vals = torch.randn(B, T, a, dtype=d), torch.randn(B, T, h, dtype=d)
    q, w, b = torch.randn(C, a, dtype=d), torch.randn(C, h, dtype=d), torch.randn(C, dtype=d)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0], [0, 1, 0, 1, 1, 0]], dtype=torch.bool)
    inputs = tuple(t.requires_grad_() for t in (keys, vals, q, w, b))
    assert gradcheck(lambda *t: _BlockedLabelAttention.apply(t[0], t[1], mask, *t[2:], False)[0], inputs)
    big_query = (q.detach() * 20).requires_grad_()  # large scores: a saturated softmax
    assert gradcheck(lambda *t: _BlockedLabelAttention.apply(t[0], t[1], mask, *t[2:], False)[0],
                     (keys, vals, big_query, w, b))
    torch.testing.assert_close(
        _BlockedLabelAttention.apply(keys, vals, mask, q, w, b, False)[0],
        label_attention_dense(keys, vals, mask, q, w, b)[0],
    )


def test_label_attention_blocks_across_many_labels():
    """More labels than one block holds: blocks must tile the label axis exactly."""
    att = LabelAttention(5, 3000, impl="blocked")
    with torch.no_grad():
        att.query[:100] *= 300  # one block of near-one-hot attention rows
    hidden = torch.randn(2, 900, 5)
    mask = torch.arange(900)[None] < torch.tensor([[900], [333]])
    with torch.no_grad():
        got = att(hidden, mask)[0]
        ref = ref_attention(hidden, mask, att.query, att.output_weight, att.output_bias)[0]
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["dense", "blocked"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_label_attention_is_float32_under_autocast(impl, dtype):
    att = LabelAttention(8, C, impl=impl)
    with torch.no_grad():
        att.query.copy_(torch.randn(C, 8).sign() * 25)
    hidden = (torch.randn(3, 20, 8).sign() * 50).requires_grad_()  # scores of ±1e4
    mask = torch.arange(20)[None] < torch.tensor([[20], [7], [0]])
    with torch.autocast("cpu", dtype=dtype):
        logits, attention = att(hidden.to(dtype), mask, return_attention=True)
        loss = logits.sum()
    loss.backward()
    assert logits.dtype == torch.float32 and attention.dtype == torch.float32
    assert torch.isfinite(logits).all() and torch.isfinite(attention).all() and torch.isfinite(hidden.grad).all()
    torch.testing.assert_close(attention[:2].sum(-1), torch.ones(2, C))
    assert not attention.masked_select(~mask[:, None, :].expand_as(attention)).any()
    assert not attention[2].any()  # all-padding document: zero attention, logits = bias
    torch.testing.assert_close(logits[2], att.output_bias.detach())


@pytest.mark.parametrize("name", ["cnn", "caml", "multirescnn"])
def test_models_under_bf16_autocast(name):
    model = tiny(name).eval()
    ids, mask = pad(docs(30, 12, seed=7))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(ids, mask).logits
    assert torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), model(ids, mask).logits.detach(), atol=0.1, rtol=0.1)


def test_masked_batch_norm_ignores_padding_in_training():
    bn, ref = MaskedBatchNorm(4), torch.nn.BatchNorm1d(4)
    x = torch.randn(3, 10, 4)
    mask = torch.arange(10)[None] < torch.tensor([[10], [4], [7]])
    real = x[mask]  # (21, 4): the only positions that may count
    torch.testing.assert_close(bn(x, mask)[mask], ref(real))
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    x2 = x.clone()
    x2[~mask] = 1e3  # garbage in the padding changes nothing
    torch.testing.assert_close(bn(x2, mask)[mask], ref(real))


# ---------------------------------------------------------------- embeddings, determinism, DR-CAML

def test_freeze_keeps_vectors_and_fine_tuning_keeps_pad_zero():
    vectors = F.normalize(torch.randn(V, 8), dim=1)
    ids, mask = pad(docs(20, 9, seed=8))
    labels = torch.ones(2, C)
    for freeze in (True, False):
        model = build_model("caml", {"num_codes": C, "num_filters": 4, "freeze_embeddings": freeze},
                            embeddings=vectors)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
        for _ in range(2):
            opt.zero_grad(), model(ids, mask, labels).loss.backward(), opt.step()
        w = model.embed.weight
        assert not w[0].any()
        assert w.requires_grad is not freeze
        assert torch.equal(w[1:], vectors[1:]) is freeze


def test_freezing_random_vectors_warns():
    with pytest.warns(UserWarning, match="random"):
        build_model("cnn", {"vocab_size": V, "num_codes": C})


@pytest.mark.parametrize("name", CNN_FAMILY)
def test_seeded_construction_is_deterministic(name):
    ids, mask = pad(docs(15, 8, seed=9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = tiny(name, seed=123).eval()(ids, mask).logits
        b = tiny(name, seed=123).eval()(ids, mask).logits
        c = tiny(name, seed=124).eval()(ids, mask).logits
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_dr_caml_adds_description_regulariser():
    ids, mask = pad(docs(20, 9, seed=10))
    labels = torch.zeros(2, C)
    labels[0, [1, 3]], labels[1, 3] = 1, 1
    for reduction in ("caml", "mean"):
        dr = tiny("dr_caml", description_reduction=reduction, description_lambda=0.5)
        out = dr(ids, mask, labels)
        bce = F.binary_cross_entropy_with_logits(out.logits, labels)
        codes = torch.tensor([1, 3])
        sq = (dr.attention.output_weight[codes] - dr.describe(codes)).pow(2)
        if reduction == "caml":  # doc 0: codes 1, 3; doc 1: code 3; mean over docs of Σ_gold mean_dims
            expected = ((sq[0].mean() + sq[1].mean()) + sq[1].mean()) / 2
        else:  # mean over the 3 (doc, code) pairs of the squared norm
            expected = (sq[0].sum() + 2 * sq[1].sum()) / 3
        torch.testing.assert_close(out.loss, bce + 0.5 * expected)
        out.loss.backward()
        assert dr.desc_conv.weight.grad.abs().sum() > 0
    assert tiny("dr_caml")(ids, mask, torch.zeros(2, C)).loss.isfinite()


# ---------------------------------------------------------------- baselines (API; learning is in test_models_learning)

def test_baselines_api():
    texts = ["a b c", "b c d", "c d e", "a a e"]
    y = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 0]])  # code 0 always, code 2 never
    mf = MostFrequentCodesBaseline(k=2).fit(texts, y)
    s = mf.predict_proba(["x", "y"])
    assert s.shape == (2, 3) and (s[:, :2] > 0.5).all() and (s[:, 2] < 0.5).all()
    assert MostFrequentCodesBaseline().fit(texts, y).k_ == 2  # mean 1.5 codes/doc, rounded half to even
    lr = TfidfLogisticBaseline().fit(texts, y)
    p = lr.predict_proba(["a b", "e"])
    assert p.shape == (2, 3) and np.allclose(p[:, 0], 1) and np.allclose(p[:, 2], 0)
    with pytest.raises(ValueError, match="shape"):
        lr.fit(texts, y[:2])


def test_tfidf_logistic_dual_is_the_same_model_as_the_primal():
    """More terms than notes (as in clinical notes): "auto" picks liblinear's dual, whose probabilities are the
    primal's within the solver tolerance (the same L2-regularised problem)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(words, 30)) for _ in range(60)]
    y = np.array([[("w1" in t.split()) or ("w2" in t.split()), "w3" in t.split(), i % 3 == 0]
                  for i, t in enumerate(texts)])
    auto, primal = TfidfLogisticBaseline().fit(texts, y), TfidfLogisticBaseline(dual=False).fit(texts, y)
    assert auto.classifier.estimator.dual and not primal.classifier.estimator.dual
    a, p = auto.predict_proba(texts[:20]), primal.predict_proba(texts[:20])
    assert np.abs(a - p).max() < 2e-3 and np.array_equal(a > 0.5, p > 0.5)
    with pytest.raises(ValueError, match="dual"):
        TfidfLogisticBaseline(dual="yes")
